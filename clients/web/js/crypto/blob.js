// crypto/blob.js: the padded, chunked secretstream blob (KZB1) of media/blob.c, in memory:
//   "KZB1" 1 || u32 chunk size 65536 || u64 P || secretstream header (24) || chunks of 65,536
//   plaintext bytes (+17), the last tagged FINAL, chunk 0 with bytes 0-16 as additional data
// where the plaintext is the image and zeros up to P = blobPaddedLen(length), and the blob's id
// is BLAKE2b-256 of all of it. Decryption fails closed with the C code's own result names
// (blob_format, blob_tampered, blob_truncated, blob_no_final, blob_trailing, blob_reordered,
// blob_hash, blob_length), so the page can say "failed its integrity check" and a test can
// tell which check caught it.

import { sodium, E2eeError, concat, putBE, getBE, equalBytes } from './sodium.js';

export const BLOB_CHUNK = 65536;
export const BLOB_HEADER = 41;
export const BLOB_MAX = 2 ** 40;
const PREFIX = 17;
const ABYTES = 17;
const MIN_CHUNK = 256;
const MAX_CHUNK = 4 << 20;
const TAG_MESSAGE = 0;
const TAG_FINAL = 3;
const STATEBYTES = 52;

// media_blob_padded_len: max(541, floor(1.05^ceil(log_1.05 n))), in the same double arithmetic
// as the C code (tests/web/crypto_vectors.test.mjs compares every bucket edge up to 1 TiB with
// kizunad's own build of it, since a receiver refuses a blob whose P is not its own figure).
export function blobPaddedLen(n) {
  if (n <= 541) return 541;
  let k = Math.ceil(Math.log(n) / Math.log(1.05));
  let b = Math.floor(Math.pow(1.05, k));
  while (b < n) b = Math.floor(Math.pow(1.05, ++k));
  return b;
}

// BLAKE2b-256: a blob's id.
export async function blobHash(bytes) {
  const s = await sodium();
  return s.crypto_generichash(32, bytes, null);
}

// Encrypts plain (Uint8Array) into a new blob: {blob, key, hash, plainLen, paddedLen}. The key
// is fresh unless opts.key and opts.header are given (the test vectors only).
export async function blobEncrypt(plain, opts = {}) {
  const s = await sodium();
  if (plain.length > BLOB_MAX) throw new E2eeError('too_large');
  const padded = blobPaddedLen(plain.length);
  const key = opts.key || s.crypto_secretstream_xchacha20poly1305_keygen();
  let st, header;
  if (opts.header) {
    // init_push with a given header is init_pull's state: the same HChaCha20 key and nonce.
    header = opts.header;
    st = s.crypto_secretstream_xchacha20poly1305_init_pull(header, key);
  } else {
    ({ state: st, header } = s.crypto_secretstream_xchacha20poly1305_init_push(key));
  }
  const prefix = new Uint8Array(PREFIX);
  prefix.set([0x4b, 0x5a, 0x42, 0x31, 1]);
  putBE(prefix, 5, BLOB_CHUNK, 4);
  putBE(prefix, 9, padded, 8);
  const nchunks = Math.ceil(padded / BLOB_CHUNK);
  const parts = [prefix, header];
  const buf = new Uint8Array(BLOB_CHUNK);
  try {
    for (let i = 0, pos = 0; i < nchunks; i++, pos += BLOB_CHUNK) {
      const len = Math.min(BLOB_CHUNK, padded - pos);
      const chunk = buf.subarray(0, len);
      chunk.fill(0);
      if (pos < plain.length) chunk.set(plain.subarray(pos, Math.min(pos + len, plain.length)));
      parts.push(s.crypto_secretstream_xchacha20poly1305_push(st, chunk, i === 0 ? prefix : null,
        i === nchunks - 1 ? TAG_FINAL : TAG_MESSAGE));
    }
  } finally {
    buf.fill(0);
    wipeState(s, st);
  }
  const blob = concat(...parts);
  return { blob, key, hash: await blobHash(blob), plainLen: plain.length, paddedLen: padded };
}

function wipeState(s, st) {
  if (typeof st !== 'number') return;
  s.libsodium.HEAPU8.fill(0, st, st + STATEBYTES);
  s.libsodium._free(st);
}

// Decrypts a whole blob: the plaintext (Uint8Array). opts.expectHash (the blob id, checked last)
// and opts.plainLen (the true length from the message: it must give the header's P, and the
// padding beyond it must be zero; without it all P bytes come back). Throws E2eeError.
export async function blobDecrypt(blob, key, opts = {}) {
  const s = await sodium();
  const known = opts.plainLen !== undefined && opts.plainLen !== null;
  let off = 0;
  const read = (n) => {
    const b = blob.subarray(off, Math.min(off + n, blob.length));
    off += b.length;
    return b;
  };
  const hdr = read(BLOB_HEADER);
  const magic = [0x4b, 0x5a, 0x42, 0x31];
  for (let i = 0; i < Math.min(hdr.length, 4); i++)
    if (hdr[i] !== magic[i]) throw new E2eeError('blob_format');
  if (hdr.length > 4 && hdr[4] !== 1) throw new E2eeError('blob_format');
  if (hdr.length < BLOB_HEADER) throw new E2eeError('blob_truncated');
  const chunk = Number(getBE(hdr, 5, 4)), paddedBig = getBE(hdr, 9, 8);
  if (chunk < MIN_CHUNK || chunk > MAX_CHUNK || paddedBig === 0n || paddedBig > 2n * BigInt(BLOB_MAX))
    throw new E2eeError('blob_format');
  const padded = Number(paddedBig);
  const nchunks = Math.ceil(padded / chunk);
  const outLen = known ? opts.plainLen : padded;
  if (key.length !== 32) throw new E2eeError('invalid_argument', 'key is not 32 bytes');
  const st = s.crypto_secretstream_xchacha20poly1305_init_pull(hdr.subarray(PREFIX), key);
  const heap = () => s.libsodium.HEAPU8;
  const out = [];
  let pos = 0;
  try {
    for (let i = 0; i < nchunks; i++) {
      const last = i === nchunks - 1;
      const want = last ? padded - pos + ABYTES : chunk + ABYTES;
      const ct = read(want);
      if (ct.length < want) throw new E2eeError(ct.length === 0 ? 'blob_no_final' : 'blob_truncated');
      const ad = i === 0 ? hdr.subarray(0, PREFIX) : null;
      const before = heap().slice(st, st + STATEBYTES);
      const r = s.crypto_secretstream_xchacha20poly1305_pull(st, ct, ad);
      if (!r) {
        // Moved chunks open under this state further on; a forged one nowhere.
        for (let j = i + 1; j < nchunks; j++) {
          const next = read(chunk + ABYTES);
          if (next.length <= ABYTES) break;
          heap().set(before, st);
          if (s.crypto_secretstream_xchacha20poly1305_pull(st, next, ad)) throw new E2eeError('blob_reordered');
        }
        throw new E2eeError('blob_tampered');
      }
      if ((r.tag === TAG_FINAL) !== last) throw new E2eeError(last ? 'blob_no_final' : 'blob_trailing');
      if (i === 0 && known && (opts.plainLen > BLOB_MAX || blobPaddedLen(opts.plainLen) !== padded))
        throw new E2eeError('blob_length');
      const pt = r.message;
      let keep = pt.length;
      if (pos + pt.length > outLen) keep = outLen > pos ? outLen - pos : 0;
      for (let k = keep; k < pt.length; k++) if (pt[k] !== 0) throw new E2eeError('blob_length');
      if (keep) out.push(pt.subarray(0, keep));
      pos += pt.length;
    }
    if (off < blob.length) throw new E2eeError('blob_trailing');
    if (opts.expectHash && !equalBytes(await blobHash(blob), opts.expectHash))
      throw new E2eeError('blob_hash');
    return concat(...out);
  } catch (e) {
    for (const p of out) p.fill(0);
    throw e;
  } finally {
    wipeState(s, st);
  }
}
