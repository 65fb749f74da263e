// pages/sessions.js: "my sessions": every device logged in as me, with revoke. Revoking this
// one is logging out.

import { api } from '../api.js';
import { h, clear, formatTime, confirmDialog, toast } from '../dom.js';
import { t, addStrings } from '../i18n.js';
import { route, navItem } from '../router.js';
import * as session from '../session.js';

addStrings({
  ja: {
    'sessions.title': 'ログイン中の端末', 'sessions.intro': 'なくした端末や、ログアウトし忘れた共用PCは、ここでログアウトさせられます。',
    'sessions.device': '端末', 'sessions.created': 'ログイン', 'sessions.last': '最終利用', 'sessions.address': 'アドレス',
    'sessions.current': 'この端末', 'sessions.shared': '共用', 'sessions.revoke': 'ログアウトさせる',
    'sessions.confirm': '「{device}」をログアウトさせますか？', 'sessions.revoked': '「{device}」をログアウトさせました。',
    'sessions.none': '（名前なし）',
  },
  en: {
    'sessions.title': 'My sessions', 'sessions.intro': 'Sign out a lost phone or a shared PC left logged in.',
    'sessions.device': 'Device', 'sessions.created': 'Logged in', 'sessions.last': 'Last used', 'sessions.address': 'Address',
    'sessions.current': 'This device', 'sessions.shared': 'shared', 'sessions.revoke': 'Sign out',
    'sessions.confirm': 'Sign out "{device}"?', 'sessions.revoked': '"{device}" was signed out.',
    'sessions.none': '(no name)',
  },
});

navItem({ route: '#/sessions', label: 'nav.sessions', order: 90 });

route('#/sessions', async (el) => {
  const table = h('tbody');
  el.append(h('section', { class: 'page', 'aria-labelledby': 'sessions-title' },
    h('h1', { id: 'sessions-title' }, t('sessions.title')),
    h('p', { class: 'muted' }, t('sessions.intro')),
    h('div', { class: 'table-wrap' }, h('table', { class: 'table', id: 'sessions' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, t('sessions.device')),
        h('th', { scope: 'col' }, t('sessions.created')), h('th', { scope: 'col' }, t('sessions.last')),
        h('th', { scope: 'col' }, t('sessions.address')), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, t('sessions.revoke'))))),
      table))));
  async function load() {
    const r = await api.call('session.list');
    clear(table);
    for (const s of r.sessions) {
      const name = s.device || t('sessions.none');
      table.append(h('tr', { dataset: { session: s.id }, class: s.current ? 'current' : null },
        h('td', { 'data-label': t('sessions.device') }, name,
          s.current ? h('span', { class: 'tag' }, t('sessions.current')) : null,
          s.shared ? h('span', { class: 'tag' }, t('sessions.shared')) : null),
        h('td', { 'data-label': t('sessions.created') }, formatTime(s.created_at)),
        h('td', { 'data-label': t('sessions.last') }, formatTime(s.last_seen)),
        h('td', { 'data-label': t('sessions.address') }, s.address || ''),
        h('td', null, h('button', { type: 'button', class: 'btn-danger', 'aria-label': `${t('sessions.revoke')}: ${name}`,
          onclick: async () => {
            if (!await confirmDialog(t('sessions.confirm', { device: name }), { danger: true, ok: t('sessions.revoke') })) return;
            if (s.current) { await session.logout(); return; }
            try {
              await api.call('session.revoke', { session: s.id });
              toast(t('sessions.revoked', { device: name }));
              load();
            } catch (e) { toast(e.message, 'error'); }
          } }, t('sessions.revoke')))));
    }
  }
  await load();
});
