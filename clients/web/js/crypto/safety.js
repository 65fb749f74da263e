// crypto/safety.js: safety numbers (media/keys.c, E12): a user's 30-digit fingerprint over the
// user id and the devices sorted by (id, sign_pk, box_pk), 5200 rounds of BLAKE2b-512 as Signal;
// two users' safety number is both fingerprints, lower first, as 12 groups of 5 digits.

import { sodium, E2eeError, utf8, concat, cmpBytes, lenStr16 } from './sodium.js';

const ROUNDS = 5200;

// media_numeric_digits: h = H(domain 0 m), then h = H(h || m) 5199 times; `groups` 5-byte
// big-endian numbers of h, each mod 100000, as 5 digits each.
export async function numericDigits(domain, m, groups) {
  if (groups < 1 || groups > 12) throw new E2eeError('invalid_argument');
  const s = await sodium();
  let h = s.crypto_generichash(64, concat(utf8(domain), new Uint8Array([0]), m), null);
  const buf = new Uint8Array(64 + m.length);
  buf.set(m, 64);
  for (let r = 1; r < ROUNDS; r++) {
    buf.set(h, 0);
    h = s.crypto_generichash(64, buf, null);
  }
  let out = '';
  for (let i = 0; i < groups; i++) {
    let v = 0;
    for (let j = 0; j < 5; j++) v = v * 256 + h[i * 5 + j];
    out += String(v % 100000).padStart(5, '0');
  }
  return out;
}

// media_fingerprint: devices [{id, signPk, boxPk}], in any order.
export async function fingerprint(user, devices) {
  if (devices.length > 0xffff) throw new E2eeError('invalid_argument');
  const order = devices.map((d) => ({ idb: utf8(d.id), d })).sort((a, b) =>
    cmpBytes(a.idb, b.idb) || cmpBytes(a.d.signPk, b.d.signPk) || cmpBytes(a.d.boxPk, b.d.boxPk));
  const m = concat(lenStr16(user), new Uint8Array([devices.length >> 8, devices.length & 0xff]),
    ...order.flatMap(({ idb, d }) => [lenStr16(idb), d.signPk, d.boxPk]));
  return numericDigits('kizuna/safety/v1', m, 6);
}

// media_safety_number: 60 digits in 12 groups of 5, the same from either side.
export async function safetyNumber(userA, devicesA, userB, devicesB) {
  const a = await fingerprint(userA, devicesA), b = await fingerprint(userB, devicesB);
  const digits = a <= b ? a + b : b + a;
  return digits.match(/.{5}/g).join(' ');
}
