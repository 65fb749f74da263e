// crypto/keys.js: device keys, domain-separated signatures, the device self-signature, a room's
// history policy and key envelopes, byte for byte as media/keys.c and media/devlist.c make them
// (media/media.h; checked against tests/vectors/e2ee in tests/web/crypto_vectors.test.mjs).
// Every function awaits libsodium; keys are Uint8Arrays.

import { sodium, E2eeError, utf8, concat, lenStr16 } from './sodium.js';

export const DOMAIN = Object.freeze({
  DEVKEY: 'kizuna/devkey/v1',
  KEYS: 'kizuna/keys/v1',
  PHOTO: 'kizuna/photo/v2',
  KEYCHECK: 'kizuna/keycheck/v1',
  DEVLIST: 'kizuna/devlist/v1',
  POLICY: 'kizuna/policy/v1',
});

// Two independent pairs (E1): {signPk, signSk (64 bytes), boxPk, boxSk}. With seeds (tests
// only) the pairs are libsodium's crypto_sign_seed_keypair and the X25519 secret key as given.
export async function deviceKeysNew(seeds) {
  const s = await sodium();
  const sign = seeds ? s.crypto_sign_seed_keypair(seeds.signSeed) : s.crypto_sign_keypair();
  let boxPk, boxSk;
  if (seeds) {
    boxSk = Uint8Array.from(seeds.boxSk);
    boxPk = s.crypto_scalarmult_base(boxSk);
  } else {
    const box = s.crypto_box_keypair();
    boxPk = box.publicKey;
    boxSk = box.privateKey;
  }
  return { signPk: sign.publicKey, signSk: sign.privateKey, boxPk, boxSk };
}

// media_device_id: base64url without padding of BLAKE2b-128(sign_pk), 22 characters.
export async function deviceId(signPk) {
  const s = await sodium();
  return s.to_base64(s.crypto_generichash(16, signPk, null), s.base64_variants.URLSAFE_NO_PADDING);
}

function withDomain(domain, msg) {
  return concat(utf8(domain), new Uint8Array([0]), msg);
}

// media_sign / media_verify: Ed25519 over domain || 0x00 || msg.
export async function sign(domain, msg, signSk) {
  const s = await sodium();
  return s.crypto_sign_detached(withDomain(domain, msg), signSk);
}

export async function verify(domain, msg, signPk, sig) {
  const s = await sodium();
  if (sig.length !== 64 || signPk.length !== 32) return false;
  try {
    return s.crypto_sign_verify_detached(sig, withDomain(domain, msg), signPk);
  } catch {
    return false;
  }
}

// The record the device self-signature covers: u16 len || user || u16 len || id || sign_pk ||
// box_pk. user is the qualified "login@server_id" (issue 19).
export function devkeyRecord(user, id, signPk, boxPk) {
  return concat(lenStr16(user), lenStr16(id), signPk, boxPk);
}

export async function devkeySign(user, id, keys) {
  return sign(DOMAIN.DEVKEY, devkeyRecord(user, id, keys.signPk, keys.boxPk), keys.signSk);
}

export async function devkeyVerify(user, id, signPk, boxPk, sig) {
  return verify(DOMAIN.DEVKEY, devkeyRecord(user, id, signPk, boxPk), signPk, sig);
}

// A room's history policy: u8 len || login || u8 len || history (media_policy_sign).
export function policyRecord(login, history) {
  const l = utf8(login), h = utf8(history);
  if (l.length > 255 || h.length > 255) throw new E2eeError('invalid_argument', 'over 255 bytes');
  return concat(new Uint8Array([l.length]), l, new Uint8Array([h.length]), h);
}

export async function policySign(login, history, signSk) {
  return sign(DOMAIN.POLICY, policyRecord(login, history), signSk);
}

export async function policyVerify(login, history, signPk, sig) {
  let m;
  try { m = policyRecord(login, history); } catch { return false; }
  return verify(DOMAIN.POLICY, m, signPk, sig);
}

// media_envelope_seal: 24-byte nonce || crypto_box_easy(plain). nonce is for tests only (the
// vectors); otherwise it is random, as in C.
export async function envelopeSeal(plain, senderBoxSk, recipientBoxPk, nonce) {
  const s = await sodium();
  const n = nonce || s.randombytes_buf(s.crypto_box_NONCEBYTES);
  let ct;
  try {
    ct = s.crypto_box_easy(plain, n, recipientBoxPk, senderBoxSk);
  } catch {
    throw new E2eeError('invalid_argument', 'this recipient key cannot be used');
  }
  return concat(n, ct);
}

// media_envelope_open: the plaintext, or E2eeError 'not_authentic'.
export async function envelopeOpen(env, senderBoxPk, recipientBoxSk) {
  const s = await sodium();
  if (env.length < 40) throw new E2eeError('not_authentic');
  try {
    return s.crypto_box_open_easy(env.subarray(24), env.subarray(0, 24), senderBoxPk, recipientBoxSk);
  } catch {
    throw new E2eeError('not_authentic');
  }
}

// media_aead_seal/open: 24-byte nonce || XChaCha20-Poly1305-IETF(plain, ad).
export async function aeadSeal(plain, ad, key, nonce) {
  const s = await sodium();
  const n = nonce || s.randombytes_buf(24);
  return concat(n, s.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, ad, null, n, key));
}

export async function aeadOpen(ct, ad, key) {
  const s = await sodium();
  if (ct.length < 40) throw new E2eeError('not_authentic');
  try {
    return s.crypto_aead_xchacha20poly1305_ietf_decrypt(null, ct.subarray(24), ad, ct.subarray(0, 24), key);
  } catch {
    throw new E2eeError('not_authentic');
  }
}
