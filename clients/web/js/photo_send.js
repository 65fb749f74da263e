// photo_send.js: sending encrypted photos from the browser (issue 21, items 2 and 3), as the CLI's
// `photo send` does (clients/cli/upload.c, room.c, trust.c's sending half):
//   1. prepare: EXIF capture time and GPS read first (js/exif.js), then the image drawn upright
//      into a canvas, downscaled to media/'s profile (longest edge ≤2048, JPEG quality 85) and
//      re-encoded, so no byte of the original file (EXIF, XMP, maker notes) leaves the page; the
//      thumbnail ≤320 px and ≤12 KiB (quality 80 down to 30 by 10, then a quarter smaller);
//   2. stage: the JPEG encrypted once into a KZB1 blob; the ciphertext, the upload's URL and
//      offset kept in IndexedDB (store "outbox"), with everything secret (caption, GPS, time,
//      blob key, thumbnail) sealed under a key derived from this device's box secret key, so a
//      reload resumes without encrypting again. On a shared PC nothing is kept: the page's
//      memory only;
//   3. upload: tus subset (POST, HEAD, PATCH with Upload-Checksum blake2b), resuming from the
//      server's offset after any cut, with backoff, and progress;
//   4. post: the room read (room.devices and its e2ee events), key requests answered, the
//      epoch kept or rotated, e2ee.keys to the devices that an accepted signed list names (each
//      device left out is shown with why), then the e2ee.photo with the thumbnail inside; a
//      `conflict` (a recipient left in between) starts a new epoch, at most three times.
// Thumbnail first: the photo message (with its inline thumbnail, caption, time and place) is
// posted as soon as the upload exists on the server, before its bytes go, so HQ sees the
// thumbnail at once on a congested link; the server lets members download the blob only once
// this user's upload of it is whole (until then it answers 503 blob_not_here, state
// "uploading", with the upload's progress). rec.posted in the outbox says the message went, so
// a reload goes on with the bytes alone (a repost would be answered from its client_id anyway).

import { api } from './api.js';
import { h, clear } from './dom.js';
import { t, addStrings } from './i18n.js';
import { sodium, utf8, concat, equalBytes, hex, E2eeError } from './crypto/sodium.js';
import { envelopeSeal, envelopeOpen, aeadSeal, aeadOpen, devkeyVerify, policyVerify, sign } from './crypto/keys.js';
import { epochCheck, photoSeal } from './crypto/photo.js';
import { blobEncrypt } from './crypto/blob.js';
import { myDevice, localDevice, qualify, b64u, unb64u, idbDo } from './crypto/device.js';
import { vouched } from './crypto/trust.js';
import { exifRead } from './exif.js';

addStrings({
  ja: {
    'send.camera': '写真',
    'send.preparing': '写真を準備しています…',
    'send.uploading': '写真を送信しています {percent}%',
    'send.waiting': '接続を待っています（{percent}% まで送信済み）',
    'send.posting': '写真を投稿しています…',
    'send.done': '写真を送信しました',
    'send.failed': '写真を送れませんでした（{why}）',
    'send.excluded': '端末 {device}（{login}）には鍵を送りません: {why}',
  },
  en: {
    'send.camera': 'Photo',
    'send.preparing': 'Preparing the photo…',
    'send.uploading': 'Sending the photo {percent}%',
    'send.waiting': 'Waiting for the network ({percent}% sent)',
    'send.posting': 'Posting the photo…',
    'send.done': 'Photo sent',
    'send.failed': 'Could not send the photo ({why})',
    'send.excluded': 'device {device} ({login}) gets no key: {why}',
  },
});

const MAX_EDGE = 2048, QUALITY = 85, THUMB_EDGE = 320, THUMB_MAX = 12288;
const CHUNK_MIN = 16 << 10, CHUNK_START = 64 << 10, CHUNK_MAX = 1 << 20;
const PATCH_GRACE_MS = 20000, PATCH_MIN_RATE = 8 << 10; // bytes/s: slower is a dead link
const EPOCH_MAX_PHOTOS = 100, EPOCH_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
const DOMAIN_E2EE = 'kizuna/e2ee/v1';

// ---- 1. prepare ----

async function encodeJpeg(bitmap, w, h, quality) {
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  const g = c.getContext('2d');
  g.imageSmoothingQuality = 'high';
  g.drawImage(bitmap, 0, 0, w, h);
  const blob = await new Promise((res) => c.toBlob(res, 'image/jpeg', quality / 100));
  c.width = c.height = 0;
  if (!blob) throw new Error('the browser cannot encode JPEG');
  return new Uint8Array(await blob.arrayBuffer());
}

function fit(w, h, edge) {
  const s = Math.max(w, h) > edge ? edge / Math.max(w, h) : 1;
  return [Math.max(1, Math.round(w * s)), Math.max(1, Math.round(h * s))];
}

// The file's bytes -> {image, w, h, thumb, tw, th, capturedAt, gps}. createImageBitmap applies
// the EXIF orientation ('from-image'), so the canvas draws it upright.
export async function preparePhoto(bytes) {
  const meta = exifRead(bytes);
  const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/jpeg' }), { imageOrientation: 'from-image' });
  try {
    const [w, h] = fit(bitmap.width, bitmap.height, MAX_EDGE);
    const image = await encodeJpeg(bitmap, w, h, QUALITY);
    let [tw, th] = fit(bitmap.width, bitmap.height, THUMB_EDGE);
    for (;;) {
      for (let q = Math.min(QUALITY, 80); q >= 30; q -= 10) {
        const thumb = await encodeJpeg(bitmap, tw, th, q);
        if (thumb.length <= THUMB_MAX) return { image, w, h, thumb, tw, th, capturedAt: meta.capturedAt, gps: meta.gps };
      }
      if (Math.max(tw, th) <= 16) throw new Error('no thumbnail fits in 12 KiB');
      tw = Math.max(1, Math.floor(tw * 3 / 4));
      th = Math.max(1, Math.floor(th * 3 / 4));
    }
  } finally {
    bitmap.close();
  }
}

// ---- 2. stage ----

const memoryOutbox = new Map(); // a shared PC's staged photos: never written anywhere
const shared = () => !!api.session?.shared;

async function outboxPut(rec) {
  if (shared()) { memoryOutbox.set(rec.name, rec); return; }
  await idbDo('outbox', 'readwrite', (st) => st.put(rec));
}
async function outboxDel(name) {
  memoryOutbox.delete(name);
  if (!shared()) await idbDo('outbox', 'readwrite', (st) => st.delete(name));
}
async function outboxAll() {
  if (shared()) return [...memoryOutbox.values()];
  return (await idbDo('outbox', 'readonly', (st) => st.getAll())) || [];
}

// A photo without GPS in its EXIF takes the browser's location instead (issue 21, item 2), only
// with the user's consent: the browser asks once per site ("allow location?") and a refusal,
// no fix within 10 s or a browser without geolocation mean no location, never a failed send.
// A fix up to a minute old is taken (the phone usually has one); only lat/lon travel, inside
// the encryption, as EXIF GPS does.
function browserLocation() {
  if (!navigator.geolocation) return Promise.resolve(null);
  return new Promise((resolve) => {
    const done = setTimeout(() => resolve(null), 11000);
    navigator.geolocation.getCurrentPosition((pos) => {
      clearTimeout(done);
      const { latitude: lat, longitude: lon } = pos.coords;
      resolve(Number.isFinite(lat) && Number.isFinite(lon) ? { lat, lon } : null);
    }, () => { clearTimeout(done); resolve(null); }, { enableHighAccuracy: true, timeout: 10000, maximumAge: 60000 });
  });
}

async function stagingKey(me) {
  const s = await sodium();
  return s.crypto_generichash(32, concat(utf8('kizuna/staging/v1'), new Uint8Array([0]), me.keys.boxSk), null);
}

async function stage(me, room, fileBytes, fileName, caption) {
  const s = await sodium();
  const name = hex(s.crypto_generichash(16, concat(utf8(me.user), new Uint8Array([0]), utf8(room), new Uint8Array([0]), fileBytes), null));
  const old = (await outboxAll()).find((r) => r.name === name);
  if (old) return old; // the same photo for the same room: resume it
  const p = await preparePhoto(fileBytes);
  if (!p.gps) p.gps = await browserLocation();
  const b = await blobEncrypt(p.image);
  const blobId = hex(b.hash);
  const secret = {
    caption, captured_at: p.capturedAt, gps: p.gps, file_name: fileName,
    key: await b64u(b.key), len: p.image.length, w: p.w, h: p.h,
    thumb: await b64u(p.thumb), thumb_w: p.tw, thumb_h: p.th,
  };
  const rec = {
    name, user: me.user, room, blob: b.blob, blobId, blobLen: b.blob.length, upload: null, offset: 0,
    sealed: await aeadSeal(utf8(JSON.stringify(secret)), utf8(blobId), await stagingKey(me)),
    clientId: 'p-' + (await b64u(s.randombytes_buf(16))), seq: 0, created: Date.now(),
  };
  p.image.fill(0);
  b.key.fill(0);
  await outboxPut(rec);
  return rec;
}

async function unseal(me, rec) {
  const plain = await aeadOpen(rec.sealed, utf8(rec.blobId), await stagingKey(me));
  return JSON.parse(new TextDecoder().decode(plain));
}

// ---- 3. upload ----

const sleep = (ms) => new Promise((res) => {
  const done = () => { window.removeEventListener('online', done); clearTimeout(id); res(); };
  const id = setTimeout(done, ms);
  window.addEventListener('online', done);
});

function std64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

// The upload exists on the server (POST, or HEAD of the one the outbox names): where to go on.
async function uploadOpen(rec, save, auth) {
  if (!rec.upload) {
    const r = await fetch('/api/v1/uploads', { method: 'POST', headers: { ...auth(), 'Upload-Length': String(rec.blobLen), 'Upload-Metadata': 'blob ' + btoa(rec.blobId) } });
    if (r.status >= 500) throw new TypeError('server busy');
    if (r.status !== 201) throw new E2eeError('refused', `the server refuses the upload: HTTP ${r.status}`);
    await save(r.headers.get('Location'), Number(r.headers.get('Upload-Offset')) || 0);
    return true;
  }
  const r = await fetch(rec.upload, { method: 'HEAD', headers: auth() });
  if (r.status === 404 || r.status === 410) { await save(null, 0); return false; }
  if (r.status >= 500) throw new TypeError('server busy');
  if (r.status !== 200) throw new E2eeError('refused', `the server refuses the upload: HTTP ${r.status}`);
  await save(rec.upload, Number(r.headers.get('Upload-Offset')) || 0);
  return true;
}

// Waits out a cut connection or an offline phone (or until the browser says it is online).
function backoff(attempt) {
  const cap = Math.min(10000, 250 * 2 ** Math.min(attempt, 6));
  return sleep(cap / 2 + Math.random() * cap / 2);
}

// Makes sure the upload exists (created, or the outbox's one still live), retrying through cuts.
async function uploadStart(rec, progress) {
  const auth = () => ({ Authorization: `Bearer ${api.session?.token || ''}` });
  const save = async (upload, offset) => { rec.upload = upload; rec.offset = offset; await outboxPut(rec); };
  for (let attempt = 0; ; attempt++) {
    try {
      if (await uploadOpen(rec, save, auth)) return;
    } catch (e) {
      if (!(e instanceof TypeError)) throw e;
      progress(rec.offset / rec.blobLen, true);
      await backoff(attempt);
    }
  }
}

// One PATCH, given up (as a network failure: resumed from HEAD) when the browser says it went
// offline or when it is slower than PATCH_MIN_RATE: a request on a dead mobile link can hang for
// minutes with no error, and the phone would wait on it rather than on a new connection.
async function patchOnce(url, body, headers) {
  const ac = new AbortController();
  const give = () => ac.abort();
  const timer = setTimeout(give, PATCH_GRACE_MS + (body.length / PATCH_MIN_RATE) * 1000);
  window.addEventListener('offline', give);
  try {
    return await fetch(url, { method: 'PATCH', body, headers, signal: ac.signal });
  } catch (e) {
    throw e?.name === 'AbortError' ? new TypeError('the upload stalled') : e;
  } finally {
    clearTimeout(timer);
    window.removeEventListener('offline', give);
  }
}

async function uploadBlob(rec, progress) {
  const auth = () => ({ Authorization: `Bearer ${api.session?.token || ''}` });
  const s = await sodium();
  let chunk = CHUNK_START, attempt = 0;
  const save = async (upload, offset) => { rec.upload = upload; rec.offset = offset; await outboxPut(rec); };
  for (;;) {
    try {
      if (!(await uploadOpen(rec, save, auth))) continue;
      progress(rec.offset / rec.blobLen, false);
      while (rec.offset < rec.blobLen) {
        const body = rec.blob.subarray(rec.offset, Math.min(rec.blobLen, rec.offset + chunk));
        const r = await patchOnce(rec.upload, body, {
          ...auth(), 'Upload-Offset': String(rec.offset), 'Content-Type': 'application/offset+octet-stream',
          'Upload-Checksum': 'blake2b ' + std64(s.crypto_generichash(32, body, null)) });
        if (r.status === 204) {
          await save(rec.upload, Number(r.headers.get('Upload-Offset') ?? rec.offset + body.length));
          chunk = Math.min(CHUNK_MAX, chunk * 2);
          attempt = 0;
          progress(rec.offset / rec.blobLen, false);
          continue;
        }
        chunk = Math.max(CHUNK_MIN, chunk / 2);
        if (r.status === 409 && r.headers.get('Upload-Offset')) { await save(rec.upload, Number(r.headers.get('Upload-Offset'))); continue; }
        if (r.status === 404 || r.status === 410) { await save(null, 0); break; }
        if (r.status >= 500 || r.status === 460 || r.status === 400) throw new TypeError(`HTTP ${r.status}`);
        throw new E2eeError('refused', `the server refuses the upload: HTTP ${r.status}`);
      }
      if (rec.upload && rec.offset >= rec.blobLen) return;
    } catch (e) {
      if (!(e instanceof TypeError)) throw e;
      // A cut connection, an offline phone: wait (or until the browser says it is online),
      // then ask the server where to resume.
      chunk = Math.max(CHUNK_MIN, chunk / 2);
      progress(rec.offset / rec.blobLen, true);
      await backoff(attempt++);
    }
  }
}

// ---- 4. the room, the epoch and the message ----

function signedBytes(room, type, blobs, data) {
  const z = new Uint8Array([0]);
  return concat(utf8(room), z, utf8(type), z, ...(blobs || []).flatMap((b) => [utf8(String(b)), z]), utf8(data));
}

const epochs = new Map(); // room -> {epoch, key, created, count, devices: [ids], keysPosted, holders: Set}

async function directoryOf(login, cache) {
  if (!cache.has(login)) {
    cache.set(login, (async () => {
      const r = await api.call('device.list', { login });
      const v = await vouched(login, r);
      return { reply: r, current: v.current, ever: v.ever };
    })());
  }
  return cache.get(login);
}

// The room as the sender must see it: every e2ee event, the creation's signed history policy,
// room.devices split into the devices keys go to and those left out (with why).
async function roomView(me, room) {
  const cache = new Map();
  const rd = await api.call('room.devices', { room });
  const events = [];
  let creation = null;
  for (let after = 0, more = true; more;) {
    const r = await api.call('history', { room, after, limit: 100 });
    const evs = r.events || [];
    for (const ev of evs) {
      if (ev.pos > after) after = ev.pos;
      if (String(ev.event).startsWith('e2ee.')) events.push(ev);
      else if (!creation && ev.event === 'room.create') creation = ev;
    }
    more = !!r.more && evs.length > 0;
  }
  const devices = [], excluded = [];
  for (const d of rd.devices || []) {
    let why = '';
    try {
      const dir = await directoryOf(d.login, cache);
      const signPk = await unb64u(d.sign_pk), boxPk = await unb64u(d.box_pk);
      const i = dir.current ? dir.current.devices.findIndex((x) => x.id === d.device) : -1;
      if (!(await devkeyVerify(qualify(d.login), d.device, signPk, boxPk, await unb64u(d.sig)))) why = 'its self-signature does not verify';
      else if (!dir.current) why = `${d.login} has no signed device list yet`;
      else if (i < 0) why = `${d.device} is not in ${d.login}'s signed device list (not approved)`;
      else if (!equalBytes(dir.current.devices[i].signPk, signPk) || !equalBytes(dir.current.devices[i].boxPk, boxPk))
        why = `the server's keys for ${d.device} differ from ${d.login}'s signed device list`;
      if (!why) devices.push({ ...d, boxPk });
    } catch (e) {
      why = e.message || String(e);
    }
    if (why) excluded.push({ device: d.device, login: d.login, why });
  }
  const history = await policyOf(room, creation, cache);
  return { room, me, events, devices, excluded, history, member: (id) => devices.some((d) => d.device === id) };
}

// The history policy signed into the room's creation (clients/cli/room.c policy_check): '' when
// it does not stand, and then no key is shared later.
async function policyOf(room, creation, cache) {
  try {
    const payload = creation?.payload;
    if (!payload) return '';
    const s = await sodium();
    const id = s.to_base64(s.crypto_generichash(32, concat(utf8('kizuna/room/v1'), new Uint8Array([0]), utf8(payload)), null),
      s.base64_variants.URLSAFE_NO_PADDING);
    if (id !== room) return '';
    const p = JSON.parse(payload);
    const pol = p.content?.policy;
    if (p.type !== 'room.create' || !pol || !['shared', 'joined'].includes(pol.history) || pol.history !== p.content.history) return '';
    const dir = await directoryOf(p.sender, cache);
    const d = (dir.reply.devices || []).find((x) => x.device === pol.device);
    if (!d || !dir.ever.has(pol.device)) return '';
    const spk = await unb64u(d.sign_pk);
    if (!(await devkeyVerify(qualify(p.sender), d.device, spk, await unb64u(d.box_pk), await unb64u(d.sig)))) return '';
    return (await policyVerify(qualify(p.sender), pol.history, spk, await unb64u(pol.sig))) ? pol.history : '';
  } catch {
    return '';
  }
}

async function post(rv, type, data, blobs, clientId) {
  const sig = await sign(DOMAIN_E2EE, signedBytes(rv.room, type, blobs, data), rv.me.keys.signSk);
  const args = { room: rv.room, type, device: rv.me.id, data, sig: await b64u(sig) };
  if (blobs) args.blobs = blobs;
  if (clientId) args.client_id = clientId;
  const r = await api.call('e2ee.post', args);
  rv.events.push({ event: type, pos: r.pos, sender: rv.me.user, content: args });
  return r;
}

async function envelope(rv, owner, epoch, key, dev) {
  const plain = JSON.stringify({ room: rv.room, owner, epoch, key: await b64u(key), from: rv.me.id, to: dev.device });
  return { to: dev.device, box: await b64u(await envelopeSeal(utf8(plain), rv.me.keys.boxSk, dev.boxPk)) };
}

const dataOf = (ev) => { try { return JSON.parse(ev.content?.data || ''); } catch { return {}; } };

function holderGone(rv, own) {
  for (const id of own.holders) if (!rv.member(id)) return id;
  for (const ev of rv.events) {
    if (ev.event !== 'e2ee.keys') continue;
    const d = dataOf(ev);
    if (d.epoch !== own.epoch || d.owner !== rv.me.id) continue;
    for (const e of d.entries || []) if (e.to && !rv.member(e.to)) return e.to;
  }
  return null;
}

// The room's current epoch of this device (upload.c epoch_current): a new one when the member
// devices changed, a holder left, after 100 photos or 7 days, or when the server refused it.
async function epochCurrent(rv, rotate) {
  const set = rv.devices.map((d) => d.device).sort();
  let own = epochs.get(rv.room);
  const fresh = own && !rotate && JSON.stringify(own.devices) === JSON.stringify(set) &&
    own.count < EPOCH_MAX_PHOTOS && Date.now() - own.created < EPOCH_MAX_AGE_MS && !holderGone(rv, own);
  if (fresh) return own;
  const s = await sodium();
  own = { epoch: await b64u(s.randombytes_buf(16)), key: s.randombytes_buf(32), created: Date.now(), count: 0,
    devices: set, keysPosted: false, holders: new Set() };
  epochs.set(rv.room, own);
  ownKeys.set(`${rv.room}/${own.epoch}`, own.key);
  return own;
}

async function epochShare(rv, own) {
  if (own.keysPosted) return;
  const entries = [];
  for (const d of rv.devices) entries.push(await envelope(rv, rv.me.id, own.epoch, own.key, d));
  const data = JSON.stringify({ epoch: own.epoch, owner: rv.me.id, history: rv.history,
    check: await b64u(await epochCheck(rv.room, rv.me.id, own.epoch, own.key)), entries });
  await post(rv, 'e2ee.keys', data, null, 'k-' + own.epoch);
  own.keysPosted = true;
}

// The key of (owner, epoch) this browser holds: its own epochs, and those the room view opened.
const ownKeys = new Map(); // "room/epoch" -> key, every epoch of this device this page made
async function heldKey(rv, owner, epoch) {
  if (owner === rv.me.id) return ownKeys.get(`${rv.room}/${epoch}`) || (await ownKeyFromLog(rv, epoch));
  const ph = await import('./photos.js');
  return ph.knownKey(rv.room, owner, epoch);
}

// One of this device's own epochs from before a reload (the page keeps them in memory only):
// the envelope it sealed to itself when the epoch began, in the room's log, opened with its
// own keys and checked against the key-check it signed. So a reloaded page still answers key
// requests for its earlier photos, as the CLI does.
async function ownKeyFromLog(rv, epoch) {
  for (const ev of rv.events) {
    if (ev.event !== 'e2ee.keys' || ev.content?.device !== rv.me.id) continue;
    const d = dataOf(ev);
    if (d.epoch !== epoch || d.owner !== rv.me.id || !d.check) continue;
    for (const e of d.entries || []) {
      if (e.to !== rv.me.id) continue;
      try {
        const inner = JSON.parse(new TextDecoder().decode(await envelopeOpen(await unb64u(e.box), rv.me.keys.boxPk, rv.me.keys.boxSk)));
        if (inner.room !== rv.room || inner.owner !== rv.me.id || inner.epoch !== epoch || inner.from !== rv.me.id) continue;
        const key = await unb64u(inner.key);
        if (key.length !== 32 || !equalBytes(await epochCheck(rv.room, rv.me.id, epoch, key), await unb64u(d.check))) continue;
        ownKeys.set(`${rv.room}/${epoch}`, key);
        return key;
      } catch { /* not openable: not ours after all */ }
    }
  }
  return null;
}

async function verifiedBy(rv, ev, cache) {
  try {
    const dir = await directoryOf(ev.sender, cache);
    const d = (dir.reply.devices || []).find((x) => x.device === ev.content?.device);
    if (!d || !dir.ever.has(d.device)) return false;
    const spk = await unb64u(d.sign_pk);
    if (!(await devkeyVerify(qualify(ev.sender), d.device, spk, await unb64u(d.box_pk), await unb64u(d.sig)))) return false;
    const { verify } = await import('./crypto/keys.js');
    return await verify(DOMAIN_E2EE, signedBytes(rv.room, ev.event, ev.content.blobs, ev.content.data || ''), spk, await unb64u(ev.content.sig || ''));
  } catch {
    return false;
  }
}

// Key requests answered (room.c rv_answer_requests): once per request by each holder, unless
// this device or the owner already answered it; withheld with the reason when the requester is
// not a vouched member device, the room has no signed policy, or a "joined" room's epoch began
// before its owner joined.
async function answerRequests(rv) {
  const cache = new Map();
  for (const req of [...rv.events]) {
    if (req.event !== 'e2ee.key_request' || !req.pos) continue;
    const requester = req.content?.device;
    if (!requester || requester === rv.me.id) continue;
    const { epoch, owner } = dataOf(req);
    if (!epoch || !owner) continue;
    const key = await heldKey(rv, owner, epoch);
    if (!key) continue;
    const answered = rv.events.some((ev) => (ev.pos || Infinity) > req.pos &&
      (ev.event === 'e2ee.keys' || ev.event === 'e2ee.withheld') &&
      (ev.content?.device === rv.me.id || ev.content?.device === owner) && (() => {
        const d = dataOf(ev);
        if (d.epoch !== epoch || d.owner !== owner) return false;
        return ev.event === 'e2ee.keys' ? (d.entries || []).some((e) => e.to === requester) : d.to === requester;
      })());
    if (answered || !(await verifiedBy(rv, req, cache))) continue;
    const dev = rv.devices.find((d) => d.device === requester);
    let why = '';
    if (!dev) why = rv.excluded.find((x) => x.device === requester)?.why ||
      'the requesting device is not a current member device of this room (revoked, or its owner left)';
    else if (!rv.history) why = 'this room has no signed history policy: keys are not shared later';
    else if (rv.history === 'joined') {
      const began = rv.events.find((ev) => ev.event === 'e2ee.keys' && dataOf(ev).epoch === epoch && dataOf(ev).owner === owner)?.pos;
      if (!began || dev.joined_pos == null || dev.joined_pos > began) why = 'this room shares photos only from when one joined, and this epoch began before';
    }
    const s = await sodium();
    const cid = 'ans-' + (await b64u(s.crypto_generichash(18, utf8(`${req.pos}\0${req.event_id || ''}\0${rv.me.id}`), null)));
    let data;
    const mine = owner === rv.me.id;
    if (!why) {
      const own = epochs.get(rv.room);
      if (mine && own?.epoch === epoch) own.holders.add(requester);
      const d = { epoch, owner, history: rv.history };
      if (mine) d.check = await b64u(await epochCheck(rv.room, owner, epoch, key));
      d.entries = [await envelope(rv, owner, epoch, key, dev)];
      data = JSON.stringify(d);
    } else {
      data = JSON.stringify({ epoch, owner, to: requester, reason: why });
    }
    try {
      await post(rv, why ? 'e2ee.withheld' : 'e2ee.keys', data, null, cid);
    } catch (e) {
      if (e.code !== 'conflict') throw e; // the requester left meanwhile: nothing to answer
    }
  }
}

export async function answerKeyRequests(room) {
  const me = await myDevice();
  if (!me.approved) return;
  await answerRequests(await roomView(me, room));
}

function seqMax(rv, staged) {
  let m = 0;
  for (const ev of rv.events) if (ev.event === 'e2ee.photo' && ev.content?.device === rv.me.id) m = Math.max(m, Number(dataOf(ev).seq) || 0);
  for (const r of staged) if (r.room === rv.room) m = Math.max(m, r.seq || 0);
  return m;
}

async function postPhoto(me, rec, sec, report) {
  for (let attempt = 0; ; attempt++) {
    const rv = await roomView(me, rec.room);
    for (const x of rv.excluded) report.excluded(x);
    await answerRequests(rv);
    if (!rec.seq) {
      rec.seq = seqMax(rv, await outboxAll()) + 1;
      await outboxPut(rec);
    }
    if (!rv.member(me.id)) throw new E2eeError('refused', me.approved ? 'this device is not in the room' : `this browser is not approved yet: kizuna device approve ${me.id}`);
    const own = await epochCurrent(rv, attempt > 0);
    try {
      await epochShare(rv, own);
      own.count++;
      const msg = JSON.stringify({ caption: sec.caption, captured_at: sec.captured_at, gps: sec.gps, file_name: sec.file_name,
        image: { blob: rec.blobId, key: sec.key, len: sec.len, w: sec.w, h: sec.h, mime: 'image/jpeg' },
        thumb: { jpeg: sec.thumb, w: sec.thumb_w, h: sec.thumb_h } });
      const ct = await photoSeal({ room: rec.room, epoch: own.epoch, device: me.id, seq: rec.seq, ts: rec.created }, msg, own.key);
      const data = JSON.stringify({ epoch: own.epoch, seq: rec.seq, ts: rec.created,
        check: await b64u(await epochCheck(rec.room, me.id, own.epoch, own.key)), ct: await b64u(ct) });
      return await post(rv, 'e2ee.photo', data, [rec.blobId], rec.clientId);
    } catch (e) {
      if (e.code !== 'conflict' || attempt >= 2) throw e;
      epochs.delete(rec.room); // the server says a recipient left: a new epoch
    }
  }
}

// ---- the whole send, and the view of it in the composer ----

const running = new Map(); // name -> Promise

const OFFLINE = new Set(['offline', 'timeout', 'unavailable']); // api.call's codes for "not now"

function untilConnected(progress, rec) {
  if (api.state === 'online') return Promise.resolve();
  progress(rec.offset / rec.blobLen, true);
  return new Promise((resolve) => {
    const off = api.on('state', (st) => { if (st === 'online') { off(); resolve(); } });
  });
}

async function deviceOnline(progress, rec) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await myDevice();
    } catch (e) {
      if (!OFFLINE.has(e.code)) throw e;
      progress(rec.offset / rec.blobLen, true);
      await backoff(attempt);
    }
  }
}

async function finish(me, rec, report) {
  if (running.has(rec.name)) return running.get(rec.name);
  const p = (async () => {
    let sec;
    try {
      sec = await unseal(me, rec);
    } catch {
      // Staged under keys this browser no longer has (revoked and replaced): as the CLI, gone.
      await outboxDel(rec.name);
      throw new E2eeError('refused', "staged under this browser's earlier keys: choose the photo again");
    }
    const progress = (f, waiting) => report.progress(f, waiting);
    for (let tries = 0; !rec.posted; tries++) {
      await uploadStart(rec, progress);
      // The post goes over the WebSocket, which may be down while HTTP answers (reconnecting).
      await untilConnected(progress, rec);
      report.posting();
      // Staged offline with the keys kept here: registered and checked now the server answers.
      if (me.local) me = await deviceOnline(progress, rec);
      try {
        rec.posted = (await postPhoto(me, rec, sec, report)).pos || true;
      } catch (e) {
        if (OFFLINE.has(e.code)) { tries--; continue; } // cut meanwhile: again, when connected
        // The upload expired between its creation and the post: a new one, once.
        if (e.code !== 'not_found' || tries > 0) throw e;
        rec.upload = null;
        rec.offset = 0;
      }
      await outboxPut(rec);
    }
    report.posted();
    await uploadBlob(rec, progress);
    await outboxDel(rec.name);
    return rec.posted;
  })();
  running.set(rec.name, p);
  p.finally(() => running.delete(rec.name)).catch(() => {});
  return p;
}

// Draws one photo's progress line in the list el; returns the report callbacks.
function reporter(list) {
  const line = h('li', { class: 'send-line', dataset: { sendState: 'preparing' } }, t('send.preparing'));
  const bar = h('progress', { max: '100', value: '0' });
  list.append(line);
  const notes = new Set();
  return {
    line,
    progress(f, waiting) {
      const percent = Math.floor(f * 100);
      clear(line);
      line.dataset.sendState = waiting ? 'waiting' : 'uploading';
      line.dataset.percent = String(percent);
      bar.value = percent;
      line.append(h('span', null, t(waiting ? 'send.waiting' : 'send.uploading', { percent })), bar);
    },
    posting() { clear(line); line.dataset.sendState = 'posting'; line.append(t('send.posting')); },
    posted() { line.dataset.posted = 'true'; },
    excluded(x) {
      const k = `${x.device}/${x.why}`;
      if (notes.has(k)) return;
      notes.add(k);
      list.append(h('li', { class: 'send-excluded muted' }, t('send.excluded', x)));
    },
    done() { clear(line); line.dataset.sendState = 'done'; line.append(t('send.done')); setTimeout(() => line.remove(), 3000); },
    failed(e) { clear(line); line.dataset.sendState = 'failed'; line.append(t('send.failed', { why: e.message || String(e) })); },
  };
}

// Sends the chosen files to room, each with caption; progress lines go into list.
export async function sendPhotos(room, files, caption, list) {
  for (const file of files) {
    const rep = reporter(list);
    try {
      const me = await localDevice(); // offline too: staged now, sent when the network is back
      const bytes = new Uint8Array(await file.arrayBuffer());
      const rec = await stage(me, room, bytes, file.name || 'photo.jpg', caption);
      bytes.fill(0);
      await finish(me, rec, rep);
      rep.done();
    } catch (e) {
      rep.failed(e);
    }
  }
}

// Photos of this user for room staged before a reload or a cut: resumed from the server's offset.
export async function resumePending(room, list) {
  const login = api.session?.user?.login;
  const recs = login ? (await outboxAll()).filter((r) => r.room === room && r.user === qualify(login)) : [];
  if (!recs.length) return; // (libsodium is loaded only when there is something to send)
  const me = await localDevice();
  for (const rec of recs) {
    const rep = reporter(list);
    finish(me, rec, rep).then(() => rep.done(), (e) => rep.failed(e));
  }
}
