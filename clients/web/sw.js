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
// What kizunad pushes is small JSON (kind, ids, a title or a sender's name; the start of a
// message only for someone who turned previews on, never a notice's body or anything of a
// photo). Each push shows one notification, replaced by the next of the same notice or room
// (tag); a tap opens (or focuses) the client on it, at the message's position for a room.
const ANSWER_HINT = 'ボタンで回答できます / Answer with a button';
const PUSH_TEXT = {
  notice: { body: '至急のお知らせ', urgent: true },
  rollcall: { body: '安否確認です。回答してください', urgent: true },
  reminder: { body: 'まだ回答していないお知らせがあります', urgent: true },
  direct: { body: '新しいメッセージが届きました' },
  mention: { body: 'あなた宛てのメッセージがあります' },
  photo: { body: '新しい写真が投稿されました' },
  hotline: { body: '第一報が届きました', urgent: true },
};

const clip = (v, n) => (typeof v === 'string' ? v.slice(0, n) : '');

// Title and body per kind: who and where, or the notice's title; the text if it came.
function pushShown(d) {
  const kind = PUSH_TEXT[d.kind] ? d.kind : 'notice';
  const from = clip(d.from, 80), where = clip(d.title, 120), text = clip(d.text, 300);
  let title;
  if (kind === 'notice' || kind === 'rollcall' || kind === 'reminder') title = where || '絆 Kizuna';
  else if (kind === 'hotline') title = `【第一報】${where}`;
  else if (kind === 'mention') title = where ? `${from}（${where}）` : from;
  else title = from;
  return { kind, title: title || '絆 Kizuna', body: text || PUSH_TEXT[kind].body };
}

self.addEventListener('push', (e) => {
  let d = {};
  try {
    d = e.data ? e.data.json() : {};
  } catch {
    d = {};
  }
  if (!d || typeof d !== 'object') d = {};
  const { kind, title, body } = pushShown(d);
  const isNotice = kind === 'notice' || kind === 'rollcall' || kind === 'reminder';
  const roomOk = typeof d.room === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(d.room);
  const url = isNotice && Number.isInteger(d.notice) ? '/#/notices/' + d.notice
    : roomOk ? '/#/room/' + d.room + (Number.isInteger(d.pos) && d.pos > 0 ? '?pos=' + d.pos : '') : '/#/';
  // A roll-call's push (and its reminder's) carries this person's one-tap answer token: its first choices become
  // the notification's buttons, and a tap answers without opening Kizuna (onNotificationClick).
  const answer = (kind === 'rollcall' || kind === 'reminder') && typeof d.answer === 'string' && /^[A-Za-z0-9_-]{43}$/.test(d.answer)
    ? d.answer : null;
  const most = Math.max(0, Math.min(3, self.Notification?.maxActions ?? 2));
  const actions = answer && Array.isArray(d.choices)
    ? d.choices.slice(0, most).map((c, i) => ({ action: 'answer-' + (i + 1), title: String(c?.text || '').slice(0, 60) }))
    : [];
  e.waitUntil(self.registration.showNotification(title, {
    body: actions.length ? body + '\n' + ANSWER_HINT : body,
    tag: isNotice ? 'notice-' + d.notice : 'room-' + d.room,
    requireInteraction: !!PUSH_TEXT[kind].urgent,
    icon: '/icon-192.png',
    lang: 'ja',
    actions,
    data: { url, answer, choices: actions.map((a) => a.title) },
  }));
});

// A tap on a notification: an answer button records that answer with the person's one-tap
// link (the same one a roll-call's e-mail carries, usable once) and says how it went; anywhere
// else opens (or focuses) Kizuna on what it is about.
async function onNotificationClick(notification, action) {
  notification.close();
  const data = notification.data || {};
  const m = /^answer-(\d)$/.exec(action || '');
  if (m && data.answer) {
    const n = Number(m[1]);
    let ok = false;
    let status = 0;
    try {
      const r = await fetch(`/answer/${data.answer}?c=${n}`, { method: 'POST', credentials: 'omit', cache: 'no-store' });
      status = r.status;
      ok = r.ok;
    } catch {
      status = 0;
    }
    const choice = (data.choices || [])[n - 1] || '';
    return self.registration.showNotification(notification.title, {
      body: ok ? `回答しました：${choice} / Answered: ${choice}`
        : status === 409 ? '回答済みです（このボタンは一度だけ使えます） / Already answered'
          : '回答できませんでした。Kizuna を開いて回答してください / Could not answer: open Kizuna',
      tag: notification.tag,
      icon: '/icon-192.png',
      lang: 'ja',
      data: { url: data.url || '/#/' },
    });
  }
  const url = data.url || '/#/';
  const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  for (const w of wins) {
    if (new URL(w.url).origin === self.location.origin) {
      await w.focus();
      return w.navigate(url);
    }
  }
  return self.clients.openWindow(url);
}

self.addEventListener('notificationclick', (e) => {
  e.waitUntil(onNotificationClick(e.notification, e.action));
});
