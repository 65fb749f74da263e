// crypto/devlist.js: signed device lists (media/devlist.c): the devices a user vouches for, in
// the one binary encoding
//   "KZDL" 1 || u8 L || login (L bytes, "login@server") || u64 seq || prev (32) || u8 n ||
//   n x (sign_pk || box_pk), sorted by sign_pk, no two the same
// with its hash (BLAKE2b-256 of the encoding), the signature of a device over
// "kizuna/devlist/v1" 0x00 || encoding, and the rule by which one version follows another.
// A decoded list: {login, seq (BigInt), prev, hash, devices: [{id, signPk, boxPk}]}.

import { sodium, E2eeError, utf8, concat, putBE, getBE, cmpBytes, equalBytes } from './sodium.js';
import { DOMAIN, deviceId, sign, verify } from './keys.js';

export const DEVLIST_MAX = 64;
export const DEVLIST_LOGIN_MAX = 128;

function loginOk(b) {
  if (b.length === 0 || b.length > DEVLIST_LOGIN_MAX) return false;
  for (const c of b) if (c < 0x21 || c === 0x7f) return false;
  return true;
}

// media_devlist_encode: {encoding, list} with the devices sorted and their ids and the hash
// filled in. E2eeError 'invalid_argument' for a bad login, seq 0, too many or repeated devices.
export async function devlistEncode({ login, seq, prev, devices }) {
  const s = await sodium();
  const lb = utf8(login);
  const sq = BigInt(seq);
  const pv = prev || new Uint8Array(32);
  if (!loginOk(lb) || devices.length > DEVLIST_MAX || sq <= 0n || sq >= 2n ** 64n || pv.length !== 32)
    throw new E2eeError('invalid_argument');
  const devs = devices.map((d) => ({ signPk: d.signPk, boxPk: d.boxPk }))
    .sort((a, b) => cmpBytes(a.signPk, b.signPk));
  for (let i = 0; i < devs.length; i++) {
    if (i && cmpBytes(devs[i - 1].signPk, devs[i].signPk) === 0) throw new E2eeError('invalid_argument', 'repeated device');
    devs[i].id = await deviceId(devs[i].signPk);
  }
  const head = new Uint8Array(6 + lb.length + 8);
  head.set([0x4b, 0x5a, 0x44, 0x4c, 1, lb.length]);
  head.set(lb, 6);
  putBE(head, 6 + lb.length, sq, 8);
  const encoding = concat(head, pv, new Uint8Array([devs.length]), ...devs.flatMap((d) => [d.signPk, d.boxPk]));
  return {
    encoding,
    list: { login, seq: sq, prev: pv, hash: s.crypto_generichash(32, encoding, null), devices: devs },
  };
}

// media_devlist_decode: exactly one encoded list, or E2eeError 'format'.
export async function devlistDecode(buf) {
  const s = await sodium();
  const bad = () => new E2eeError('format');
  if (buf.length < 6 || buf[0] !== 0x4b || buf[1] !== 0x5a || buf[2] !== 0x44 || buf[3] !== 0x4c || buf[4] !== 1)
    throw bad();
  const ll = buf[5];
  if (buf.length < 6 + ll + 8 + 32 + 1) throw bad();
  const lb = buf.subarray(6, 6 + ll);
  if (!loginOk(lb)) throw bad();
  let p = 6 + ll;
  const seq = getBE(buf, p, 8);
  p += 8;
  const prev = buf.slice(p, p + 32);
  p += 32;
  const n = buf[p++];
  if (seq === 0n || n > DEVLIST_MAX || buf.length - p !== n * 64) throw bad();
  const devices = [];
  for (let i = 0; i < n; i++, p += 64) {
    const d = { signPk: buf.slice(p, p + 32), boxPk: buf.slice(p + 32, p + 64) };
    if (i && cmpBytes(devices[i - 1].signPk, d.signPk) >= 0) throw bad();
    d.id = await deviceId(d.signPk);
    devices.push(d);
  }
  let login;
  try {
    login = new TextDecoder('utf-8', { fatal: true }).decode(lb);
  } catch {
    login = new TextDecoder().decode(lb); // C takes any bytes; the name is for display only
  }
  return { login, loginBytes: lb.slice(), seq, prev, hash: s.crypto_generichash(32, buf, null), devices };
}

export function devlistIsRoot(l) { return l.prev.every((b) => b === 0); }

export function devlistFind(l, id) { return l.devices.findIndex((d) => d.id === id); }

export async function devlistSign(encoding, signSk) { return sign(DOMAIN.DEVLIST, encoding, signSk); }

// media_devlist_follows: resolves if next (decoded from encoding, signed by the device `by`
// with sig) may follow prev (null: next is the first version taken, so a root). Throws
// E2eeError 'invalid_argument' (encoding is not next's), 'format' (login, seq or prev do not
// follow), 'not_authentic' (a signer who may not sign it, or a bad signature).
export async function devlistFollows(prev, next, encoding, by, sig) {
  const s = await sodium();
  if (!equalBytes(s.crypto_generichash(32, encoding, null), next.hash)) throw new E2eeError('invalid_argument');
  const root = devlistIsRoot(next);
  const loginOf = (l) => l.loginBytes || utf8(l.login);
  if (prev && (!equalBytes(loginOf(prev), loginOf(next)) || next.seq !== prev.seq + 1n ||
    (!root && !equalBytes(next.prev, prev.hash))))
    throw new E2eeError('format');
  if (!prev && !root) throw new E2eeError('format');
  const signers = root ? next : prev;
  const i = devlistFind(signers, by || '');
  if (i < 0) throw new E2eeError('not_authentic', 'the signer may not sign this list');
  if (!(await verify(DOMAIN.DEVLIST, encoding, signers.devices[i].signPk, sig)))
    throw new E2eeError('not_authentic');
}
