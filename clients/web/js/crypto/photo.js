// crypto/photo.js: what an epoch key seals and what binds it (media/epoch.c): the key-check value
// an epoch's owner publishes, and the photo message (v2) padded to a size bucket and sealed under
// the epoch key, bound to room, epoch, sending device, its counter and its clock.

import { sodium, E2eeError, utf8, concat } from './sodium.js';
import { DOMAIN, aeadSeal, aeadOpen } from './keys.js';
import { blobPaddedLen } from './blob.js';

const NUL = new Uint8Array([0]);

// media_epoch_check: BLAKE2b-256 keyed with the epoch key over "kizuna/keycheck/v1" 0 room 0
// owner 0 epoch 0.
export async function epochCheck(room, owner, epoch, key) {
  const s = await sodium();
  const m = concat(...[DOMAIN.KEYCHECK, room, owner, epoch].flatMap((p) => [utf8(p), NUL]));
  return s.crypto_generichash(32, m, key);
}

// The additional data: "kizuna/photo/v2" 0 room 0 epoch 0 device 0 seq 0 ts (decimal, no final
// NUL). seq is 1, 2, ... (Number or BigInt), ts milliseconds since 1970.
export function photoAd({ room, epoch, device, seq, ts }) {
  if (!seq || BigInt(seq) <= 0n) throw new E2eeError('invalid_argument', 'seq must be 1 or more');
  return concat(utf8(DOMAIN.PHOTO), NUL, utf8(room), NUL, utf8(epoch), NUL, utf8(device), NUL,
    utf8(BigInt(seq).toString()), NUL, utf8(BigInt(ts).toString()));
}

const PHOTO_MSG_MAX = 16 << 20;

// media_photo_padded_len: the bucket of the u32 length and the message.
export function photoPaddedLen(len) { return blobPaddedLen(len + 4); }

// media_photo_seal: msg (bytes, or a string as UTF-8) sealed under the epoch key; nonce for
// tests only.
export async function photoSeal(ad, msg, key, nonce) {
  const m = typeof msg === 'string' ? utf8(msg) : msg;
  if (m.length > PHOTO_MSG_MAX) throw new E2eeError('invalid_argument', 'message over 16 MiB');
  const adb = photoAd(ad);
  const plain = new Uint8Array(photoPaddedLen(m.length));
  new DataView(plain.buffer).setUint32(0, m.length);
  plain.set(m, 4);
  const out = await aeadSeal(plain, adb, key, nonce);
  plain.fill(0);
  return out;
}

// media_photo_open: the message's bytes without padding, or E2eeError 'not_authentic' (forged,
// damaged, moved, another counter or time, or padded otherwise than a sender pads).
export async function photoOpen(ad, ct, key) {
  const adb = photoAd(ad);
  if (ct.length < 40 + 4) throw new E2eeError('not_authentic');
  const plain = await aeadOpen(ct, adb, key);
  const n = plain.length;
  const m = new DataView(plain.buffer, plain.byteOffset, n).getUint32(0);
  let bad = m > n - 4;
  for (let i = 4 + m; !bad && i < n; i++) if (plain[i] !== 0) bad = true;
  if (bad) {
    plain.fill(0);
    throw new E2eeError('not_authentic', 'padding is not as a sender makes it');
  }
  const out = plain.slice(4, 4 + m);
  plain.fill(0);
  return out;
}
