// crypto/sodium.js: libsodium for the browser (vendor/libsodium, libsodium-wrappers 0.8.4 with
// its WebAssembly core; docs/web.md, "End-to-end encryption in the browser"), loaded once, on
// first use, so the app's first screen does not wait for its 135 KB (gzipped) of WebAssembly.
// Also the byte helpers every crypto module shares, and the error every format throws: its
// .code is media_rc_name() of the C result the same input gives there (media/media.c), so a
// caller and a test can tell "not authentic" from "tampered chunk" from "wrong hash".

let loading = null;

// A Promise of the ready libsodium-wrappers object.
export function sodium() {
  if (!loading) {
    loading = import('../../vendor/libsodium/libsodium-wrappers.mjs').then(async (m) => {
      await m.ready;
      return m.default;
    });
  }
  return loading;
}

export class E2eeError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = 'E2eeError';
    this.code = code;
  }
}

const enc = new TextEncoder();
export function utf8(s) { return enc.encode(s); }

export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export function hex(b) {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

export function unhex(s) {
  if (s.length % 2 || /[^0-9a-fA-F]/.test(s)) throw new E2eeError('invalid_argument', 'bad hex');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}

// Big-endian unsigned integer of n bytes (n <= 8; values beyond 2^53 are not used here).
export function putBE(out, off, v, n) {
  let x = BigInt(v);
  for (let i = n - 1; i >= 0; i--, x >>= 8n) out[off + i] = Number(x & 0xffn);
}

export function getBE(b, off, n) {
  let x = 0n;
  for (let i = 0; i < n; i++) x = (x << 8n) | BigInt(b[off + i]);
  return x;
}

// Lexicographic byte comparison, as memcmp.
export function cmpBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i] ^ b[i];
  return acc === 0;
}

// u16 length-prefixed UTF-8 string (keys.c put_str).
export function lenStr16(s) {
  const b = typeof s === 'string' ? utf8(s) : s;
  if (b.length > 0xffff) throw new E2eeError('invalid_argument', 'string over 65535 bytes');
  const out = new Uint8Array(2 + b.length);
  out[0] = b.length >> 8;
  out[1] = b.length & 0xff;
  out.set(b, 2);
  return out;
}
