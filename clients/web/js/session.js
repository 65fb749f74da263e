// session.js: who is logged in, for every page. user() is the user object login/auth gave
// (login, name, role, department, must_change_password…); role(), serverId(), shared().
// onSessionEnd(reason) ends the page's life for this session: it wipes what the browser kept,
// drops the page's content and shows the ended page with the reason in words
// (protocol.md, "WebSocket close codes").

import { api } from './api.js';
import { setTimeZone } from './dom.js';
import { unmount } from './router.js';

export function user() { return api.session?.user || null; }
export function role() { return api.session?.user?.role || null; }
export function login() { return api.session?.user?.login || null; }
export function serverId() { return api.session?.server_id || null; }
export function shared() { return !!api.session?.shared; }
export function loggedIn() { return !!api.session?.user; }

// The page is loaded afresh after a session ends or logs out: whatever this tab held in memory
// (rooms, names, message text, the outbox) goes with the old page, not only the storage.
function restart(hash) {
  unmount();
  location.replace(hash);
  location.reload();
}

export function endReason() {
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  return q.get('reason');
}

export function onSessionEnd(reason) {
  restart('#/ended?reason=' + encodeURIComponent(reason || 'unauthorized'));
}

export async function logout() {
  await api.logout();
  restart('#/login');
}

api.on('session', (s) => setTimeZone(s.time_zone, s.time_zone_posix));
api.on('end', (reason) => onSessionEnd(reason));
