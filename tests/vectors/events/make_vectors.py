#!/usr/bin/env python3
"""make_vectors.py - writes the event format's test vectors (v1 and v2) (docs/event-format.md) with a second,
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
def key_id(pk): return b64u(hashlib.blake2b(b"kizuna/keyid/v1\0" + pk, digest_size=32).digest()[:8])
KEY_ID = key_id(PK)
KEY2 = {**KEY, "key_id": KEY_ID}  # the v2 files' key: v1's files stay as they were

def build(f):
    """v1: room (absent from a creation), origin, inc, seq, prev, ts, type, sender, content.
    v2 (f["v"] == 2): v first, key after inc, hlc after prev."""
    o = {}
    v2 = f.get("v") is not None
    if v2: o["v"] = f["v"]
    if f["room"] is not None: o["room"] = f["room"]
    order = ("origin", "inc", "key", "seq", "prev", "hlc", "ts", "type", "sender", "content") if v2 else \
            ("origin", "inc", "seq", "prev", "ts", "type", "sender", "content")
    for k in order:
        o[k] = f[k]
    return json.dumps(o, ensure_ascii=False, separators=(",", ":")).encode()

def log(origin, inc, room, specs, start_ts, clock=None, v2_from=None, prev=None, seq0=0, hlc0=0):
    """specs: (type, sender, content, signed); content may be a function of earlier ids.
    clock(i) gives event i's ts (default: start_ts + 1000 i); from event index v2_from on the
    events are v2, with hlc = max(ts, the previous hlc + 1) as an origin computes it."""
    evs, r, hlc = [], room, hlc0
    for i, (typ, sender, content, signed) in enumerate(specs):
        if callable(content): content = content([e["event_id"] for e in evs])
        ts = clock(i) if clock else start_ts + 1000 * i
        f = {"room": r, "origin": origin, "inc": inc, "seq": seq0 + i + 1, "prev": prev,
             "ts": ts, "type": typ, "sender": sender, "content": content}
        if v2_from is not None and i >= v2_from:
            hlc = max(ts, hlc + 1)
            f = {"v": 2, **f, "key": KEY_ID, "hlc": hlc}
        else:
            hlc = ts  # a v1 event's clock is its ts (the store's hlc for events made before v2)
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
# ---- v2: a format version, the signing key's id and a hybrid logical clock ----
# A v2 room from its creation. The origin's clock steps back 5 s after event 3 (an NTP
# correction): ts goes back, hlc does not.
V2_TS = [T0 + 86400000, T0 + 86400000, T0 + 86400003, T0 + 86395000, T0 + 86395001, T0 + 86401000]
room2, v2log = log(ORIGIN, 1, None, [
    ("room.create", "suzuki", {"kind": "group", "name": "応援職員調整", "topic": "", "history": "shared",
                               "nonce": "DA0ODxAREhMUFRYX"}, True),
    ("member", "suzuki", {"user": "suzuki", "membership": "join", "role": "admin"}, False),
    ("msg", "suzuki", {"body": "給水車2台 到着 \"北小学校\""}, False),
    ("msg", "suzuki", {"body": "時計が戻っても順序は変わらない"}, True),
    ("msg", "suzuki", {"body": "hlc > ts"}, False),
    ("room.update", "suzuki", {"name": "応援職員調整", "topic": "第2班", "changed": ["topic"]}, True),
], 0, clock=lambda i: V2_TS[i], v2_from=0)

# The first log of log-room.json's room as an upgraded server continues it: its 8 v1 events,
# then v2 events whose hlc continues above the v1 events' ts.
_, upgrade = log(ORIGIN, 1, room, [
    ("msg", "tanaka", {"body": "v2 から"}, False),
    ("msg", "tanaka", {"body": "same log, same chain"}, True),
], T0 + 8000, v2_from=0, prev=main[-1]["event_id"], seq0=8, hlc0=main[-1]["fields"]["ts"])

dump("log-v2.json", {
    "description": "A v2 room's first log: v, key and hlc in every payload. The origin's clock steps back "
                   "5 s after event 3: ts goes back, hlc = max(ts, previous hlc + 1) does not. Checkpoint "
                   "signatures on events 1, 4 and 6.",
    "key": KEY2, "room_id": room2, "events": v2log})
dump("log-upgrade.json", {
    "description": "log-room.json's log continued by an upgraded origin: its 8 v1 events (taken first, "
                   "from log-room.json), then these v2 events, seq 9 and 10, chained to event 8; hlc "
                   "continues above the v1 events' ts.",
    "key": KEY2, "room_id": room, "after": "log-room.json", "events": upgrade})

V = v2log
def state2(seq, head=None, hlc=0, v=2, run_events=0, run_bytes=0, room_=room2):
    return {"room": room_, "origin": ORIGIN, "inc": 1, "seq": seq, "head": head, "v": v, "hlc": hlc,
            "run_events": run_events, "run_bytes": run_bytes}
q3 = V[2]["payload"]; vid2 = V[1]["event_id"]; vid3 = V[2]["event_id"]; h2 = V[1]["fields"]["hlc"]
other_pk = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))).public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw)
n3 = len(V[2]["payload"].encode())
cases += [
    case("v2-next", state2(2, vid2, h2), q3, "", vid3, "ok", "v2 event 3 follows event 2"),
    case("v2-signed-next", state2(2, vid2, h2), q3, sign(q3.encode()), vid3, "ok", "and signed"),
    case("v2-after-v1", state(8, main[-1]["event_id"]) | {"v": 1, "hlc": main[-1]["fields"]["ts"]},
         upgrade[0]["payload"], "", upgrade[0]["event_id"], "ok", "an upgraded origin continues a v1 log in v2"),
    case("v2-unknown-version", state2(2, vid2, h2), variant(V[2], v=3), "", None, "malformed", "v 3"),
    case("v2-version-string", state2(2, vid2, h2), variant(V[2], v="2"), "", None, "malformed", "v is a string"),
    case("v2-version-one", state2(2, vid2, h2), variant(V[2], v=1), "", None, "malformed", "v1 has no v field"),
    case("v2-missing-key", state2(2, vid2, h2), q3.replace("\"key\":\"" + KEY_ID + "\",", ""), "", None, "malformed", "no key"),
    case("v2-missing-hlc", state2(2, vid2, h2), q3.replace("\"hlc\":%d," % V[2]["fields"]["hlc"], ""), "", None, "malformed", "no hlc"),
    case("v2-key-not-an-id", state2(2, vid2, h2), variant(V[2], key=KEY_ID[:10]), "", None, "malformed", "10 characters"),
    case("v2-hlc-below-ts", state2(2, vid2, h2), variant(V[2], hlc=V[2]["fields"]["ts"] - 1), "", None, "malformed", "hlc is at least ts"),
    case("v2-hlc-too-large", state2(2, vid2, h2), variant(V[2], hlc=9007199254740992), "", None, "malformed", "over 2^53 - 1"),

    case("v1-with-key", state(2, id2), p3[:-1] + ",\"key\":\"" + KEY_ID + "\"}", "", None, "malformed", "v1 has no key"),
    case("v2-wrong-key", state2(2, vid2, h2), variant(V[2], key=key_id(other_pk)), "", None, "wrong_key", "names another server's key"),
    case("v2-hlc-not-above", state2(2, vid2, V[2]["fields"]["hlc"]), q3, "", vid3, "bad_hlc", "the log's clock already reached this hlc"),
    case("v1-after-v2", state(2, id2) | {"v": 2, "hlc": 1}, p3, "", id3, "bad_hlc", "a v2 log does not go back to v1, which has no clock"),
    case("v2-run-63", state2(2, vid2, h2, run_events=62), q3, "", vid3, "ok", "the 63rd unsigned event in a row"),
    case("v2-run-64", state2(2, vid2, h2, run_events=63), q3, "", vid3, "unsigned_run", "the 64th event since a signature must be signed"),
    case("v2-run-64-signed", state2(2, vid2, h2, run_events=63), q3, sign(q3.encode()), vid3, "ok", "signed: the run ends"),
    case("v2-run-bytes-under", state2(2, vid2, h2, run_events=3, run_bytes=131071 - n3), q3, "", vid3, "ok", "131071 bytes unsigned"),
    case("v2-run-bytes", state2(2, vid2, h2, run_events=3, run_bytes=131072 - n3), q3, "", vid3, "unsigned_run", "128 KiB unsigned"),
    case("v1-run-unbounded", state(2, id2) | {"v": 1, "hlc": 0, "run_events": 500, "run_bytes": 10000000}, p3, "", id3, "ok", "v1 had no bound: old logs read as they are"),
]

dump("rejects.json", {
    "description": "Single events against a log state (room, origin, inc, the last seq taken and its id): the "
                   "verdict a checker gives (event_format.h's names). The key and events are those of "
                   "log-room.json.",
    "key": KEY, "cases": cases})
print(len(main), len(second), len(v2log), len(upgrade), len(cases))
