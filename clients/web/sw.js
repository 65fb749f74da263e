// sw.js: the service worker. Keeps the app shell (the page, its styles, its modules, vendored
// libraries and icons) in one Cache Storage cache so the client opens while offline, and
// nothing else: never /api/* (messages, rooms, blobs, uploads), never another origin, never a
// non-GET. Network first: online, every file is asked of the server as before (conditional, so
// an unchanged file is a 304 with no body: "Serving" in docs/web.md) and the fresh copy
// replaces the cached one, so a changed file shows at the next load as without a worker; the
// cache answers only when the network fails or has not answered within NET_WAIT_MS (a phone on
// a weak signal). The shell holds no personal data, so a shared PC keeps it too; logging out
// deletes every other cache (api.wipe).

const SHELL = 'kizuna-shell-v1';
const NET_WAIT_MS = 4000;
// Fetched at install, so a first visit that never opened a page (admin, gallery) still has them.
const PRECACHE = ['/', '/index.html', '/app.css', '/app.js', '/css/admin.css', '/icon.svg',
  '/manifest.webmanifest', '/js/api.js', '/js/router.js', '/js/i18n.js', '/js/dom.js',
  '/js/session.js', '/js/strings.js', '/js/pages/login.js', '/js/pages/rooms.js',
  '/js/pages/room.js', '/js/pages/sessions.js', '/js/pages/search.js', '/js/snapshot.js',
  // Photos taken offline are encrypted and staged before the network is back (photo_send.js).
  '/js/photos.js', '/js/photo_send.js', '/js/exif.js', '/js/crypto/sodium.js', '/js/crypto/keys.js',
  '/js/crypto/photo.js', '/js/crypto/blob.js', '/js/crypto/device.js', '/js/crypto/devlist.js',
  '/js/crypto/trust.js', '/vendor/libsodium/libsodium-wrappers.mjs', '/vendor/libsodium/libsodium.mjs'];

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(SHELL)
    .then((c) => Promise.all(PRECACHE.map((u) => c.add(new Request(u, { cache: 'no-cache' })).catch(() => {}))))
    .then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n !== SHELL).map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

function cacheable(req, url) {
  return req.method === 'GET' && url.origin === self.location.origin &&
    !url.pathname.startsWith('/api/') && !req.headers.has('authorization');
}

async function fromNetwork(req, key) {
  const res = await fetch(req);
  if (res.ok && res.type === 'basic') {
    const copy = res.clone();
    caches.open(SHELL).then((c) => c.put(key, copy)).catch(() => {});
  }
  return res;
}

self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (!cacheable(e.request, url)) return; // the browser's own handling, untouched
  // One entry per path: ?v= names the same file, and the page's hash never reaches us.
  const key = url.pathname === '/' ? '/index.html' : url.pathname;
  e.respondWith((async () => {
    const net = fromNetwork(e.request, key);
    let timer;
    const late = new Promise((res) => { timer = setTimeout(res, NET_WAIT_MS); });
    try {
      const r = await Promise.race([net, late]);
      if (r) return r;
      const cached = await caches.match(key, { cacheName: SHELL });
      return cached || await net;
    } catch (err) {
      const cached = await caches.match(key, { cacheName: SHELL });
      if (cached) return cached;
      throw err;
    } finally {
      clearTimeout(timer);
    }
  })());
});

// ---- Web Push (js/push.js, docs/notifications.md) ----
// What kizunad pushes is small JSON (kind, ids, a title or a sender's name; never a message's
// text or a notice's body). Each push shows one notification, replaced by the next of the same
// notice or room (tag); a tap opens (or focuses) the client on it.
const PUSH_TEXT = {
  notice: { body: '至急のお知らせ / Urgent notice', urgent: true },
  rollcall: { body: '回答してください / Please answer', urgent: true },
  // notice.remind, to those who have not done what the notice asks; urgent or not, it asks.
  reminder: { body: 'まだ済んでいません / Reminder: not done yet', urgent: true },
  direct: { body: '新しいメッセージ / New message' },
  photo: { body: '新しい写真 / New photo' },
  hotline: { body: '第一報 / First report', urgent: true },
};

self.addEventListener('push', (e) => {
  let d = {};
  try {
    d = e.data ? e.data.json() : {};
  } catch {
    d = {};
  }
  const kind = PUSH_TEXT[d.kind] ? d.kind : 'notice';
  const text = PUSH_TEXT[kind];
  const isNotice = kind === 'notice' || kind === 'rollcall' || kind === 'reminder';
  const title = String((isNotice || kind === 'hotline' ? d.title : d.from) || '絆 Kizuna').slice(0, 200);
  const url = isNotice && Number.isInteger(d.notice) ? '/#/notices/' + d.notice
    : typeof d.room === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(d.room) ? '/#/room/' + d.room : '/#/';
  e.waitUntil(self.registration.showNotification(title, {
    body: text.body,
    tag: isNotice ? 'notice-' + d.notice : 'room-' + d.room,
    requireInteraction: !!text.urgent,
    icon: '/icon-192.png',
    lang: 'ja',
    data: { url },
  }));
});

self.addEventListener('notificationclick', (e) => {
  e.notification.close();
  const url = (e.notification.data && e.notification.data.url) || '/#/';
  e.waitUntil((async () => {
    const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const w of wins) {
      if (new URL(w.url).origin === self.location.origin) {
        await w.focus();
        return w.navigate(url);
      }
    }
    return self.clients.openWindow(url);
  })());
});
