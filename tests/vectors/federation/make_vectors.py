#!/usr/bin/env python3
"""make_vectors.py - writes the test vectors of federation's server identity (server/fed.h,
docs/federation.md) with a second, independent implementation: Python's hashlib (BLAKE2b) and
the `cryptography` package's Ed25519. None of Kizuna's C code and no libsodium.
tests/unit/test_fed.c checks server/fed_identity.c against these files; README.md in this
directory says what each holds. The output is deterministic (every key is fixed here); run it
only to add vectors, then commit the JSON it writes:

    python3 tests/vectors/federation/make_vectors.py tests/vectors/federation
"""
import base64, hashlib, json, os, struct, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

OUT = sys.argv[1]
RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
DOMAIN = b"kizuna/fingerprint/v1"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def public_key(seed):
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(*RAW)


def fingerprint(server_id, pk):
    sid = server_id.encode()
    m = struct.pack(">H", len(sid)) + sid + pk
    h = hashlib.blake2b(DOMAIN + b"\0" + m, digest_size=64).digest()
    for _ in range(5199):
        h = hashlib.blake2b(h + m, digest_size=64).digest()
    digits = "".join("%05d" % (int.from_bytes(h[i * 5:i * 5 + 5], "big") % 100000)
                     for i in range(12))
    return " ".join(digits[i:i + 5] for i in range(0, 60, 5))


vectors = []
for i, sid in enumerate(("jp-38-ehime-pref", "jp-38201-matsuyama", "kz-03a107bff3ce",
                         "kz-A6Eb_-POEL4d")):
    seed = bytes((0x40 + 0x20 * (i % 2) + j) & 0xff for j in range(32))
    pk = public_key(seed)
    vectors.append({"server_id": sid, "seed_hex": seed.hex(), "public_key_hex": pk.hex(),
                    "public_key_b64url": b64u(pk), "fingerprint": fingerprint(sid, pk),
                    "derived_id": "kz-" + pk[:6].hex(), "legacy_id": "kz-" + b64u(pk)[:12]})

with open(os.path.join(OUT, "fingerprint.json"), "w", encoding="utf-8") as f:
    json.dump({
        "about": "fed_fingerprint: 5200 rounds of BLAKE2b-512, h = H('kizuna/fingerprint/v1' "
                 "0x00 || m), then h = H(h || m); m = u16 len (big-endian) || server id || "
                 "Ed25519 public key (32 bytes); twelve 5-byte big-endian numbers of h, each mod "
                 "100000, as 5 digits, in 12 groups separated by single spaces. The public key "
                 "comes from seed_hex (RFC 8032); its base64url has no padding. The last id is "
                 "one a database made before ids were stored may have kept (kz- and 12 "
                 "characters of base64url): not a valid new id, but it has a fingerprint. derived_id is the "
                 "id kizunad init gives the key when none is chosen (kz- and the first 6 bytes in "
                 "lower-case hex), legacy_id the one kizunad 0.1 derived (kz- and the first 12 "
                 "characters of the base64url).",
        "vectors": vectors,
    }, f, ensure_ascii=False, indent=1)
    f.write("\n")

# The link handshake (fed_hello.c, docs/protocol.md "Server to server"): what each side signs.
HELLO_DOMAIN = b"kizuna/hello/v1"


def hello_transcript(signer, dialer, dnonce, acceptor, anonce):
    d, a = dialer.encode(), acceptor.encode()
    return (HELLO_DOMAIN + b"\0" + bytes([1, signer]) + bytes([len(d)]) + d + dnonce +
            bytes([len(a)]) + a + anonce)


hellos = []
for i, (dialer, acceptor) in enumerate((("jp-38-ehime-pref", "jp-38201-matsuyama"),
                                        ("jp-38201-matsuyama", "jp-38-ehime-pref"),
                                        ("kz-A6Eb_-POEL4d", "abc"))):
    dseed = bytes((0x10 * (i + 1) + j) & 0xff for j in range(32))
    aseed = bytes((0x90 + 0x10 * i + j) & 0xff for j in range(32))
    dnonce = hashlib.blake2b(b"dialer nonce %d" % i, digest_size=32).digest()
    anonce = hashlib.blake2b(b"acceptor nonce %d" % i, digest_size=32).digest()
    for signer, seed in ((1, dseed), (2, aseed)):
        t = hello_transcript(signer, dialer, dnonce, acceptor, anonce)
        sig = Ed25519PrivateKey.from_private_bytes(seed).sign(t)
        hellos.append({"signer": "dialer" if signer == 1 else "acceptor", "dialer_id": dialer,
                       "dialer_nonce_b64url": b64u(dnonce), "acceptor_id": acceptor,
                       "acceptor_nonce_b64url": b64u(anonce), "seed_hex": seed.hex(),
                       "public_key_hex": public_key(seed).hex(), "transcript_hex": t.hex(),
                       "signature_b64url": b64u(sig)})

with open(os.path.join(OUT, "hello.json"), "w", encoding="utf-8") as f:
    json.dump({
        "about": "fed_hello_transcript and fed_hello_sign: transcript = 'kizuna/hello/v1' 0x00 "
                 "|| u8 version (1) || u8 signer (1 dialer, 2 acceptor) || u8 len || dialer id "
                 "|| dialer nonce (32 bytes) || u8 len || acceptor id || acceptor nonce (32 "
                 "bytes); signature = Ed25519 (RFC 8032) of the transcript by the signer's key "
                 "(from seed_hex). Nonces and signatures are base64url without padding.",
        "vectors": hellos,
    }, f, ensure_ascii=False, indent=1)
    f.write("\n")
