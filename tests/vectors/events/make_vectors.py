#!/usr/bin/env python3
"""make_vectors.py - writes the event format's test vectors (docs/event-format.md) with a second,
independent implementation of the format: Python's json and hashlib (BLAKE2b) and the
`cryptography` package's Ed25519, none of the C code. tests/unit/test_event_format.c checks that
server/event_format.c gives exactly these bytes, ids, signatures and verdicts. The output is
deterministic; run it only to add vectors, then commit the JSON it writes:

    python3 tests/vectors/events/make_vectors.py tests/vectors/events
"""
import base64, hashlib, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

OUT = sys.argv[1]
SEED = bytes(range(32))
sk = Ed25519PrivateKey.from_private_bytes(SEED)
PK = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
KEY = {"seed_hex": SEED.hex(), "public_key_hex": PK.hex()}

def b64u(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def h(domain, payload): return b64u(hashlib.blake2b(domain.encode() + b"\0" + payload, digest_size=32).digest())
def event_id(p): return h("kizuna/id/v1", p)
def room_id(p): return h("kizuna/room/v1", p)
def sign(p): return sk.sign(b"kizuna/event/v1\0" + p).hex()

def build(f):
    o = {}
    if f["room"] is not None: o["room"] = f["room"]
    for k in ("origin", "inc", "seq", "prev", "ts", "type", "sender", "content"):
        o[k] = f[k]
    return json.dumps(o, ensure_ascii=False, separators=(",", ":")).encode()

def log(origin, inc, room, specs, start_ts):
    """specs: (type, sender, content, signed); content may be a function of earlier ids."""
    evs, prev, r = [], None, room
    for i, (typ, sender, content, signed) in enumerate(specs):
        if callable(content): content = content([e["event_id"] for e in evs])
        f = {"room": r, "origin": origin, "inc": inc, "seq": i + 1, "prev": prev,
             "ts": start_ts + 1000 * i, "type": typ, "sender": sender, "content": content}
        p = build(f)
        e = {"fields": f, "payload": p.decode(), "payload_hex": p.hex(), "event_id": event_id(p)}
        if r is None:
            r = room_id(p)
            e["room_id"] = r
        e["signature_hex"] = sign(p) if signed else ""
        evs.append(e)
        prev = e["event_id"]
    return r, evs

ORIGIN = "kz-test-origin"
T0 = 1767225600000  # 2026-01-01T00:00:00Z
room, main = log(ORIGIN, 1, None, [
    ("room.create", "tanaka", {"kind": "group", "name": "災害対策本部", "topic": "", "history": "shared",
                               "nonce": "AAECAwQFBgcICQoL"}, True),
    ("member", "tanaka", {"user": "tanaka", "membership": "join", "role": "admin"}, False),
    ("msg", "tanaka", {"body": "県道12号線が冠水しています\n\"通行止め\" \\ / 🙏\tタブ\u0001"}, True),
    ("member", "tanaka", {"user": "sato", "membership": "join", "role": "member"}, False),
    ("msg.edit", "tanaka", lambda ids: {"target": ids[2], "body": "県道12号線: 冠水、通行止め"}, False),
    ("msg.delete", "tanaka", lambda ids: {"target": ids[2], "by_admin": True}, True),
    ("room.update", "tanaka", {"name": "災害対策本部", "topic": "2026年1月 豪雨", "changed": ["topic"]}, False),
    ("room.archive", "tanaka", {"archived": True}, True),
], T0)

_, second = log(ORIGIN, 4294967297, room, [
    ("member", "sato", {"user": "sato", "membership": "leave"}, False),
    ("e2ee.photo", "sato", {"device": "d-0123456789abcdef", "blobs": ["00" * 32], "data": "eyJlcG9jaCI6IjEifQ", "sig": "c2ln"}, True),
], 9007199254740991 - 1000)

def dump(name, obj):
    with open(f"{OUT}/{name}", "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")

dump("log-room.json", {
    "description": "A room's first log: the creation (whose hash is the room id), members, a message with "
                   "characters that need escaping, its edit and deletion, a topic change and archiving. "
                   "Checkpoint signatures on events 1, 3, 6 and 8; the others are covered through prev.",
    "key": KEY, "room_id": room, "events": main})
dump("log-incarnation.json", {
    "description": "A second log of the same room and origin, after a restore bumped the incarnation "
                   "past 2^32: seq starts again at 1 with prev null, and the room is named. ts is the "
                   "largest integer the format allows.",
    "key": KEY, "room_id": room, "events": second})

# ---- cases a checker must refuse ----
E = main
def state(seq, head=None, room_=room, origin=ORIGIN, inc=1):
    return {"room": room_, "origin": origin, "inc": inc, "seq": seq, "head": head}
def case(name, log_, payload, sig, claimed, verdict, why):
    return {"name": name, "why": why, "log": log_, "payload": payload if isinstance(payload, str) else payload.decode(),
            "signature_hex": sig, "event_id": claimed, "verdict": verdict}
def variant(base, **changes):
    f = dict(base["fields"]); f.update(changes); return build(f)

p3 = E[2]["payload"]; id2 = E[1]["event_id"]; id3 = E[2]["event_id"]
other_room = room_id(b"another room")
cases = [
    case("next", state(2, id2), p3, E[2]["signature_hex"], id3, "ok", "event 3 follows event 2"),
    case("unsigned-next", state(2, id2), p3, "", id3, "ok", "no signature: taken, covered by a later checkpoint"),
    case("no-claimed-id", state(2, id2), p3, E[2]["signature_hex"], None, "ok", "no id to compare"),
    case("stale", state(3, id3), p3, "", id3, "stale", "seq 3 again"),
    case("gap", state(1, E[0]["event_id"]), p3, "", id3, "gap", "seq 3 after 1"),
    case("wrong-head", state(2, E[0]["event_id"]), p3, "", id3, "broken_chain", "prev names event 2, the log's head is event 1"),
    case("prev-rewritten", state(2, id2), variant(E[2], prev=E[0]["event_id"]), "", None, "broken_chain", "prev changed to event 1"),
    case("other-room", state(2, id2, room_=other_room), p3, "", id3, "other_log", "another room's log"),
    case("other-origin", state(2, id2, origin="kz-other"), p3, "", id3, "other_log", "another server's log"),
    case("other-incarnation", state(2, id2, inc=2), p3, "", id3, "other_log", "another incarnation's log"),
    case("creation-of-another-room", state(0, None, room_=other_room), E[0]["payload"], "", E[0]["event_id"], "other_log", "this creation's hash is not the log's room"),
    case("bad-id", state(2, id2), p3, "", id2, "bad_id", "the id given is event 2's"),
    case("signature-of-another-event", state(2, id2), p3, E[0]["signature_hex"], id3, "bad_signature", "event 1's signature"),
    case("signature-one-bit", state(2, id2), p3, E[2]["signature_hex"][:-1] + ("0" if E[2]["signature_hex"][-1] != "0" else "1"), id3, "bad_signature", "last nibble of the signature changed"),
    case("signature-short", state(2, id2), p3, E[2]["signature_hex"][:126], id3, "bad_signature", "63 bytes"),
    case("payload-changed", state(2, id2), variant(E[2], ts=E[2]["fields"]["ts"] + 1), E[2]["signature_hex"], None, "bad_signature", "ts changed after signing"),
    case("not-json", state(2, id2), "{\"room\":", "", None, "malformed", "truncated"),
    case("array", state(2, id2), "[1,2]", "", None, "malformed", "not an object"),
    case("missing-content", state(2, id2), p3.replace(",\"content\":" + json.dumps(E[2]["fields"]["content"], ensure_ascii=False, separators=(",", ":")), ""), "", None, "malformed", "no content"),
    case("content-not-object", state(2, id2), variant(E[2], content="text"), "", None, "malformed", "content is a string"),
    case("duplicate-seq", state(2, id2), p3.replace("\"seq\":3,", "\"seq\":3,\"seq\":4,"), "", None, "malformed", "seq twice"),
    case("unknown-field", state(2, id2), p3[:-1] + ",\"hlc\":1}", "", None, "malformed", "a field v1 does not have"),
    case("seq-zero", state(0, None), variant(E[2], seq=0, prev=None), "", None, "malformed", "seq starts at 1"),
    case("seq-too-large", state(2, id2), variant(E[2], seq=9007199254740992), "", None, "malformed", "over 2^53 - 1"),
    case("seq-fraction", state(2, id2), p3.replace("\"seq\":3,", "\"seq\":3.5,"), "", None, "malformed", "not an integer"),
    case("seq-string", state(2, id2), variant(E[2], seq="3"), "", None, "malformed", "a string"),
    case("inc-zero", state(2, id2), variant(E[2], inc=0), "", None, "malformed", "inc starts at 1"),
    case("ts-negative", state(2, id2), variant(E[2], ts=-1), "", None, "malformed", "ts from 0"),
    case("prev-null-after-1", state(2, id2), variant(E[2], prev=None), "", None, "malformed", "prev is null only at seq 1"),
    case("prev-at-seq-1", state(0, None), variant(E[1], seq=1, prev=id2), "", None, "malformed", "seq 1 has no prev"),
    case("prev-not-an-id", state(2, id2), variant(E[2], prev=id2[:42]), "", None, "malformed", "42 characters"),
    case("room-missing-after-1", state(2, id2), variant(E[2], room=None), "", None, "malformed", "only a creation leaves out the room"),
    case("room-not-an-id", state(2, id2), variant(E[2], room=room + "="), "", None, "malformed", "44 characters"),
    case("origin-empty", state(2, id2, origin=None), variant(E[2], origin=""), "", None, "malformed", "no origin"),
    case("type-too-long", state(2, id2), variant(E[2], type="t" * 24), "", None, "malformed", "24 bytes"),
    case("sender-empty", state(2, id2), variant(E[2], sender=""), "", None, "malformed", "no sender"),
]
dump("rejects.json", {
    "description": "Single events against a log state (room, origin, inc, the last seq taken and its id): the "
                   "verdict a checker gives (event_format.h's names). The key and events are those of "
                   "log-room.json.",
    "key": KEY, "cases": cases})
print(len(main), len(second), len(cases))
