// push.js: Web Push for this browser (docs/notifications.md, docs/protocol.md "Web Push"): with
// the user's consent, subscribes the browser's push service with the server's VAPID key and
// hands the subscription to kizunad, which then wakes this browser (or the installed phone app)
// for urgent notices, roll-calls and direct messages while Kizuna is closed; sw.js shows them.
// The subscription belongs to this session: logging out stops its pushes on the server.
//
// Contract (for the page that offers it, e.g. a settings or notices page):
//   pushSupported() -> bool: the browser has service workers, the Push API and notifications.
//   pushState() -> Promise<'unsupported'|'denied'|'off'|'on'>.
//   enablePush() -> Promise<void>: asks for permission (call it from a click), subscribes and
//       registers the subscription (push.subscribe); rejects with an Error whose .code is
//       'denied' (the user refused notifications) or the server's error code.
//   disablePush() -> Promise<void>: unsubscribes here and on the server.
import { api } from './api.js';

function b64uToBytes(s) {
  const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

function sameKey(a, b) {
  if (!a || a.byteLength !== b.byteLength) return false;
  const x = new Uint8Array(a);
  return x.every((v, i) => v === b[i]);
}

export function pushSupported() {
  return 'serviceWorker' in navigator && 'PushManager' in self && 'Notification' in self;
}

export async function pushState() {
  if (!pushSupported()) return 'unsupported';
  if (Notification.permission === 'denied') return 'denied';
  const reg = await navigator.serviceWorker.getRegistration();
  const sub = reg && await reg.pushManager.getSubscription();
  return sub ? 'on' : 'off';
}

export async function enablePush() {
  if (!pushSupported()) throw Object.assign(new Error('push is not supported here'), { code: 'unsupported' });
  const perm = await Notification.requestPermission();
  if (perm !== 'granted') throw Object.assign(new Error('notifications were not allowed'), { code: 'denied' });
  const reg = await navigator.serviceWorker.ready;
  const { key } = await api.call('push.vapid_key');
  const serverKey = b64uToBytes(key);
  let sub = await reg.pushManager.getSubscription();
  // A subscription made for another key (another server, a restored one) cannot carry ours.
  if (sub && !sameKey(sub.options && sub.options.applicationServerKey, serverKey)) {
    await sub.unsubscribe();
    sub = null;
  }
  if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: serverKey });
  const j = sub.toJSON();
  await api.call('push.subscribe', { endpoint: j.endpoint, p256dh: j.keys.p256dh, auth: j.keys.auth });
}

export async function disablePush() {
  const reg = await navigator.serviceWorker.getRegistration();
  const sub = reg && await reg.pushManager.getSubscription();
  if (!sub) return;
  const endpoint = sub.endpoint;
  await sub.unsubscribe();
  try {
    await api.call('push.unsubscribe', { endpoint });
  } catch (e) {
    if (e.code !== 'not_found') throw e; // already gone on the server (a 410, a logout)
  }
}
