// photos.js: encrypted photos in a room's timeline, decrypted in this browser (issue 21, item 4;
// docs/protocol.md, "End-to-end encrypted photos"). The room page hands every event it gets to
// noteEvent() (the e2ee.keys events it hides included) and each e2ee.photo's body element to
// photoBody(), which fills it: the thumbnail from inside the message at once, then caption,
// capture time and the location as a geo: link; the full image on a tap, downloaded and
// decrypted here. A photo that cannot be shown says why, in one of three ways: its blob is not
// on this server yet (x%), the key is awaited from a named device on a named server (this
// browser asks for it, as the CLI does), or something failed its integrity check (which).
//
// Checked before anything is shown: the event's device signature (kizuna/e2ee/v1) against the
// sender's device directory, whose self-signatures must name the qualified sender, and which a
// signed device list of the sender this browser accepted (crypto/trust.js, pinned) named at some
// version; a device revoked at an earlier position signs nothing later. Not yet here
// (docs/web.md says so): the replay/order checks on seq. Others' key requests are answered by
// js/photo_send.js, with the keys knownKey() gives it.

import { api } from './api.js';
import { h, clear, formatTime } from './dom.js';
import { t, addStrings } from './i18n.js';
import { utf8, concat, equalBytes, E2eeError } from './crypto/sodium.js';
import { verify, devkeyVerify, envelopeOpen } from './crypto/keys.js';
import { epochCheck, photoOpen } from './crypto/photo.js';
import { blobDecrypt } from './crypto/blob.js';
import { myDevice, qualify, b64u, unb64u } from './crypto/device.js';
import { vouched } from './crypto/trust.js';

addStrings({
  ja: {
    'photo.decrypting': '[写真] 復号しています…',
    'photo.waiting_key': '[写真] 鍵を待っています（{server} の端末 {device} から）',
    'photo.not_here': '[写真] まだこのサーバーに届いていません（{percent}%）',
    'photo.uploading': '[写真] 送信者がまだ送っています（{percent}%）',
    'photo.stalled': '[写真] 送信者の接続が切れています。つながり次第届きます',
    'photo.integrity': '[写真] 完全性の確認に失敗しました（{why}）',
    'photo.not_approved': '[写真] このブラウザはまだ承認されていません（承認済みの端末で kizuna device approve {device}）',
    'photo.open': '写真を開く',
    'photo.loading': '写真を読み込んでいます…',
    'photo.captured': '撮影 {at}',
    'photo.location': '位置 {lat}, {lon}',
    'photo.thumb_alt': '写真の縮小画像',
    'photo.image_alt': '写真',
    'photo.error': '[写真] 表示できません（{why}）',
    'photo.replay': '[写真] 表示しません: #{pos} と同じ写真の再送です（同じ端末・同じ番号）',
  },
  en: {
    'photo.decrypting': '[photo] decrypting…',
    'photo.waiting_key': '[photo] waiting for the key from device {device} on server {server}',
    'photo.not_here': '[photo] not here yet ({percent}%)',
    'photo.uploading': '[photo] its sender is still sending it ({percent}%)',
    'photo.stalled': "[photo] its sender's connection dropped: it comes when they are back online",
    'photo.integrity': '[photo] failed its integrity check ({why})',
    'photo.not_approved': '[photo] this browser is not approved yet (on an approved device: kizuna device approve {device})',
    'photo.open': 'Open the photo',
    'photo.loading': 'Loading the photo…',
    'photo.captured': 'taken {at}',
    'photo.location': 'location {lat}, {lon}',
    'photo.thumb_alt': 'thumbnail of the photo',
    'photo.image_alt': 'photo',
    'photo.error': '[photo] cannot be shown ({why})',
    'photo.replay': '[photo] refused: a replay of #{pos} (same device, same number)',
  },
});

const DOMAIN_E2EE = 'kizuna/e2ee/v1';
const KEY_SCAN_PAGES = 20; // history pages of 100 searched back for a photo's key

// Per room: e2ee.keys events seen, keys taken by "owner/epoch", checks the owners signed,
// requests posted.
const rooms = new Map();
function roomState(room) {
  if (!rooms.has(room)) rooms.set(room, { keyEvents: new Map(), keys: new Map(), forwarded: [], asked: new Set(), waiting: new Set(), seqs: new Map() });
  return rooms.get(room);
}
const directory = new Map(); // sender -> Promise of Map(device id -> {signPk, boxPk, rec})

// The key of (owner, epoch) this page took for room, or null (js/photo_send.js answers others'
// key requests with it, as the CLI does).
export function knownKey(room, owner, epoch) {
  return roomState(room).keys.get(`${owner}/${epoch}`) || null;
}

// The room page calls this for every event of the room, shown or not.
export function noteEvent(room, ev) {
  if (ev.event !== 'e2ee.keys' || !ev.pos) return;
  const st = roomState(room);
  if (st.keyEvents.has(ev.pos)) return;
  st.keyEvents.set(ev.pos, ev);
  // A key that arrives live (an answer to our request) may be the one a photo waits for.
  for (const w of [...st.waiting]) {
    st.waiting.delete(w);
    if (w.el.isConnected) photoBody(room, w.ev, w.el);
  }
}

// Everything decrypted is dropped with the page's session (the module's maps live in the page).
function devicesOf(sender) {
  if (!directory.has(sender)) {
    const p = (async () => {
      const r = await api.call('device.list', { login: sender });
      const out = new Map();
      for (const d of r.devices || []) {
        try {
          const signPk = await unb64u(d.sign_pk), boxPk = await unb64u(d.box_pk);
          if (d.login && d.login !== sender && qualify(d.login) !== qualify(sender)) continue;
          if (!(await devkeyVerify(qualify(sender), d.device, signPk, boxPk, await unb64u(d.sig)))) continue;
          out.set(d.device, { signPk, boxPk, rec: d });
        } catch { /* a malformed entry is nobody's device */ }
      }
      out.vouched = (await vouched(sender, r)).ever;
      return out;
    })();
    p.catch(() => directory.delete(sender));
    directory.set(sender, p);
  }
  return directory.get(sender);
}

function signedBytes(room, type, blobs, data) {
  const z = new Uint8Array([0]);
  return concat(utf8(room), z, utf8(type), z, ...(blobs || []).flatMap((b) => [utf8(String(b)), z]), utf8(data));
}

// The sending device of an event, if its signature holds: {signPk, boxPk}; else throws.
async function checkEvent(room, ev) {
  const c = ev.content || {};
  const dir = await devicesOf(ev.sender);
  const dev = dir.get(c.device);
  if (!dev) throw new E2eeError('not_authentic', 'the sending device is not in the directory');
  if (!dir.vouched.has(c.device))
    throw new E2eeError('not_authentic', "the sending device was never in its owner's signed device list");
  const rp = dev.rec.revoked_pos;
  if ((rp && ev.pos > rp) || (!rp && dev.rec.revoked_at != null))
    throw new E2eeError('not_authentic', 'signed by a revoked device');
  if (!(await verify(DOMAIN_E2EE, signedBytes(room, ev.event, c.blobs, c.data || ''), dev.signPk, await unb64u(c.sig || ''))))
    throw new E2eeError('not_authentic', 'the device signature does not verify');
  return dev;
}

// Takes the key of one e2ee.keys event addressed to this device, by its rules: from the owner
// (matching the check it carries, if any), or forwarded and matching a check the owner signed.
async function takeKeys(room, st, me, ev) {
  const dev = await checkEvent(room, ev);
  const data = JSON.parse(ev.content.data);
  for (const e of data.entries || []) {
    if (e.to !== me.id) continue;
    const inner = JSON.parse(new TextDecoder().decode(await envelopeOpen(await unb64u(e.box), dev.boxPk, me.keys.boxSk)));
    if (inner.room !== room || inner.owner !== data.owner || inner.epoch !== data.epoch ||
      inner.from !== ev.content.device || inner.to !== me.id) continue;
    const key = await unb64u(inner.key);
    if (key.length !== 32) continue;
    const check = await epochCheck(room, data.owner, data.epoch, key);
    if (ev.content.device === data.owner) {
      if (data.check && !equalBytes(check, await unb64u(data.check))) continue;
      st.keys.set(`${data.owner}/${data.epoch}`, key);
    } else {
      st.forwarded.push({ owner: data.owner, epoch: data.epoch, key, check });
    }
  }
}

async function findKey(room, me, owner, epoch, ownerCheck, beforePos) {
  const st = roomState(room);
  const id = `${owner}/${epoch}`;
  const settle = async () => {
    for (const [pos, ev] of st.keyEvents) {
      st.keyEvents.delete(pos);
      try { await takeKeys(room, st, me, ev); } catch { /* not for us, or not authentic */ }
    }
    if (!st.keys.has(id) && ownerCheck) {
      const f = st.forwarded.find((x) => x.owner === owner && x.epoch === epoch && equalBytes(x.check, ownerCheck));
      if (f) st.keys.set(id, f.key);
    }
    return st.keys.get(id);
  };
  let key = await settle();
  // Keys come before their photo: look back from it, a page at a time.
  for (let before = beforePos, pages = 0; !key && before > 1 && pages < KEY_SCAN_PAGES; pages++) {
    const r = await api.call('history', { room, before, limit: 100 });
    const evs = r.events || [];
    if (!evs.length) break;
    for (const ev of evs) noteEvent(room, ev);
    before = Math.min(...evs.map((e) => e.pos));
    key = await settle();
  }
  return key;
}

async function requestKey(room, me, owner, epoch) {
  const st = roomState(room);
  const id = `${owner}/${epoch}`;
  if (st.asked.has(id) || !me.approved) return;
  st.asked.add(id);
  const data = JSON.stringify({ epoch, owner });
  const sig = await me.sign(DOMAIN_E2EE, signedBytes(room, 'e2ee.key_request', [], data));
  try {
    await api.call('e2ee.post', { room, type: 'e2ee.key_request', device: me.id, data, sig: await b64u(sig) });
  } catch { st.asked.delete(id); }
}

function serverOf(sender) {
  const at = sender.lastIndexOf('@');
  return at > 0 ? sender.slice(at + 1) : (api.session?.server_id || '');
}

function line(el, text, cls) {
  clear(el);
  el.append(h('span', { class: ['photo-state', cls] }, text));
}

// Fills el (the message body of an e2ee.photo event) and keeps it current.
export async function photoBody(room, ev, el) {
  line(el, t('photo.decrypting'));
  try {
    const me = await device();
    const c = ev.content || {};
    await checkEvent(room, ev);
    const data = JSON.parse(c.data);
    if (replayOf(room, ev, el, data)) return;
    const ownerCheck = data.check ? await unb64u(data.check) : null;
    const key = await findKey(room, me, c.device, data.epoch, ownerCheck, ev.pos);
    if (!key) {
      line(el, me.approved ? t('photo.waiting_key', { device: c.device, server: serverOf(ev.sender) })
        : t('photo.not_approved', { device: me.id }), 'waiting');
      el.dataset.photoState = 'waiting_key';
      roomState(room).waiting.add({ ev, el });
      requestKey(room, me, c.device, data.epoch);
      return;
    }
    if (ownerCheck && !equalBytes(await epochCheck(room, c.device, data.epoch, key), ownerCheck))
      throw new E2eeError('not_authentic', 'the key does not match its check');
    const plain = await photoOpen({ room, epoch: data.epoch, device: c.device, seq: data.seq, ts: data.ts },
      await unb64u(data.ct), key);
    const photo = JSON.parse(new TextDecoder().decode(plain));
    if (!photo.image || !(c.blobs || []).includes(photo.image.blob))
      throw new E2eeError('not_authentic', 'the image is not a blob the event names');
    draw(room, el, photo);
    return photo; // (the gallery filters by its capture time)
  } catch (e) {
    el.dataset.photoState = 'failed';
    if (e instanceof E2eeError && e.code !== 'invalid_argument')
      line(el, t('photo.integrity', { why: e.message }), 'failed');
    else
      line(el, t('photo.error', { why: e.message || String(e) }), 'failed');
  }
}

// A device numbers its photos in a room 1, 2, 3… inside what it signs (seq), so a photo whose
// number an earlier position of the room already had is a replay (a server delivering an old
// photo again as new), as the CLI refuses it. Among the photos this page has seen: a replay
// shown before its original was loaded is redrawn as one when the original comes. True when
// ev is a replay (el then says so).
function replayOf(room, ev, el, data) {
  const seq = Number(data.seq);
  if (!Number.isInteger(seq) || seq < 1 || !ev.pos) return false;
  const st = roomState(room);
  const k = `${ev.content.device}/${seq}`;
  const first = st.seqs.get(k);
  if (!first || ev.pos <= first.pos) {
    st.seqs.set(k, { pos: ev.pos, ev, el });
    if (first && first.pos !== ev.pos && first.el.isConnected) photoBody(room, first.ev, first.el);
    return false;
  }
  el.dataset.photoState = 'replay';
  line(el, t('photo.replay', { pos: first.pos }), 'failed');
  return true;
}

async function device() {
  const d = await myDevice();
  return { ...d, sign: (domain, msg) => import('./crypto/keys.js').then((k) => k.sign(domain, msg, d.keys.signSk)) };
}

function draw(room, el, photo) {
  clear(el);
  el.dataset.photoState = 'shown';
  const fig = h('figure', { class: 'photo' });
  let thumbUrl = null;
  if (photo.thumb?.jpeg) {
    unb64u(photo.thumb.jpeg).then((bytes) => {
      thumbUrl = URL.createObjectURL(new Blob([bytes], { type: 'image/jpeg' }));
      const img = h('img', { class: 'photo-thumb', src: thumbUrl, alt: t('photo.thumb_alt'), width: String(photo.thumb.w || ''), height: String(photo.thumb.h || '') });
      const open = h('button', { type: 'button', class: 'photo-open', 'aria-label': t('photo.open'), onclick: () => full(room, fig, photo, open) }, img);
      fig.prepend(open);
    }).catch(() => {});
  }
  const cap = h('figcaption', null);
  if (photo.caption) cap.append(h('span', { class: 'photo-caption' }, photo.caption));
  if (photo.captured_at) cap.append(h('span', { class: 'photo-time' }, t('photo.captured', { at: photo.captured_at.replace('T', ' ') })));
  const g = photo.gps;
  if (g && Number.isFinite(g.lat) && Number.isFinite(g.lon) && Math.abs(g.lat) <= 90 && Math.abs(g.lon) <= 180) {
    const lat = g.lat.toFixed(6), lon = g.lon.toFixed(6);
    cap.append(h('a', { class: 'photo-geo', href: `geo:${lat},${lon}` }, t('photo.location', { lat, lon })));
  }
  fig.append(cap);
  el.append(fig);
}

// The full image: downloaded, checked and decrypted here; "not here yet (x%)" while the server
// fetches it from another server or its sender is still uploading it, retried when it says.
async function full(room, fig, photo, button) {
  const status = h('span', { class: 'photo-state' }, t('photo.loading'));
  fig.querySelector('.photo-state')?.remove();
  fig.append(status);
  const img = photo.image;
  try {
    for (;;) {
      const r = await fetch(`/api/v1/blobs/${img.blob}`, { headers: { Authorization: `Bearer ${api.session?.token || ''}` } });
      if (r.status === 503) {
        const err = await r.json().catch(() => ({}));
        const body = err.error || err;
        if (body.code === 'blob_failed') { status.textContent = t('photo.integrity', { why: body.from || 'blob_failed' }); fig.dataset.photoState = 'failed'; }
        else {
          // Posted before its blob (thumbnail first): the sender's upload is where it stands.
          const key = body.state === 'uploading' ? 'photo.uploading' : body.state === 'stalled' ? 'photo.stalled' : 'photo.not_here';
          status.textContent = t(key, { percent: Math.floor(body.percent ?? 0) });
          fig.dataset.photoState = body.state === 'uploading' ? 'uploading' : 'not_here';
        }
        const wait = Math.min(30, Math.max(1, Number(r.headers.get('Retry-After')) || 2));
        await new Promise((res) => setTimeout(res, wait * 1000));
        if (!fig.isConnected) return;
        continue;
      }
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const bytes = new Uint8Array(await r.arrayBuffer());
      const jpeg = await blobDecrypt(bytes, await unb64u(img.key), { expectHash: hexToBytes(img.blob), plainLen: img.len });
      const url = URL.createObjectURL(new Blob([jpeg], { type: 'image/jpeg' }));
      status.remove();
      fig.dataset.photoState = 'full';
      button.replaceWith(h('img', { class: 'photo-full', src: url, alt: t('photo.image_alt'), width: String(img.w || ''), height: String(img.h || '') }));
      return;
    }
  } catch (e) {
    fig.dataset.photoState = 'failed';
    status.textContent = e instanceof E2eeError ? t('photo.integrity', { why: e.code }) : t('photo.error', { why: e.message });
  }
}

function hexToBytes(s) {
  if (!/^[0-9a-f]{64}$/.test(s)) throw new E2eeError('not_authentic', 'not a blob id');
  return Uint8Array.from(s.match(/../g), (x) => parseInt(x, 16));
}
