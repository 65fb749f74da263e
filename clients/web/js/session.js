// session.js: who is logged in, for every page. user() is the user object login/auth gave
// (login, name, role, department, must_change_password…); role(), serverId(), shared().
// onSessionEnd(reason) ends the page's life for this session: it wipes what the browser kept,
// drops the page's content and shows the ended page with the reason in words
// (protocol.md, "WebSocket close codes").

import { api } from './api.js';
import { setTimeZone } from './dom.js';
import { unmount, go } from './router.js';

export function user() { return api.session?.user || null; }
export function role() { return api.session?.user?.role || null; }
export function login() { return api.session?.user?.login || null; }
export function serverId() { return api.session?.server_id || null; }
export function shared() { return !!api.session?.shared; }
export function loggedIn() { return !!api.session?.user; }

let lastReason = null;
export function endReason() { return lastReason; }

export function onSessionEnd(reason) {
  lastReason = reason || 'unauthorized';
  unmount();
  go('#/ended');
}

api.on('session', (s) => setTimeZone(s.time_zone, s.time_zone_posix));
api.on('end', (reason) => onSessionEnd(reason));
