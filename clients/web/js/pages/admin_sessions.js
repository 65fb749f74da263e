// admin_sessions.js - a lost phone, cut off at once: an admin picks a user and sees that user's
// sessions (session.list with login) and devices with their encryption keys (device.list), and
// revokes either (session.revoke: the session ends and its connections close with "session
// revoked by an admin"; device.revoke: the device's keys leave every room and its session ends).
import { api } from '../api.js';
import { route, go } from '../router.js';
import { t, addStrings } from '../i18n.js';
import { h, formatTime, toast, confirmDialog } from '../dom.js';
import { adminTabs, pageHeader, statusLine, errorText, table, field } from './admin_common.js';

addStrings({
  ja: {
    'as.nav': '端末の管理',
    'as.title': '端末とログインの管理',
    'as.intro': '職員が端末をなくしたときは、ここでその端末をすぐにログアウトさせ、鍵を取り消します。',
    'as.user': 'ログインID',
    'as.show': '表示',
    'as.of': '{login} の端末',
    'as.sessions': 'ログイン中のセッション',
    'as.devices': '暗号鍵を持つ端末（写真の鍵）',
    'as.c.device': '端末',
    'as.c.created': 'ログイン',
    'as.c.last': '最終利用',
    'as.c.address': 'アドレス',
    'as.c.kind': '種類',
    'as.c.id': '端末ID',
    'as.c.registered': '登録',
    'as.c.state': '状態',
    'as.shared': '共用',
    'as.current': 'この画面',
    'as.revoke': 'ログアウトさせる',
    'as.revoke_confirm': '{login} の「{device}」をログアウトさせますか？ その端末ではすぐに使えなくなります。',
    'as.revoked': '「{device}」をログアウトさせました',
    'as.dev_revoke': '鍵を取り消す',
    'as.dev_revoke_confirm': '{login} の端末「{device}」の鍵を取り消しますか？ その端末は写真を受け取れなくなり、ログアウトします。元に戻せません。',
    'as.dev_revoked': '「{device}」の鍵を取り消しました',
    'as.active': '有効',
    'as.dev_gone': '取り消し済み {time}',
    'as.none': '（名前なし）',
  },
  en: {
    'as.nav': 'Devices',
    'as.title': 'Sessions and devices',
    'as.intro': 'A lost phone: sign it out here at once and revoke its keys.',
    'as.user': 'Login',
    'as.show': 'Show',
    'as.of': "{login}'s devices",
    'as.sessions': 'Sessions',
    'as.devices': 'Devices with encryption keys (photos)',
    'as.c.device': 'Device',
    'as.c.created': 'Logged in',
    'as.c.last': 'Last used',
    'as.c.address': 'Address',
    'as.c.kind': 'Kind',
    'as.c.id': 'Device id',
    'as.c.registered': 'Registered',
    'as.c.state': 'State',
    'as.shared': 'shared',
    'as.current': 'this page',
    'as.revoke': 'Sign out',
    'as.revoke_confirm': 'Sign out "{device}" of {login}? It stops working at once.',
    'as.revoked': 'Signed out "{device}"',
    'as.dev_revoke': 'Revoke keys',
    'as.dev_revoke_confirm': 'Revoke the keys of "{device}" of {login}? It gets no more photos and is signed out. This cannot be undone.',
    'as.dev_revoked': 'Revoked the keys of "{device}"',
    'as.active': 'active',
    'as.dev_gone': 'revoked {time}',
    'as.none': '(no name)',
  },
});

function page(container, params) {
  const who = params.login || '';
  const status = statusLine();
  const input = h('input', { type: 'text', id: 'as-login', value: who, list: 'as-users', autocomplete: 'off',
    autocapitalize: 'none', spellcheck: 'false', required: true });
  const users = h('datalist', { id: 'as-users' });
  const sessBox = h('div', { class: 'as-sessions' });
  const devBox = h('div', { class: 'as-devices' });
  const heading = h('h2', { id: 'as-h-of', tabindex: '-1' });
  const form = h('form', { class: 'adm-filters', role: 'search' },
    field(t('as.user'), input), users,
    h('div', { class: 'adm-buttons' }, h('button', { type: 'submit', class: 'btn btn-primary' }, t('as.show'))));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const l = input.value.trim();
    if (l) go('#/admin/sessions/' + encodeURIComponent(l));
  });

  container.replaceChildren(h('div', { class: 'adm-page as-page' },
    adminTabs('sessions'),
    pageHeader(t('as.title')), h('p', { class: 'muted' }, t('as.intro')), form, status.el,
    who ? h('section', { 'aria-labelledby': 'as-h-of' }, heading,
      h('h3', {}, t('as.sessions')), sessBox, h('h3', {}, t('as.devices')), devBox) : null));

  api.call('user.list').then((r) => users.replaceChildren(...(r.users || []).map((u) =>
    h('option', { value: u.login }, `${u.name}（${u.department || ''}）`)))).catch(() => {});

  if (!who) { input.focus(); return; }
  heading.textContent = t('as.of', { login: who });

  async function revokeSession(s) {
    const device = s.device || t('as.none');
    if (!await confirmDialog(t('as.revoke_confirm', { login: who, device }), { danger: true, ok: t('as.revoke') })) return;
    try {
      await api.call('session.revoke', { session: s.id });
      toast(t('as.revoked', { device }));
      load();
    } catch (e) {
      toast(errorText(e), 'error');
    }
  }

  async function revokeDevice(d) {
    const device = d.label || d.device.slice(0, 8);
    if (!await confirmDialog(t('as.dev_revoke_confirm', { login: who, device }), { danger: true, ok: t('as.dev_revoke') })) return;
    try {
      await api.call('device.revoke', { device: d.device });
      toast(t('as.dev_revoked', { device }));
      load();
    } catch (e) {
      toast(errorText(e), 'error');
    }
  }

  async function load() {
    try {
      const [s, d] = await Promise.all([
        api.call('session.list', { login: who }),
        api.call('device.list', { login: who }).catch(() => ({ devices: [] })),
      ]);
      status.set('');
      sessBox.replaceChildren(table([
        { label: t('as.c.device'), header: true, cell: (x) => [x.device || t('as.none'),
          x.shared ? h('span', { class: 'tag' }, t('as.shared')) : null,
          x.current ? h('span', { class: 'tag' }, t('as.current')) : null] },
        { label: t('as.c.created'), cell: (x) => formatTime(x.created_at) },
        { label: t('as.c.last'), cell: (x) => formatTime(x.last_seen) },
        { label: t('as.c.address'), cell: (x) => x.address || '' },
        { label: t('as.revoke'), cell: (x) => (x.current ? '' : h('button', { type: 'button', class: 'btn btn-danger',
          'data-session': String(x.id), 'aria-label': `${t('as.revoke')}: ${x.device || x.id}`,
          onclick: () => revokeSession(x) }, t('as.revoke'))) },
      ], s.sessions || [], { caption: t('as.sessions') }));
      sessBox.querySelector('table').id = 'as-sessions';
      devBox.replaceChildren(table([
        { label: t('as.c.device'), header: true, cell: (x) => x.label || t('as.none') },
        { label: t('as.c.id'), cell: (x) => h('code', {}, x.device.slice(0, 12) + '…') },
        { label: t('as.c.registered'), cell: (x) => formatTime(x.created_at) },
        { label: t('as.c.state'), cell: (x) => (x.revoked_at ? t('as.dev_gone', { time: formatTime(x.revoked_at) }) : t('as.active')) },
        { label: t('as.dev_revoke'), cell: (x) => (x.revoked_at ? '' : h('button', { type: 'button', class: 'btn btn-danger',
          'aria-label': `${t('as.dev_revoke')}: ${x.label || x.device}`, onclick: () => revokeDevice(x) }, t('as.dev_revoke'))) },
      ], d.devices || [], { caption: t('as.devices') }));
    } catch (e) {
      status.set(errorText(e), 'error');
      sessBox.replaceChildren();
      devBox.replaceChildren();
    }
  }
  load();
}

route('#/admin/sessions', page);
route('#/admin/sessions/:login', page);
