// crypto/trust.js: whose devices this browser takes photos and keys from (clients/cli/trust.c,
// issue 14 items 1 and 2, for the receiving side). The server lists devices; only a user's own
// signed device list vouches for them. For every user it meets, this browser keeps the version
// of that list it accepted ("pinned", in IndexedDB store "contacts", or on a shared PC in
// sessionStorage) with every device id any accepted version named ("ever": their older events
// still verify); it takes a newer version only if every version in between follows the pinned
// one, so a server can leave devices out but never add one. Before a first pin, the newest
// version that follows from a root is taken (trust on first use), as the CLI does.

import { api } from '../api.js';
import { equalBytes } from './sodium.js';
import { devlistDecode, devlistFollows } from './devlist.js';
import { idbDo, unb64u, b64u, qualify } from './device.js';

const SHARED_KEY = 'kizuna.e2ee.contacts';

// The pure rule: lists (device.list's `lists`, oldest first) walked from pin ({list: encoding,
// ever: [ids]} or null). user is the qualified name the lists must carry, bare the login as the
// server shows it (a version naming the bare login was signed before names were qualified:
// history, not trust). Returns {pin (new or unchanged), current (decoded), ever (Set), stuck
// (why the chain does not follow the pin, or '')}.
export async function walk({ user, bare, lists, pin }) {
  const tofu = !pin;
  const cur = pin ? await devlistDecode(pin.list) : null;
  const ever = new Set(pin?.ever || []);
  let acc = null, accEnc = null, started = false, problem = '', last = 0n;
  for (const e of lists || []) {
    if (e.login !== bare && e.login !== user) continue;
    if (problem) continue;
    let enc, v, sig;
    try {
      enc = await unb64u(e.list);
      sig = await unb64u(e.sig);
      v = await devlistDecode(enc);
    } catch {
      problem = `version ${e.seq} is malformed`;
      continue;
    }
    if (v.seq > last && bare !== user && !bare.includes('@') && v.login === bare) {
      last = v.seq;
      continue;
    }
    if (v.login !== user || v.seq <= last) {
      problem = `version ${e.seq} is malformed`;
      continue;
    }
    last = v.seq;
    if (!started && !tofu) {
      if (v.seq < cur.seq) continue;
      if (v.seq > cur.seq || !equalBytes(v.hash, cur.hash)) problem = `it has no version ${cur.seq} as this browser accepted it`;
      else { acc = v; started = true; }
      continue;
    }
    let ok = await devlistFollows(started ? acc : null, v, enc, e.by, sig).then(() => true, () => false);
    if (!ok && tofu) ok = await devlistFollows(null, v, enc, e.by, sig).then(() => true, () => false);
    if (ok) {
      acc = v;
      accEnc = enc;
      started = true;
      for (const d of v.devices) ever.add(d.id);
    } else if (!tofu) {
      problem = `version ${v.seq} does not follow version ${acc.seq}`;
    }
  }
  if (!tofu && !started && !problem) problem = `it shows no version ${cur.seq}, which this browser accepted`;
  if (cur) for (const d of cur.devices) ever.add(d.id);
  if (accEnc && (tofu || acc.seq > cur.seq))
    return { pin: { list: accEnc, ever: [...ever] }, current: acc, ever, stuck: problem };
  return { pin: pin ? { list: pin.list, ever: [...ever] } : null, current: cur, ever, stuck: problem };
}

function me() { return qualify(api.session?.user?.login || ''); }

async function loadPin(user) {
  if (api.session?.shared) {
    try {
      const all = JSON.parse(sessionStorage.getItem(SHARED_KEY) || '{}');
      const p = all[`${me()}|${user}`];
      return p ? { list: await unb64u(p.list), ever: p.ever } : null;
    } catch { return null; }
  }
  const r = await idbDo('contacts', 'readonly', (st) => st.get(`${me()}|${user}`));
  return r ? { list: r.list, ever: r.ever } : null;
}

async function savePin(user, pin) {
  if (api.session?.shared) {
    let all = {};
    try { all = JSON.parse(sessionStorage.getItem(SHARED_KEY) || '{}'); } catch { /* start again */ }
    all[`${me()}|${user}`] = { list: await b64u(pin.list), ever: pin.ever };
    sessionStorage.setItem(SHARED_KEY, JSON.stringify(all));
    return;
  }
  await idbDo('contacts', 'readwrite', (st) => st.put({ key: `${me()}|${user}`, ...pin }));
}

// The devices login's accepted lists ever vouched for, from a device.list reply (pinning what it
// accepts): a Set of device ids, `current` (the accepted version, decoded, or null: whose devices
// get keys) and `stuck` when the server's chain does not follow the pin.
export async function vouched(login, reply) {
  const user = qualify(login);
  const pin = await loadPin(user);
  const r = await walk({ user, bare: login, lists: reply.lists, pin });
  if (r.pin && (!pin || !equalBytes(r.pin.list, pin.list) || r.pin.ever.length !== pin.ever.length))
    await savePin(user, r.pin);
  return { ever: r.ever, current: r.current, stuck: r.stuck };
}
