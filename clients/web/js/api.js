// api.js: the one connection to kizunad (WebSocket /api/v1/ws, docs/protocol.md) that every
// page shares. It owns the session token and where it is kept, reconnects with backoff and
// re-`auth`s, resumes the event stream from the last position it delivered (`sync` with
// `since`, page by page, then live), and keeps an outbox of messages sent while offline, each
// with its `client_id`, so that they go out once and in order after a reconnect.
//
// Contract (shared with the notices and admin pages):
//   api.call(op, args, {timeout}) -> Promise<reply object without id/ok>; rejects with an Error
//       carrying .code and .message from the server's error object (and its other fields, e.g.
//       retry_after_s), or .code 'offline' when no connection came within the timeout.
//   api.on(type, fn) / api.off(type, fn): pushed events by their `event` name ('msg', 'read',
//       'notice.post', ...), '*' for every event, 'state' (fn('connecting'|'online'|'offline')),
//       'session' (fn(sessionInfo) after login/auth), 'end' (fn(reason) when the session ended),
//       'resumed' (after a reconnect caught up), 'outbox' (fn(items) when it changes).
//   api.login(login, password, {shared, device}) -> the login reply; api.logout().
//   api.send(room, body, extra) -> {client_id, done: Promise<reply>}: msg.send through the outbox.
//   api.session: {token, shared, user, session, time_zone, time_zone_posix, server_id} or null.
//   api.state: 'connecting' | 'online' | 'offline'.
//
// Storage: the token (and nothing else of the user's) is kept in localStorage, or in
// sessionStorage only for a shared PC (login with "shared": true), and wiped on logout and when
// the session ends. Message text is never written to any browser storage.

const KEY = 'kizuna.session';
const OFFLINE_OPEN_MS = 3000; // no answer from the server by then: open offline (start)

// Close reasons after which the token is dead (protocol.md, "WebSocket close codes").
const ENDING = new Set([
  'logged out', 'account disabled', 'account expired', 'password reset', 'password changed',
  'session revoked', 'session revoked by an admin', 'device revoked',
  'idle session on a shared device ended',
]);

const ANON_OPS = new Set(['login', 'auth', 'join']);

function apiError(code, message, extra) {
  const e = new Error(message || code);
  e.code = code;
  if (extra) for (const k of Object.keys(extra)) if (k !== 'message' && k !== 'code') e[k] = extra[k];
  return e;
}

function randomId() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

class Api {
  constructor() {
    this.state = 'offline';
    this.session = null;      // see the header comment
    this.pos = null;          // the last stream position delivered to the pages
    this.outbox = [];         // [{client_id, room, body, extra, resolve, reject, sending}]
    this._ws = null;
    this._nextId = 1;
    this._pending = new Map(); // id -> {resolve, reject, timer}
    this._handlers = new Map();
    this._waiters = [];       // resolved when the connection is usable
    this._retry = 0;
    this._retryTimer = 0;
    this._stopped = true;
    this._authed = false;
    this._ending = false;
    this._beat = 0;
    window.addEventListener('online', () => {
      if (this._ws && this._ws.readyState === WebSocket.CONNECTING) this._drop('network back');
      this._kick();
    });
    // The browser knows the network went away (Wi-Fi lost, airplane mode) before a socket
    // notices: drop the connection now, so sends queue visibly and resume when it is back.
    window.addEventListener('offline', () => this._drop('network offline'));
  }

  // ---- events ----
  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }
  off(type, fn) { this._handlers.get(type)?.delete(fn); }
  _emit(type, ...a) {
    for (const fn of [...(this._handlers.get(type) || [])]) {
      try { fn(...a); } catch (e) { console.error('kizuna handler', type, e); }
    }
  }
  _setState(s) {
    if (this.state === s) return;
    this.state = s;
    this._emit('state', s);
  }

  // ---- storage ----
  _store() { return this.session?.shared ? sessionStorage : localStorage; }
  _save() {
    const s = this.session;
    if (!s) return;
    // On a personal device the user too (login, name, role: no secret), so the installed app
    // opens offline with what it last showed (start); never on a shared PC.
    const keep = s.shared ? {} : { user: s.user, server_id: s.server_id, time_zone: s.time_zone, time_zone_posix: s.time_zone_posix };
    this._store().setItem(KEY, JSON.stringify({ token: s.token, shared: !!s.shared, ...keep }));
  }
  static stored() {
    for (const st of [sessionStorage, localStorage]) {
      try {
        const v = JSON.parse(st.getItem(KEY) || 'null');
        if (v && v.token) return v;
      } catch { /* ignore */ }
    }
    return null;
  }
  // Everything Kizuna keeps in this browser, gone (logout, an ended session, a shared PC).
  wipe() {
    for (const st of [sessionStorage, localStorage]) {
      for (let i = st.length - 1; i >= 0; i--) {
        const k = st.key(i);
        if (k && k.startsWith('kizuna.') && k !== 'kizuna.lang') st.removeItem(k);
      }
    }
    if (this.session?.shared) sessionStorage.clear();
    // What the pages last showed, kept for opening offline (js/snapshot.js).
    try { indexedDB.deleteDatabase('kizuna-snapshot'); } catch { /* none kept */ }
    // Cache Storage: only the service worker's app shell (sw.js), which holds no personal
    // data, may stay; any other cache goes.
    if (self.caches) caches.keys().then((ns) => ns.filter((n) => n !== 'kizuna-shell-v1')
      .forEach((n) => caches.delete(n))).catch(() => {});
  }

  // ---- connection ----
  // Start with a stored session if there is one; resolves to true when it was restored.
  async start() {
    this._stopped = false;
    const st = Api.stored();
    if (st) this.session = { token: st.token, shared: st.shared };
    this._connect();
    if (!st) return false;
    return new Promise((resolve) => {
      const offS = this.on('session', () => { offS(); offE(); resolve(true); });
      const offE = this.on('end', () => { offS(); offE(); resolve(false); });
      // Offline on a personal device: open at once as the user this browser remembers, with
      // what the pages last showed (js/snapshot.js); the session is checked as soon as the
      // server answers, and one that ended meanwhile ends the page then ('end').
      if (!st.user || st.shared) return;
      const early = () => {
        if (this._authed || !this.session || this.session.user) return;
        Object.assign(this.session, { user: st.user, server_id: st.server_id, time_zone: st.time_zone, time_zone_posix: st.time_zone_posix });
        offS(); offE();
        this._emit('session', this.session);
        resolve(true);
      };
      if (navigator.onLine === false) early();
      else setTimeout(early, OFFLINE_OPEN_MS);
    });
  }

  _url() {
    const u = new URL('/api/v1/ws', location.href);
    u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return u.href;
  }

  _connect() {
    if (this._stopped || this._ws) return;
    clearTimeout(this._retryTimer);
    this._setState('connecting');
    this._authed = false;
    let ws;
    try { ws = new WebSocket(this._url(), 'kizuna.v1'); } catch { this._scheduleRetry(); return; }
    this._ws = ws;
    ws.onopen = () => this._opened(ws);
    ws.onmessage = (m) => this._frame(ws, m.data);
    ws.onclose = (ev) => this._closed(ws, ev.code, ev.reason);
    ws.onerror = () => { /* onclose follows */ };
  }

  // Connect now (the network is back, or a page needs the connection), not at the next retry.
  _kick() {
    if (this._stopped) return;
    if (this._ws && this._ws.readyState === WebSocket.CONNECTING && this.state !== 'connecting') this._drop('retry now');
    if (!this._ws) { this._retry = 0; this._connect(); }
  }

  _drop(why) {
    const ws = this._ws;
    if (!ws) return;
    this._closed(ws, 4003, why);
    try { ws.close(4003, why); } catch { /* ignore */ }
  }

  _scheduleRetry() {
    if (this._stopped) return;
    const base = Math.min(15000, 500 * 2 ** Math.min(this._retry, 5));
    this._retry++;
    const ms = base / 2 + Math.random() * base / 2;
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => this._connect(), ms);
  }

  async _opened(ws) {
    if (ws !== this._ws) return;
    if (!this.session?.token) {
      this._ready();
      return;
    }
    try {
      const r = await this._raw(ws, 'auth', { token: this.session.token }, 15000);
      this._bind(r);
      if (!r.user.must_change_password) await this._catchUp(ws);
      this._retry = 0;
      this._ready();
      this._emit('resumed');
      this._flush();
    } catch (e) {
      if (ws !== this._ws) return;
      if (e.code === 'unauthorized') this._end(e.message || 'unauthorized');
      else this._drop('resume failed');
    }
  }

  _bind(r) {
    const s = this.session;
    s.user = r.user;
    s.session = r.session;
    s.time_zone = r.time_zone;
    s.time_zone_posix = r.time_zone_posix;
    if (r.server_id) s.server_id = r.server_id;
    this._authed = true;
    this._save();
    this._emit('session', s);
  }

  // Resume the stream: everything after this.pos (or from now on the first connection),
  // page by page, each event handed to the pages exactly once.
  async _catchUp(ws) {
    for (;;) {
      const args = { limit: 200 };
      if (this.pos != null) args.since = this.pos;
      const r = await this._raw(ws, 'sync', args, 30000);
      for (const ev of r.events || []) this._deliver(ev);
      if (r.next != null && (this.pos == null || r.next > this.pos)) this.pos = r.next;
      if (r.live || !r.more) break;
    }
  }

  _deliver(ev) {
    if (ev.pos != null) {
      // The server never pushes at or below what sync covered; this is a safety net.
      if (this.pos != null && ev.pos <= this.pos) return;
      this.pos = ev.pos;
    }
    this._emit(ev.event, ev);
    this._emit('*', ev);
  }

  _ready() {
    this._setState('online');
    this._startBeat();
    const w = this._waiters;
    this._waiters = [];
    for (const fn of w) fn();
  }

  // A connection can die without a close (a laptop lid, a dropped Wi-Fi): ask something small
  // every 25 s and reconnect when no answer comes. Not on a shared PC, whose idle end must not
  // be held off by the page itself.
  _startBeat() {
    clearInterval(this._beat);
    if (!this._authed || this.session?.shared) return;
    const ws = this._ws;
    this._beat = setInterval(() => {
      if (ws !== this._ws) { clearInterval(this._beat); return; }
      this._raw(ws, 'whoami', {}, 10000).catch((e) => {
        if (e.code === 'timeout' && ws === this._ws) this._drop('no answer');
      });
    }, 25000);
  }

  _frame(ws, data) {
    if (ws !== this._ws) return;
    let m;
    try { m = JSON.parse(data); } catch { return; }
    if (m.event) {
      this._deliver(m);
      return;
    }
    const p = this._pending.get(m.id);
    if (!p) return;
    this._pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.ok) {
      delete m.id; delete m.ok;
      p.resolve(m);
    } else {
      const err = m.error || {};
      p.reject(apiError(err.code || 'internal', err.message, err));
    }
  }

  _closed(ws, code, reason) {
    if (ws !== this._ws) return;
    this._ws = null;
    this._authed = false;
    clearInterval(this._beat);
    for (const [, p] of this._pending) {
      clearTimeout(p.timer);
      p.reject(apiError('offline', 'connection lost'));
    }
    this._pending.clear();
    for (const o of this.outbox) o.sending = false;
    if (code === 1008 && ENDING.has(reason)) {
      this._end(reason);
      return;
    }
    this._setState('offline');
    this._scheduleRetry();
  }

  _end(reason) {
    if (this._ending) return;
    this._ending = true;
    const ws = this._ws;
    this._ws = null;
    if (ws) try { ws.close(1000); } catch { /* ignore */ }
    this.wipe();
    this.session = null;
    this.pos = null;
    for (const o of this.outbox) o.reject(apiError('unauthorized', reason));
    this.outbox = [];
    this._emit('outbox', this.outbox);
    this._ending = false;
    this._emit('end', reason);
    // An anonymous connection for the next login.
    this._retry = 0;
    this._setState('offline');
    this._connect();
  }

  _raw(ws, op, args, timeout) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject(apiError('offline', 'not connected'));
        return;
      }
      const id = this._nextId++;
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(apiError('timeout', `no answer to ${op}`));
      }, timeout || 30000);
      this._pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...args, id, op }));
    });
  }

  _usable(op) {
    if (!this._ws || this._ws.readyState !== WebSocket.OPEN || this.state !== 'online') return false;
    return this._authed || ANON_OPS.has(op) || !this.session?.token;
  }

  _waitUsable(op, timeout) {
    if (this._usable(op)) return Promise.resolve();
    this._kick();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this._waiters = this._waiters.filter((f) => f !== go);
        reject(apiError('offline', 'サーバーに接続できません'));
      }, timeout);
      const go = () => { clearTimeout(t); resolve(); };
      this._waiters.push(go);
    });
  }

  async call(op, args = {}, opts = {}) {
    const timeout = opts.timeout || 20000;
    await this._waitUsable(op, timeout);
    return this._raw(this._ws, op, args, timeout);
  }

  // ---- login / logout ----
  async login(login, password, opts = {}) {
    this._stopped = false;
    this._connect();
    // A fresh login starts a fresh anonymous connection state.
    const args = { login, password, device: opts.device || deviceLabel() };
    if (opts.shared) args.shared = true;
    await this._waitUsable('login', 20000);
    const ws = this._ws;
    const r = await this._raw(ws, 'login', args, 30000);
    this.wipe();
    this.session = { token: r.token, shared: !!opts.shared };
    this.pos = null;
    this._bind(r);
    // Until a one-time password is changed only passwd works: the stream starts after it.
    if (!r.user.must_change_password) await this._catchUp(ws);
    this._ready();
    return r;
  }

  // After passwd: the user as the server has it now, and the stream if it had not started.
  async refreshUser() {
    const r = await this.call('whoami');
    this.session.user = r.user;
    if (!r.user.must_change_password && this.pos == null) await this._catchUp(this._ws);
    this._emit('session', this.session);
    return r.user;
  }

  async logout() {
    const wasShared = this.session?.shared;
    try { if (this._authed) await this._raw(this._ws, 'logout', {}, 5000); } catch { /* ignore */ }
    const ws = this._ws;
    this._ws = null;
    if (ws) try { ws.close(1000); } catch { /* ignore */ }
    this.wipe();
    if (wasShared) sessionStorage.clear();
    this.session = null;
    this.pos = null;
    this.outbox = [];
    this._emit('outbox', this.outbox);
    this._setState('offline');
    this._connect();
  }

  // ---- outbox ----
  send(room, body, extra = {}) {
    const item = { client_id: randomId(), room, body, extra, sending: false };
    item.done = new Promise((resolve, reject) => { item.resolve = resolve; item.reject = reject; });
    this.outbox.push(item);
    this._emit('outbox', this.outbox);
    this._flush();
    return item;
  }

  // Sends the outbox in order, one at a time; an item leaves it only when the server answered
  // (a lost answer is sent again with the same client_id, which the server recognises).
  async _flush() {
    if (this._flushing) return;
    this._flushing = true;
    try {
      while (this.outbox.length && this._usable('msg.send')) {
        const o = this.outbox[0];
        o.sending = true;
        let r;
        try {
          r = await this._raw(this._ws, 'msg.send',
            { room: o.room, body: o.body, client_id: o.client_id, ...o.extra }, 15000);
        } catch (e) {
          o.sending = false;
          if (e.code === 'offline' || e.code === 'timeout' || e.code === 'unavailable' ||
              e.code === 'rate_limited' || e.code === 'internal') {
            if (e.code === 'timeout') this._drop('send timeout');
            else if (e.code !== 'offline') await new Promise((res) => setTimeout(res, 1000 * (e.retry_after_s || 1)));
            continue;
          }
          this.outbox.shift();
          this._emit('outbox', this.outbox);
          o.reject(e);
          continue;
        }
        this.outbox.shift();
        this._emit('outbox', this.outbox);
        o.resolve(r);
      }
    } finally {
      this._flushing = false;
    }
  }
}

export function deviceLabel() {
  const ua = navigator.userAgent;
  const b = /Firefox\//.test(ua) ? 'Firefox' : /Edg\//.test(ua) ? 'Edge' : /Chrom/.test(ua) ? 'Chrome'
    : /Safari\//.test(ua) ? 'Safari' : 'ブラウザ';
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Windows/.test(ua) ? 'Windows'
    : /Mac OS/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : '';
  return `Web ${b}${os ? ' (' + os + ')' : ''}`;
}

export const api = new Api();
