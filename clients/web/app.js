// app.js: boot. Restores the session (or shows the login page), draws the header with the
// navigation and the connection state, and hands the main area to the router. Pages register
// themselves (route(), navItem()) when their module is imported below.

import { api } from './js/api.js';
import { h, clear, banner, focusMain } from './js/dom.js';
import { t, getLang, setLang, onLang } from './js/i18n.js';
import { startRouter, navItems, render, current } from './js/router.js';
import * as session from './js/session.js';
import './js/strings.js';

// Pages. Each module registers its routes and navigation entries.
import './js/pages/login.js';
import './js/pages/sessions.js';
import './js/pages/rooms.js';
import './js/pages/room.js';
import './js/pages/search.js';
import './js/pages/gallery.js';
import './js/pages/review.js';
import './js/pages/devices.js';
// Notices and administration (the notices-admin pages): one import line each, here.
import './js/pages/notices.js';
import './js/pages/notice_report.js';
import './js/pages/notify_settings.js';
import './js/pages/admin_users.js';
import './js/pages/admin_import.js';
import './js/pages/admin_invites.js';
import './js/pages/admin_sessions.js';
import './js/pages/admin_audit.js';
import './js/pages/admin_fed.js';
import './js/pages/admin_mail.js';

const top = document.getElementById('top');
const main = document.getElementById('main');

function drawHeader() {
  clear(top);
  const u = session.user();
  const hash = current();
  const items = u && !u.must_change_password ? navItems(u.role) : [];
  const nav = h('nav', { class: 'nav', 'aria-label': t('shell.nav') },
    h('ul', null, items.map((n) => {
      const active = hash === n.route || hash.startsWith(n.route + '/') || (n.match && n.match(hash));
      return h('li', null, h('a', { href: n.route, class: active ? 'active' : null,
        'aria-current': active ? 'page' : null }, t(n.label)));
    })));
  top.append(...[
    h('a', { class: 'brand', href: u ? '#/rooms' : '#/login' }, t('app.name')),
    items.length ? nav : null,
    h('div', { class: 'top-right' },
      u ? h('span', { class: 'who' }, t('shell.user', { name: u.name || u.login, login: u.login }),
        session.shared() ? h('span', { class: 'tag' }, t('shell.shared')) : null) : null,
      h('button', { type: 'button', class: 'btn-quiet', lang: getLang() === 'ja' ? 'en' : 'ja',
        'aria-label': t('shell.lang_label'), onclick: () => setLang(getLang() === 'ja' ? 'en' : 'ja') },
      t('shell.lang')),
      u ? h('button', { type: 'button', class: 'btn-quiet', id: 'logout',
        onclick: () => session.logout() }, t('shell.logout')) : null)].filter(Boolean));
}

function showState() {
  const n = api.outbox.length;
  // Said while a session is in use or being restored (the app opened with the server away).
  if (!api.session || api.state === 'online') {
    banner('conn', n ? t('state.outbox', { n }) : null, { kind: 'info' });
    document.body.dataset.conn = api.state;
    return;
  }
  document.body.dataset.conn = api.state;
  const text = api.state === 'connecting' ? t('state.connecting') : t('state.offline');
  banner('conn', n ? `${text}（${t('state.outbox', { n })}）` : text, { kind: 'warn' });
}

api.on('state', showState);
api.on('outbox', showState);
api.on('session', drawHeader);
// This browser as an end-to-end device of the user (issue 21, js/crypto/device.js): keys made or
// loaded and registered soon after login, so that senders can encrypt photos to it; loaded
// after the first screen, not with it.
api.on('session', (s) => {
  if (s?.user && !s.user.must_change_password)
    setTimeout(() => import('./js/crypto/device.js').then((m) => m.myDevice()).catch(() => {}), 500);
});
api.on('end', drawHeader);
onLang(() => { drawHeader(); render(); });

async function boot() {
  await api.start();
  startRouter(main, {
    guard(r) {
      const u = session.user();
      if (!r.public && !u) return '#/login?next=' + encodeURIComponent(current());
      if (u && u.must_change_password && r.pattern !== '#/passwd' && !r.public) return '#/passwd';
      if (u && r.pattern === '#/login') return '#/rooms';
      if (r.pattern === '#/') return u ? '#/rooms' : '#/login';
      return true;
    },
    onChange: drawHeader,
    afterRender: () => focusMain(main),
  });
}

boot();

// The service worker (sw.js) keeps the app shell so the client opens offline; served from the
// root, its scope is the whole client. Browsers without one (or plain http on a LAN name, not
// a secure context) simply go without.
if ('serviceWorker' in navigator) {
  window.addEventListener('load', () => {
    navigator.serviceWorker.register('/sw.js').catch(() => {});
  });
}
