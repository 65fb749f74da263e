#!/usr/bin/env python3
"""make_vectors.py - writes the test vectors of the end-to-end encryption formats (media/media.h,
docs/security.md) with a second, independent implementation: Python's hashlib (BLAKE2b), the
`cryptography` package's Ed25519, X25519, ChaCha20, ChaCha20-Poly1305 and Poly1305, and, written
out below from their specifications, HSalsa20/XSalsa20 (crypto_box), HChaCha20 (the X in
XChaCha20-Poly1305) and libsodium's secretstream. None of Kizuna's C code and no libsodium.
tests/unit/test_e2ee_vectors.c checks media/ against these files; README.md in this directory
says what each holds. The output is deterministic (every key and nonce is fixed here); run it
only to add vectors, then commit the JSON it writes:

    python3 tests/vectors/e2ee/make_vectors.py tests/vectors/e2ee
"""
import base64, hashlib, json, math, os, struct, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.poly1305 import Poly1305
from cryptography.hazmat.primitives import serialization

OUT = sys.argv[1]
RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def seq_bytes(start, n):
    return bytes((start + i) & 0xff for i in range(n))


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def blake2b(data, size, key=b""):
    return hashlib.blake2b(data, digest_size=size, key=key).digest()


def write(name, obj):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


# ---- keys: device i has Ed25519 seed bytes(32*i .. ) and X25519 secret from another range ----

def device(i):
    seed = seq_bytes(0x20 * i, 32)
    sk = Ed25519PrivateKey.from_private_bytes(seed)
    spk = sk.public_key().public_bytes(*RAW)
    bsk = seq_bytes(0x80 + 0x20 * i, 32)
    bpk = X25519PrivateKey.from_private_bytes(bsk).public_key().public_bytes(*RAW)
    return {"sign_seed_hex": seed.hex(), "sign_pk_hex": spk.hex(), "box_sk_hex": bsk.hex(),
            "box_pk_hex": bpk.hex(), "_sk": sk, "id": b64u(blake2b(spk, 16))}


def pub(d):
    return {k: v for k, v in d.items() if not k.startswith("_")}


DEV = [device(i) for i in range(4)]


def sign(domain, msg, d):
    return d["_sk"].sign(domain.encode() + b"\0" + msg)


# ---- Salsa20 / ChaCha20 cores (for HSalsa20, XSalsa20 and HChaCha20) ----

M32 = 0xffffffff


def rotl(v, c):
    return ((v << c) & M32) | (v >> (32 - c))


def salsa_rounds(x):
    x = list(x)
    for _ in range(10):
        for a, b, c, d in ((0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11),
                           (0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14)):
            x[b] ^= rotl((x[a] + x[d]) & M32, 7)
            x[c] ^= rotl((x[b] + x[a]) & M32, 9)
            x[d] ^= rotl((x[c] + x[b]) & M32, 13)
            x[a] ^= rotl((x[d] + x[c]) & M32, 18)
    return x


SIGMA = struct.unpack("<4I", b"expand 32-byte k")


def salsa_state(key, inp16):
    k = struct.unpack("<8I", key)
    n = struct.unpack("<4I", inp16)
    return [SIGMA[0], k[0], k[1], k[2], k[3], SIGMA[1], n[0], n[1], n[2], n[3], SIGMA[2],
            k[4], k[5], k[6], k[7], SIGMA[3]]


def hsalsa20(key, inp16):
    x = salsa_rounds(salsa_state(key, inp16))
    return struct.pack("<8I", *(x[i] for i in (0, 5, 10, 15, 6, 7, 8, 9)))


def salsa20_stream(key, nonce8, n):
    out = b""
    ctr = 0
    while len(out) < n:
        s = salsa_state(key, nonce8 + struct.pack("<Q", ctr))
        x = salsa_rounds(s)
        out += struct.pack("<16I", *((x[i] + s[i]) & M32 for i in range(16)))
        ctr += 1
    return out[:n]


def poly1305(key, msg):
    return Poly1305.generate_tag(key, msg)


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def crypto_box(msg, nonce, sender_sk, recipient_pk):
    """crypto_box_easy: X25519, HSalsa20 to a key, then XSalsa20-Poly1305; returns mac || ct."""
    shared = X25519PrivateKey.from_private_bytes(sender_sk).exchange(
        X25519PublicKey.from_public_bytes(recipient_pk))
    k = hsalsa20(shared, bytes(16))
    sub = hsalsa20(k, nonce[:16])
    ks = salsa20_stream(sub, nonce[16:], 32 + len(msg))
    ct = xor(msg, ks[32:])
    return poly1305(ks[:32], ct) + ct


def chacha_rounds(x):
    x = list(x)

    def qr(a, b, c, d):
        x[a] = (x[a] + x[b]) & M32; x[d] = rotl(x[d] ^ x[a], 16)
        x[c] = (x[c] + x[d]) & M32; x[b] = rotl(x[b] ^ x[c], 12)
        x[a] = (x[a] + x[b]) & M32; x[d] = rotl(x[d] ^ x[a], 8)
        x[c] = (x[c] + x[d]) & M32; x[b] = rotl(x[b] ^ x[c], 7)
    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return x


def hchacha20(key, inp16):
    s = list(SIGMA) + list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", inp16))
    x = chacha_rounds(s)
    return struct.pack("<8I", *(x[i] for i in (0, 1, 2, 3, 12, 13, 14, 15)))


def xchacha_aead(key, nonce24, msg, ad):
    """crypto_aead_xchacha20poly1305_ietf_encrypt: returns ct || mac."""
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).encrypt(b"\0\0\0\0" + nonce24[16:], msg, ad)


def chacha20_ietf(key, nonce12, counter, data):
    c = Cipher(algorithms.ChaCha20(key, struct.pack("<I", counter) + nonce12), mode=None)
    return c.encryptor().update(data)


class SecretStream:
    """libsodium's crypto_secretstream_xchacha20poly1305 push side, from its specification."""
    TAG_MESSAGE, TAG_FINAL = 0, 3

    def __init__(self, key, header):
        self.k = hchacha20(key, header[:16])
        self.nonce = bytearray(struct.pack("<I", 1) + header[16:24])

    def push(self, m, ad, tag):
        n = bytes(self.nonce)
        polykey = chacha20_ietf(self.k, n, 0, bytes(64))[:32]
        block = chacha20_ietf(self.k, n, 1, bytes([tag]) + bytes(63))
        c = chacha20_ietf(self.k, n, 2, m)
        # libsodium pads the message part with (0x10 - 64 + mlen) & 0xf zero bytes, that is
        # mlen mod 16, not the (16 - mlen) mod 16 of RFC 8439: reproduce it exactly.
        mac_in = ad + bytes((16 - len(ad)) % 16) + block + c + bytes(len(m) % 16)
        mac_in += struct.pack("<QQ", len(ad), 64 + len(m))
        mac = poly1305(polykey, mac_in)
        for i in range(8):
            self.nonce[4 + i] ^= mac[i]
        ctr = (struct.unpack("<I", bytes(self.nonce[:4]))[0] + 1) & M32
        self.nonce[:4] = struct.pack("<I", ctr)
        assert tag == self.TAG_FINAL or (ctr != 0 and not tag & 2)  # no rekey needed here
        return block[:1] + c + mac


def padded_len(n):
    """media_blob_padded_len: Signal's bucket, max(541, floor(1.05^ceil(log_1.05 n)))."""
    if n <= 541:
        return 541
    k = math.ceil(math.log(n) / math.log(1.05))
    b = math.floor(1.05 ** k)
    while b < n:
        k += 1
        b = math.floor(1.05 ** k)
    return b


# ---- device ids and domain strings ----

write("device_id.json", {
    "about": "media_device_id: base64url without padding of BLAKE2b-128(sign_pk), 22 characters",
    "vectors": [{"sign_pk_hex": d["sign_pk_hex"], "device_id": d["id"]} for d in DEV] + [
        {"sign_pk_hex": bytes(32).hex(), "device_id": b64u(blake2b(bytes(32), 16))},
        {"sign_pk_hex": (b"\xff" * 32).hex(), "device_id": b64u(blake2b(b"\xff" * 32, 16))}],
})

DOMAINS = {"MEDIA_DOMAIN_DEVKEY": "kizuna/devkey/v1", "MEDIA_DOMAIN_KEYS": "kizuna/keys/v1",
           "MEDIA_DOMAIN_PHOTO": "kizuna/photo/v2", "MEDIA_DOMAIN_KEYCHECK": "kizuna/keycheck/v1",
           "MEDIA_DOMAIN_DEVLIST": "kizuna/devlist/v1", "MEDIA_DOMAIN_POLICY": "kizuna/policy/v1"}
MSG = "県道12号線 冠水".encode()
write("domains.json", {
    "about": "The domain strings, and media_sign: Ed25519 over domain || 0x00 || message "
             "(deterministic). Each signature verifies under its own domain only.",
    "key": pub(DEV[0]),
    "message_hex": MSG.hex(),
    "domains": [{"name": k, "domain": v, "signature_hex": sign(v, MSG, DEV[0]).hex()}
                for k, v in DOMAINS.items()],
})

# ---- device self-signature (E1) ----

def u16str(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


devkey = []
for user, d in (("tanaka", DEV[0]), ("佐藤", DEV[1])):
    m = u16str(user) + u16str(d["id"]) + bytes.fromhex(d["sign_pk_hex"]) + \
        bytes.fromhex(d["box_pk_hex"])
    devkey.append({"user": user, "device_id": d["id"], "key": pub(d), "signed_hex": m.hex(),
                   "signature_hex": sign("kizuna/devkey/v1", m, d).hex()})
write("devkey.json", {
    "about": "media_devkey_sign: Ed25519 over 'kizuna/devkey/v1' 0x00 || u16 len || user || "
             "u16 len || device_id || sign_pk || box_pk (lengths big-endian)",
    "vectors": devkey,
})

# ---- room history policy ----

def u8str(s):
    b = s.encode()
    return bytes([len(b)]) + b


pol = []
for login, hist, d in (("tanaka", "shared", DEV[0]), ("佐藤", "joined", DEV[1])):
    m = u8str(login) + u8str(hist)
    pol.append({"login": login, "history": hist, "key": pub(d), "signed_hex": m.hex(),
                "signature_hex": sign("kizuna/policy/v1", m, d).hex()})
write("policy.json", {
    "about": "media_policy_sign: Ed25519 over 'kizuna/policy/v1' 0x00 || u8 len || login || "
             "u8 len || history",
    "vectors": pol,
})

# ---- key envelopes (E4) ----

env = []
for i, plain in enumerate([b"", json.dumps({"from": DEV[0]["id"], "to": DEV[1]["id"], "room":
                                             "r1", "epoch": "e1", "key": b64u(bytes(32))},
                                            separators=(",", ":")).encode(), bytes(range(256))]):
    nonce = seq_bytes(0x40 + i, 24)
    box = crypto_box(plain, nonce, bytes.fromhex(DEV[0]["box_sk_hex"]),
                     bytes.fromhex(DEV[1]["box_pk_hex"]))
    env.append({"plain_hex": plain.hex(), "nonce_hex": nonce.hex(),
                "envelope_hex": (nonce + box).hex()})
write("envelope.json", {
    "about": "media_envelope_seal/open: 24-byte nonce || crypto_box_easy(plain, nonce, "
             "sender box_sk, recipient box_pk) (X25519, HSalsa20, XSalsa20-Poly1305). The nonce "
             "is random in Kizuna: seal with it to get envelope_hex; open must give plain_hex.",
    "sender": pub(DEV[0]), "recipient": pub(DEV[1]),
    "vectors": env,
})

# ---- photo message v2 ----

def photo_ad(room, epoch, dev, seq, ts):
    return b"\0".join(x.encode() for x in ("kizuna/photo/v2", room, epoch, dev, str(seq), str(ts)))


EPOCH_KEY = seq_bytes(0xa0, 32)
photos = []
msgs = [b"", json.dumps({"caption": "県道12号線 冠水", "gps": [35.681236, 139.767125],
                         "captured_at": "2026-01-01T09:30:00"}, ensure_ascii=False,
                        separators=(",", ":")).encode(), bytes([0x61]) * 600]
for i, m in enumerate(msgs):
    ad = dict(room="AbCdRoomId_-0123456789xyzABCDEFGHIJKLMNOPQ", epoch="ep%d" % (i + 1),
              device=DEV[0]["id"], seq=i + 1, ts=1767225600000 + 1000 * i)
    padded = padded_len(4 + len(m))
    plain = struct.pack(">I", len(m)) + m + bytes(padded - 4 - len(m))
    nonce = seq_bytes(0x60 + i, 24)
    adb = photo_ad(ad["room"], ad["epoch"], ad["device"], ad["seq"], ad["ts"])
    ct = nonce + xchacha_aead(EPOCH_KEY, nonce, plain, adb)
    photos.append({"ad": ad, "ad_hex": adb.hex(), "message_hex": m.hex(), "padded_len": padded,
                   "nonce_hex": nonce.hex(), "sealed_hex": ct.hex()})
# Authentic under the key but not padded as a sender pads: open must refuse them.
bad = []
for what, plain in (("length past the end", struct.pack(">I", 600) + bytes(537)),
                    ("padding not zero", struct.pack(">I", 3) + b"abc" + bytes(533) + b"\1")):
    ad = dict(room="r", epoch="e", device=DEV[0]["id"], seq=7, ts=1767225600000)
    nonce = seq_bytes(0x70, 24)
    ct = nonce + xchacha_aead(EPOCH_KEY, nonce, plain, photo_ad(ad["room"], ad["epoch"],
                                                                ad["device"], 7, ad["ts"]))
    bad.append({"why": what, "ad": ad, "sealed_hex": ct.hex()})
write("photo.json", {
    "about": "media_photo_seal/open (photo message v2): 24-byte nonce || XChaCha20-Poly1305-IETF"
             "(u32 big-endian length || message || zeros to padded_len = media_blob_padded_len(4"
             " + length), ad), ad = 'kizuna/photo/v2' 0 room 0 epoch 0 device 0 seq 0 ts (seq "
             "and ts in decimal, no final NUL). The nonce is random in Kizuna.",
    "key_hex": EPOCH_KEY.hex(),
    "vectors": photos,
    "refused": bad,
})

# ---- epoch key-check ----

checks = []
for room, owner, epoch, key in (("room1", DEV[0]["id"], "e1", EPOCH_KEY),
                                ("災害対策本部", DEV[1]["id"], "epoch-2", bytes(32)),
                                ("", "", "", b"\xff" * 32)):
    data = b"".join(x.encode() + b"\0" for x in ("kizuna/keycheck/v1", room, owner, epoch))
    checks.append({"room": room, "owner": owner, "epoch": epoch, "key_hex": key.hex(),
                   "check_hex": blake2b(data, 32, key).hex()})
write("keycheck.json", {
    "about": "media_epoch_check: BLAKE2b-256 keyed with the epoch key over 'kizuna/keycheck/v1' "
             "0 room 0 owner 0 epoch 0 (every part NUL-terminated)",
    "vectors": checks,
})

# ---- signed device lists ----

def devlist(login, seq, prev, devs):
    devs = sorted(devs, key=lambda d: bytes.fromhex(d["sign_pk_hex"]))
    enc = b"KZDL\1" + bytes([len(login.encode())]) + login.encode() + struct.pack(">Q", seq) + \
        prev + bytes([len(devs)])
    for d in devs:
        enc += bytes.fromhex(d["sign_pk_hex"]) + bytes.fromhex(d["box_pk_hex"])
    return enc


lists = []
root = devlist("tanaka", 1, bytes(32), [DEV[0], DEV[1]])
h1 = blake2b(root, 32)
second = devlist("tanaka", 2, h1, [DEV[2], DEV[0], DEV[1]])
restart = devlist("tanaka", 3, bytes(32), [DEV[3]])
for enc, signer, devs, prev_i in ((root, DEV[1], [DEV[0], DEV[1]], None),
                                  (second, DEV[0], [DEV[2], DEV[0], DEV[1]], 0),
                                  (restart, DEV[3], [DEV[3]], 1)):
    lists.append({"login": "tanaka", "encoding_hex": enc.hex(), "hash_hex": blake2b(enc, 32).hex(),
                  "devices": [{"id": d["id"], "sign_pk_hex": d["sign_pk_hex"],
                               "box_pk_hex": d["box_pk_hex"]} for d in devs],
                  "follows": prev_i, "signer": signer["id"],
                  "signature_hex": sign("kizuna/devlist/v1", enc, signer).hex()})
lists[0]["seq"], lists[1]["seq"], lists[2]["seq"] = 1, 2, 3
lists[0]["prev_hex"], lists[1]["prev_hex"], lists[2]["prev_hex"] = \
    bytes(32).hex(), h1.hex(), bytes(32).hex()
bad_enc = [
    ("bad magic", b"KZDX" + root[4:]),
    ("version 2", root[:4] + b"\2" + root[5:]),
    ("trailing byte", root + b"\0"),
    ("missing byte", root[:-1]),
    ("seq 0", devlist("tanaka", 0, bytes(32), [DEV[0]])),
    ("empty login", devlist("", 1, bytes(32), [DEV[0]])),
    ("space in login", devlist("a b", 1, bytes(32), [DEV[0]])),
    ("devices unsorted", root[:-128] + root[-64:] + root[-128:-64]),
    ("device repeated", root[:-129] + b"\2" + root[-64:] + root[-64:]),
]
write("devlist.json", {
    "about": "media_devlist_encode/decode/sign/follows: 'KZDL' 1 || u8 len || login || u64 seq "
             "|| prev (32) || u8 n || n x (sign_pk || box_pk) sorted by sign_pk; hash BLAKE2b-256"
             " of the encoding; signature Ed25519 over 'kizuna/devlist/v1' 0x00 || encoding by "
             "the device named in signer. 'follows' is the index of the version it follows (null:"
             " taken as a first root); index 2 is a new start (root) signed by its own device.",
    "keys": [pub(d) for d in DEV],
    "lists": lists,
    "malformed": [{"why": w, "encoding_hex": e.hex()} for w, e in bad_enc],
})

# ---- safety numbers ----

def fingerprint(user, devs):
    devs = sorted(devs, key=lambda d: (d["id"].encode(), bytes.fromhex(d["sign_pk_hex"]),
                                       bytes.fromhex(d["box_pk_hex"])))
    m = u16str(user) + struct.pack(">H", len(devs))
    for d in devs:
        m += u16str(d["id"]) + bytes.fromhex(d["sign_pk_hex"]) + bytes.fromhex(d["box_pk_hex"])
    h = hashlib.blake2b(b"kizuna/safety/v1\0" + m, digest_size=64).digest()
    for _ in range(5199):
        h = hashlib.blake2b(h + m, digest_size=64).digest()
    return "".join("%05d" % (int.from_bytes(h[i * 5:i * 5 + 5], "big") % 100000) for i in range(6))


def safety(ua, da, ub, db):
    a, b = fingerprint(ua, da), fingerprint(ub, db)
    digits = a + b if a <= b else b + a
    return a, b, " ".join(digits[i:i + 5] for i in range(0, 60, 5))


safe = []
for ua, da, ub, db in (("tanaka", [DEV[0], DEV[1]], "sato", [DEV[2]]),
                       ("佐藤", [DEV[3]], "tanaka", [DEV[1], DEV[0]]),
                       ("alice", [], "bob", [DEV[0], DEV[1], DEV[2], DEV[3]])):
    fa, fb, sn = safety(ua, da, ub, db)
    safe.append({"user_a": ua, "devices_a": [d["id"] for d in da], "fingerprint_a": fa,
                 "user_b": ub, "devices_b": [d["id"] for d in db], "fingerprint_b": fb,
                 "safety_number": sn})
write("safety.json", {
    "about": "media_fingerprint/media_safety_number: 5200 rounds of BLAKE2b-512, h = H("
             "'kizuna/safety/v1' 0x00 || keys), then h = H(h || keys); keys = u16 len || user ||"
             " u16 n || per device sorted by (id, sign_pk, box_pk): u16 len || id || sign_pk || "
             "box_pk; six 5-byte big-endian numbers mod 100000. The safety number is both "
             "fingerprints, lower first, in 12 groups of 5. Devices are named by id from keys.",
    "keys": [pub(d) for d in DEV],
    "vectors": safe,
})

# ---- blobs ----

def blob(plain, key, header):
    padded = padded_len(len(plain))
    C = 65536
    prefix = b"KZB1\1" + struct.pack(">IQ", C, padded)
    p = plain + bytes(padded - len(plain))
    st = SecretStream(key, header)
    out = prefix + header
    n = (padded + C - 1) // C
    for i in range(n):
        out += st.push(p[i * C:(i + 1) * C], prefix if i == 0 else b"",
                       SecretStream.TAG_FINAL if i == n - 1 else SecretStream.TAG_MESSAGE)
    return out, padded


blobs = []
for i, (plain, desc) in enumerate(((b"", "empty"), ("冠水".encode() * 100, "600 bytes"),
                                   (bytes((j * 7 + 3) % 251 for j in range(70000)),
                                    "70000 bytes: byte j is (7 j + 3) mod 251, two chunks"))):
    key, header = seq_bytes(0xc0 + i, 32), seq_bytes(0x10 * i + 1, 24)
    b, padded = blob(plain, key, header)
    v = {"about": desc, "key_hex": key.hex(), "header_hex": header.hex(), "plain_len": len(plain),
         "padded_len": padded, "blob_len": len(b), "blob_id_hex": blake2b(b, 32).hex(),
         "blob_b64": base64.b64encode(b).decode()}
    if len(plain) < 70000:
        v["plain_hex"] = plain.hex()
    else:
        v["plain_pattern"] = "(7*j+3)%251"
    blobs.append(v)
write("blob.json", {
    "about": "media_blob_encrypt/decrypt (KZB1): 'KZB1' 1 || u32 chunk size 65536 || u64 P || "
             "secretstream header (24) || chunks of up to 65536 plaintext bytes (+17), the last "
             "tagged FINAL, chunk 0 with bytes 0-16 as additional data; plaintext is the content "
             "and zeros to P = media_blob_padded_len(length); blob id BLAKE2b-256 of the blob. "
             "Key and header are random in Kizuna: decrypting blob_b64 with key_hex must give "
             "the plaintext.",
    "padded_len": [{"n": n, "padded": padded_len(n)} for n in
                   (0, 1, 541, 542, 1000, 4096, 65536, 70000, 1000000, 12345678)],
    "vectors": blobs,
})
