// snapshot.js: what this browser last saw (the room list, the newest page of each room opened),
// kept in IndexedDB so that the installed app opens with it while offline (issue 21, item 5) and
// says as of when. Personal data, so: never on a shared PC (the login's "shared": true keeps
// nothing), each entry under its user's login (another user of the same browser never sees
// it), and the whole database deleted at logout and when a session ends (api.wipe). Failures
// are silent: a snapshot is a convenience, never a reason for a page to fail.
//   keep(key, value)  stores value (structured-clonable) for the logged-in user, stamped now.
//   recall(key)       -> {value, at} | null.
// api.wipe deletes the database (by its name, SNAPSHOT_DB, to keep api.js free of this module).

import { api } from './api.js';

const DB = 'kizuna-snapshot';
const STORE = 'snap';

function open() {
  return new Promise((resolve, reject) => {
    const rq = indexedDB.open(DB, 1);
    rq.onupgradeneeded = () => rq.result.createObjectStore(STORE);
    rq.onsuccess = () => resolve(rq.result);
    rq.onerror = () => reject(rq.error);
  });
}

function owner() {
  const s = api.session;
  return s && !s.shared && s.user?.login ? s.user.login : null;
}

async function tx(mode, fn) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const rq = fn(t.objectStore(STORE));
      t.oncomplete = () => resolve(rq?.result);
      t.onerror = () => reject(t.error);
    });
  } finally {
    db.close();
  }
}

export async function keep(key, value) {
  const who = owner();
  if (!who) return;
  try { await tx('readwrite', (st) => st.put({ value, at: Date.now() }, `${who}/${key}`)); } catch { /* a nicety */ }
}

export async function recall(key) {
  const who = owner();
  if (!who) return null;
  try { return (await tx('readonly', (st) => st.get(`${who}/${key}`))) || null; } catch { return null; }
}
