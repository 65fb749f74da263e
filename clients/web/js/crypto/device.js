// crypto/device.js: this browser as a device of its user (docs/protocol.md, "End-to-end
// encrypted photos"; docs/web.md, "What the browser keeps"). Its two key pairs are made here, on
// first need, and never leave the browser: kept in IndexedDB (database "kizuna-e2ee", one
// record per qualified user, so two accounts on one browser are two devices), or on a shared PC
// in sessionStorage only, which every logout and every end of the session wipes (api.wipe). The
// public halves are registered with device.register under the self-signature that names the
// qualified user (login@server_id); the first device of a user signs the first version of the
// user's device list itself (a root); a later one waits until a device already on the list
// approves it (`kizuna device approve ID`), and says so.

import { api } from '../api.js';
import { sodium, E2eeError } from './sodium.js';
import { deviceKeysNew, deviceId, devkeySign } from './keys.js';
import { devlistEncode, devlistDecode, devlistSign, devlistFollows } from './devlist.js';

const DB = 'kizuna-e2ee';
const STORE = 'devices';
const SHARED_KEY = 'kizuna.e2ee.device';

export async function b64u(bytes) {
  const s = await sodium();
  return s.to_base64(bytes, s.base64_variants.URLSAFE_NO_PADDING);
}

export async function unb64u(str) {
  const s = await sodium();
  try {
    return s.from_base64(str, s.base64_variants.URLSAFE_NO_PADDING);
  } catch {
    throw new E2eeError('invalid_argument', 'not base64url');
  }
}

// The qualified name of a user: a bare login gets this server's id (issue 19).
export function qualify(login) {
  return login.includes('@') ? login : `${login}@${api.session?.server_id || ''}`;
}

// Version 3: "devices" (this browser's keys, by qualified user), "contacts" (the device
// lists it accepted, by "me|user": crypto/trust.js) and "outbox" (photos staged for sending,
// ciphertext and sealed state: js/photo_send.js).
function idb() {
  return new Promise((resolve, reject) => {
    const rq = indexedDB.open(DB, 3);
    rq.onupgradeneeded = () => {
      const names = rq.result.objectStoreNames;
      if (!names.contains(STORE)) rq.result.createObjectStore(STORE, { keyPath: 'user' });
      if (!names.contains('contacts')) rq.result.createObjectStore('contacts', { keyPath: 'key' });
      if (!names.contains('outbox')) rq.result.createObjectStore('outbox', { keyPath: 'name' });
    };
    rq.onsuccess = () => resolve(rq.result);
    rq.onerror = () => reject(rq.error);
  });
}

export async function idbDo(store, mode, fn) {
  const db = await idb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(store, mode);
      const rq = fn(tx.objectStore(store));
      tx.oncomplete = () => resolve(rq?.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

const FIELDS = ['signPk', 'signSk', 'boxPk', 'boxSk'];

async function load(user) {
  if (api.session?.shared) {
    try {
      const v = JSON.parse(sessionStorage.getItem(SHARED_KEY) || 'null');
      if (!v || v.user !== user) return null;
      const rec = { user: v.user, id: v.id };
      for (const f of FIELDS) rec[f] = await unb64u(v[f]);
      return rec;
    } catch {
      return null;
    }
  }
  return (await idbDo(STORE, 'readonly', (st) => st.get(user))) || null;
}

async function save(rec) {
  if (api.session?.shared) {
    const v = { user: rec.user, id: rec.id };
    for (const f of FIELDS) v[f] = await b64u(rec[f]);
    sessionStorage.setItem(SHARED_KEY, JSON.stringify(v));
    return;
  }
  await idbDo(STORE, 'readwrite', (st) => st.put(rec));
}

async function forget(user) {
  making.delete(user);
  if (api.session?.shared) sessionStorage.removeItem(SHARED_KEY);
  else await idbDo(STORE, 'readwrite', (st) => st.delete(user));
}

// Every device key this browser keeps for anyone, gone (an admin's "wipe this browser").
export async function wipeAllDevices() {
  sessionStorage.removeItem(SHARED_KEY);
  sessionStorage.removeItem('kizuna.e2ee.contacts');
  await new Promise((resolve) => {
    const rq = indexedDB.deleteDatabase(DB);
    rq.onsuccess = rq.onerror = rq.onblocked = () => resolve();
  });
}

async function fresh(user) {
  const k = await deviceKeysNew();
  const rec = { user, id: await deviceId(k.signPk), ...k, created: Date.now() };
  await save(rec);
  return rec;
}

async function register(rec) {
  return api.call('device.register', {
    sign_pk: await b64u(rec.signPk), box_pk: await b64u(rec.boxPk),
    sig: await b64u(await devkeySign(rec.user, rec.id, rec)),
  });
}

let current = null; // {user, promise}

// This browser's device for the logged-in user: {id, user, keys, approved, state}, where state
// is 'approved' (a signed list of the user names it), 'signed_root' (it just signed the user's
// first list), or 'needs_approval' (the user's list names other devices: one of them must
// approve this one). Registers (idempotent) once per page and user.
// This browser's device keys for the logged-in user as kept here, without asking the server:
// enough to stage a photo taken offline (photo_send.js), which goes once the network is back
// and myDevice() has registered and checked the device. Without a record yet (a first photo
// taken offline) the keys are made here, and registered by myDevice() later.
export async function localDevice() {
  const login = api.session?.user?.login;
  if (!login) throw new E2eeError('invalid_argument', 'not logged in');
  const user = qualify(login);
  const rec = await loadOrFresh(user);
  return { id: rec.id, user, keys: { signPk: rec.signPk, signSk: rec.signSk, boxPk: rec.boxPk, boxSk: rec.boxSk }, local: true };
}

export function myDevice() {
  const login = api.session?.user?.login;
  if (!login) return Promise.reject(new E2eeError('invalid_argument', 'not logged in'));
  const user = qualify(login);
  if (!current || current.user !== user) current = { user, promise: ensure(user) };
  current.promise.catch(() => { if (current?.user === user) current = null; });
  return current.promise;
}

// The record kept here, or a new one: made once per user and page, whoever asks first
// (ensure, localDevice), so two callers never make two key pairs and lose one.
const making = new Map(); // user -> Promise of the record being made
async function loadOrFresh(user) {
  const rec = await load(user);
  if (rec) return rec;
  if (!making.has(user)) making.set(user, fresh(user));
  return making.get(user);
}

async function ensure(user) {
  let rec = await loadOrFresh(user);
  try {
    await register(rec);
  } catch (e) {
    if (e.code !== 'conflict') throw e;
    // These keys were revoked (or are someone else's): this browser becomes a new device.
    await forget(user);
    rec = await fresh(user);
    await register(rec);
  }
  const keys = { signPk: rec.signPk, signSk: rec.signSk, boxPk: rec.boxPk, boxSk: rec.boxSk };
  const state = await ownList(rec);
  return { id: rec.id, user, keys, state, approved: state !== 'needs_approval' };
}

// The user's own signed list: the newest version whose chain from its root follows. A user
// with none gets a root naming this device, signed by it.
async function ownList(rec) {
  const r = await api.call('device.list', {});
  let accepted = null;
  for (const v of r.lists || []) {
    try {
      const enc = await unb64u(v.list);
      const next = await devlistDecode(enc);
      await devlistFollows(accepted, next, enc, v.by, await unb64u(v.sig));
      if (next.login !== rec.user) continue;
      accepted = next;
    } catch { /* a version that does not follow is not taken */ }
  }
  if (accepted && accepted.devices.some((d) => d.id === rec.id)) return 'approved';
  const active = new Set((r.devices || []).filter((d) => d.revoked_at == null).map((d) => d.device));
  if (accepted && accepted.devices.some((d) => d.id !== rec.id && active.has(d.id))) return 'needs_approval';
  // No list, or none of its devices is active any more: a (new) root naming this device.
  const { encoding } = await devlistEncode({
    login: rec.user, seq: accepted ? accepted.seq + 1n : 1n, prev: null,
    devices: [{ signPk: rec.signPk, boxPk: rec.boxPk }],
  });
  await api.call('device.sign', {
    list: await b64u(encoding), device: rec.id, sig: await b64u(await devlistSign(encoding, rec.signSk)),
  });
  return 'signed_root';
}
