// devices.js: this user's end-to-end devices and safety numbers (issue 21, item 1), #/devices.
// The devices the server lists for the user (device.list), this browser marked, each active one
// revocable (device.revoke: it gets no new photo keys and its session ends; revoking this
// browser logs it out). The safety number with another user (crypto/safety.js, as `kizuna
// verify`): over both users' signed device lists as this browser accepted them (crypto/trust.js,
// pinned), 60 digits in 12 groups and a QR code of them, to compare phone to phone; equal on
// both sides exactly when both see the same devices for both users.

import { api } from '../api.js';
import { h, clear, formatTime, confirmDialog, toast } from '../dom.js';
import { t, addStrings } from '../i18n.js';
import { route, navItem } from '../router.js';
import * as session from '../session.js';

addStrings({
  ja: {
    'dev.nav': '端末の鍵', 'dev.title': '端末の鍵と安全番号', 'dev.mine': 'わたしの端末',
    'dev.this': 'このブラウザ', 'dev.revoked': '失効 {at}', 'dev.active': '有効', 'dev.listed': '署名済みリストに記載',
    'dev.unlisted': '未承認', 'dev.made': '登録 {at}', 'dev.revoke': '失効させる',
    'dev.revoke_confirm': '端末 {id} を失効させますか？この端末には新しい写真の鍵が送られず、そのセッションは終了します。',
    'dev.revoke_self': 'このブラウザを失効させると、ログアウトします。', 'dev.revoked_done': '端末 {id} を失効させました。',
    'dev.safety': '安全番号', 'dev.safety_help': '相手と会って、両方の画面の 60 桁（または QR コード）が同じか確かめてください。同じなら、互いの端末の鍵をサーバーがすり替えていません。',
    'dev.with': '相手のログインID', 'dev.show': '安全番号を表示', 'dev.number_with': '{me} と {other} の安全番号',
    'dev.qr': '安全番号の QR コード', 'dev.no_list': '{who} にはまだ署名済みの端末リストがありません。比べるものがありません。',
    'dev.stuck': '{who} の端末リストが、このブラウザが受け入れたものから続いていません（{why}）。',
  },
  en: {
    'dev.nav': 'Device keys', 'dev.title': 'Device keys and safety numbers', 'dev.mine': 'My devices',
    'dev.this': 'this browser', 'dev.revoked': 'revoked {at}', 'dev.active': 'active', 'dev.listed': 'in the signed list',
    'dev.unlisted': 'not approved', 'dev.made': 'registered {at}', 'dev.revoke': 'Revoke',
    'dev.revoke_confirm': 'Revoke device {id}? It gets no new photo keys and its session ends.',
    'dev.revoke_self': 'Revoking this browser logs it out.', 'dev.revoked_done': 'Device {id} revoked.',
    'dev.safety': 'Safety number', 'dev.safety_help': 'Meet the other person and check that the 60 digits (or the QR code) are the same on both screens. If they are, the server has not swapped anyone\'s device keys.',
    'dev.with': 'Their login ID', 'dev.show': 'Show the safety number', 'dev.number_with': 'Safety number of {me} and {other}',
    'dev.qr': 'QR code of the safety number', 'dev.no_list': '{who} has no signed device list yet: nothing to compare.',
    'dev.stuck': '{who}\'s device list does not follow the one this browser accepted ({why}).',
  },
});

navItem({ route: '#/devices', label: 'dev.nav', order: 85 });

// The safety number of the logged-in user and other, over the lists this browser accepted.
export async function safetyWith(other) {
  const [{ vouched }, { safetyNumber }, { qualify }] = await Promise.all([
    import('../crypto/trust.js'), import('../crypto/safety.js'), import('../crypto/device.js')]);
  const me = session.login();
  const lists = [];
  for (const who of [me, other]) {
    const v = await vouched(who, await api.call('device.list', { login: who }));
    if (v.stuck) throw new Error(t('dev.stuck', { who, why: v.stuck }));
    if (!v.current || !v.current.devices.length) throw new Error(t('dev.no_list', { who }));
    lists.push(v.current.devices);
  }
  return safetyNumber(qualify(me), lists[0], qualify(other), lists[1]);
}

route('#/devices', async (el, params) => {
  const { myDevice } = await import('../crypto/device.js');
  const mine = await myDevice().catch(() => null);
  const list = h('ul', { class: 'device-list', id: 'device-list' });
  const other = h('input', { type: 'text', id: 'safety-with', autocomplete: 'off', value: params.user || '' });
  const out = h('div', { class: 'safety-out', id: 'safety-out', 'aria-live': 'polite' });
  const form = h('form', { class: 'safety-form', onsubmit: (e) => { e.preventDefault(); showSafety(); } },
    h('label', { for: 'safety-with' }, t('dev.with')), other,
    h('button', { type: 'submit', class: 'btn-primary', id: 'safety-show' }, t('dev.show')));
  el.append(h('section', { class: 'devices-page', 'aria-labelledby': 'devices-title' },
    h('h1', { id: 'devices-title' }, t('dev.title')),
    h('h2', null, t('dev.mine')), list,
    h('h2', null, t('dev.safety')), h('p', { class: 'muted' }, t('dev.safety_help')), form, out));

  async function draw() {
    const r = await api.call('device.list', {});
    const { vouched } = await import('../crypto/trust.js');
    const v = await vouched(session.login(), r).catch(() => null);
    const listed = new Set((v?.current?.devices || []).map((d) => d.id));
    clear(list);
    for (const d of r.devices.slice().reverse()) {
      const self = mine && d.device === mine.id;
      const active = d.revoked_at == null;
      list.append(h('li', { class: ['device', active ? null : 'revoked', self ? 'this' : null].filter(Boolean).join(' '), 'data-device': d.device },
        h('div', { class: 'device-main' },
          h('strong', null, d.label || d.device), self ? h('span', { class: 'tag', id: 'device-this' }, t('dev.this')) : null,
          h('code', { class: 'device-id' }, d.device)),
        h('p', { class: 'muted' },
          active ? t('dev.active') : t('dev.revoked', { at: formatTime(d.revoked_at, { full: true }) }),
          active ? '・' + (listed.has(d.device) ? t('dev.listed') : t('dev.unlisted')) : '',
          d.created_at ? '・' + t('dev.made', { at: formatTime(d.created_at, { full: true }) }) : ''),
        active ? h('button', { type: 'button', class: 'btn-danger device-revoke', onclick: () => revoke(d.device, self) }, t('dev.revoke')) : null));
    }
  }

  async function revoke(id, self) {
    const ok = await confirmDialog(t('dev.revoke_confirm', { id }) + (self ? ' ' + t('dev.revoke_self') : ''), { danger: true, ok: t('dev.revoke') });
    if (!ok) return;
    try {
      await api.call('device.revoke', { device: id });
      toast(t('dev.revoked_done', { id }));
      if (self) { session.logout(); return; }
      await draw();
    } catch (e) { toast(e.message, 'error'); }
  }

  async function showSafety() {
    clear(out);
    const who = other.value.trim();
    if (!who) return;
    try {
      const number = await safetyWith(who);
      const groups = number.split(' ');
      const { qrCanvas } = await import('./admin_invites.js');
      out.append(h('p', { class: 'safety-label' }, t('dev.number_with', { me: session.login(), other: who })),
        h('p', { class: 'safety-number', id: 'safety-number', 'data-digits': groups.join('') },
          ...[0, 3, 6, 9].map((i) => h('span', { class: 'safety-row' }, groups.slice(i, i + 3).join(' ')))),
        await qrCanvas(groups.join(''), t('dev.qr')));
    } catch (e) {
      out.append(h('p', { class: 'form-error', role: 'alert' }, e.message));
    }
  }

  await draw();
  if (other.value) await showSafety();
});
