#!/usr/bin/env node
// rooms.js - an independent check of kzbench's `rooms` scenario (tests/bench/kzbench.c).
//
// Written apart from kzbench, on other libraries (Node's event loop, `ws`, `mqtt`), against an
// already-running server: it starts nothing. R rooms of K members, each member on its own
// connection, every member sending on a fixed schedule (one message per 1/rate s from a random
// phase) whether or not its earlier messages were answered (open loop). Each message carries its
// *scheduled* send time; latency runs from that time to its receipt at each other member, so a
// late generator counts against the result (no coordinated omission). It prints one JSON line
// per rate with kzbench's field names (see README.md).
//
//   node rooms.js --kizuna ws://127.0.0.1:PORT --admin-password PW [options]
//   node rooms.js --mqtt mqtt://127.0.0.1:PORT [options]
//   options: --rooms 100 --per-room 10 --rates 0.2,1,5 --duration 5 --drain 10
//            --server-pid PID (CPU seconds and peak RSS from /proc) --clk-tck 100
//
// Every wait has a deadline, and a watchdog ends the process if the whole run overruns.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const { performance, monitorEventLoopDelay } = require('node:perf_hooks');
const WebSocket = require('ws');
const mqtt = require('mqtt');

const PASSWORD = 'bench-password-1';

function usage(msg) {
    if (msg) process.stderr.write(`rooms.js: ${msg}\n`);
    process.stderr.write(
        'usage: node rooms.js (--kizuna ws://HOST:PORT --admin-password PW | --mqtt mqtt://HOST:PORT)\n' +
            '         [--rooms R] [--per-room K] [--rates A,B,..] [--duration S] [--drain S]\n' +
            '         [--server-pid PID] [--clk-tck N]\n');
    process.exit(2);
}

function parseArgs(argv) {
    const o = {
        kizuna: null, mqtt: null, adminPassword: process.env.KIZUNA_ADMIN_PASSWORD || null,
        rooms: 100, perRoom: 10, rates: [1], duration: 5, drain: 10, serverPid: 0, clkTck: 100,
    };
    const num = (name, v, lo, hi) => {
        const x = Number(v);
        if (!Number.isFinite(x) || x < lo || x > hi) usage(`${name} must be a number in [${lo}, ${hi}]`);
        return x;
    };
    for (let i = 2; i < argv.length; i += 2) {
        const a = argv[i], v = argv[i + 1];
        if (v === undefined) usage(`${a} needs a value`);
        switch (a) {
        case '--kizuna': o.kizuna = v; break;
        case '--mqtt': o.mqtt = v; break;
        case '--admin-password': o.adminPassword = v; break;
        case '--rooms': o.rooms = num(a, v, 1, 10000); break;
        case '--per-room': o.perRoom = num(a, v, 2, 10000); break;
        case '--rate': o.rates = [num(a, v, 0.001, 1000)]; break;
        case '--rates': o.rates = v.split(',').map((x) => num(a, x, 0.001, 1000)); break;
        case '--duration': o.duration = num(a, v, 0.1, 3600); break;
        case '--drain': o.drain = num(a, v, 0, 3600); break;
        case '--server-pid': o.serverPid = num(a, v, 1, 1 << 30); break;
        case '--clk-tck': o.clkTck = num(a, v, 1, 100000); break;
        default: usage(`unknown option ${a}`);
        }
    }
    if (!o.kizuna === !o.mqtt) usage('give exactly one of --kizuna and --mqtt');
    if (o.kizuna && !o.adminPassword) usage('--kizuna needs --admin-password (or KIZUNA_ADMIN_PASSWORD)');
    if (!Number.isInteger(o.rooms) || !Number.isInteger(o.perRoom)) usage('rooms and per-room are whole numbers');
    return o;
}

const opt = parseArgs(process.argv);
const total = opt.rooms * opt.perRoom;

// The whole run is bounded: setup (generous, for a busy machine) plus every rate's schedule
// and drain. Past it the process ends with an error and the wrapper cleans up.
const watchdogS = 600 + opt.rates.length * (opt.duration + opt.drain + 10);
setTimeout(() => {
    process.stderr.write(`rooms.js: watchdog: the run overran ${watchdogS} s\n`);
    process.exit(1);
}, watchdogS * 1000).unref();

const nowMs = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves when cond() holds, polling every 5 ms; false at the deadline.
async function waitFor(cond, seconds) {
    const deadline = nowMs() + seconds * 1000;
    while (!cond()) {
        if (nowMs() >= deadline) return false;
        await sleep(5);
    }
    return true;
}

// A seeded generator (mulberry32) for the send phases, so runs are repeatable.
let seed = 42;
function random() {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

// ---- the server's CPU and memory, read the way kzbench reads them ----

function serverStats() {
    if (!opt.serverPid) return { cpu: null, hwm: null };
    let cpu = null, hwm = null;
    try {
        const stat = fs.readFileSync(`/proc/${opt.serverPid}/stat`, 'utf8');
        // utime and stime are fields 14 and 15; the command name may hold spaces, so count
        // from the ")" that ends it (field 3 is the first after it).
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        cpu = (Number(f[11]) + Number(f[12])) / opt.clkTck;
        const m = /VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${opt.serverPid}/status`, 'utf8'));
        if (m) hwm = Number(m[1]);
    } catch (e) {
        process.stderr.write(`rooms.js: cannot read /proc/${opt.serverPid}: ${e.message}\n`);
    }
    return { cpu, hwm };
}

// ---- the run's counters ----

const st = {
    run: 0, sent: 0, acked: 0, delivered: 0, echoes: 0, stale: 0, errors: 0,
    lat: [], lag: [], lastDelivery: 0, lastAck: 0,
};

// A message arrived at member `me`: its body is "<seq> <scheduled_ns> <sender> <run>".
function receipt(me, body) {
    const at = nowMs();
    const f = String(body).split(' ');
    if (f.length !== 4) { st.errors++; return; }
    const sched = Number(f[1]) / 1e6, from = Number(f[2]), run = Number(f[3]);
    if (run !== st.run) st.stale++;
    else if (from === me) st.echoes++;
    else {
        st.lat.push(at - sched);
        st.delivered++;
        st.lastDelivery = at;
    }
}

function onAck(ok) {
    st.acked++;
    st.lastAck = nowMs();
    if (!ok) st.errors++;
}

// ---- Kizuna over WebSocket (docs/protocol.md) ----

function wsUrl() {
    const u = opt.kizuna.replace(/\/+$/, '');
    return /\/api\/v1\/ws$/.test(u) ? u : `${u}/api/v1/ws`;
}

// One connection: request() resolves with the reply of the same id; pushes go to onEvent.
class KzConn {
    constructor(idx, onEvent) {
        this.idx = idx;
        this.nextId = 0;
        this.pending = new Map();
        this.onEvent = onEvent;
        this.onReply = null; // when set, replies without a pending request (the sends)
        this.ws = new WebSocket(wsUrl(), 'kizuna.v1', { perMessageDeflate: false, handshakeTimeout: 30000 });
        this.opened = new Promise((resolve, reject) => {
            this.ws.once('open', resolve);
            this.ws.once('error', reject);
        });
        this.ws.on('error', () => { st.errors++; });
        this.ws.on('close', () => { this.closed = true; });
        this.ws.on('message', (data) => this.message(data));
    }

    message(data) {
        let o;
        try { o = JSON.parse(data.toString('utf8')); } catch { st.errors++; return; }
        if (o.event !== undefined) {
            if (this.onEvent) this.onEvent(this, o);
            return;
        }
        const p = this.pending.get(o.id);
        if (p) {
            this.pending.delete(o.id);
            p(o);
        } else if (this.onReply) {
            this.onReply(o);
        }
    }

    request(fields) {
        const id = ++this.nextId;
        return new Promise((resolve) => {
            this.pending.set(id, resolve);
            this.ws.send(JSON.stringify({ id, ...fields }));
        });
    }

    // A request whose reply is not awaited (a scheduled send): the reply is an ack.
    post(fields) {
        this.ws.send(JSON.stringify({ id: ++this.nextId, ...fields }));
    }
}

function must(reply, what) {
    if (!reply || reply.ok !== true) {
        process.stderr.write(`rooms.js: ${what} refused: ${JSON.stringify(reply)}\n`);
        process.exit(1);
    }
    return reply;
}

async function withDeadline(promise, seconds, what) {
    let timer;
    const t = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer in ${seconds} s`)), seconds * 1000);
    });
    try { return await Promise.race([promise, t]); } finally { clearTimeout(timer); }
}

async function kizunaSetup() {
    const admin = new KzConn(-1, null);
    await withDeadline(admin.opened, 30, 'admin connect');
    must(await withDeadline(admin.request({ op: 'login', login: 'admin', password: opt.adminPassword }), 30, 'admin login'), 'admin login');
    // Users n0..n(total-1), a hundred requests in flight at a time.
    for (let i = 0; i < total; i += 100) {
        const batch = [];
        for (let k = i; k < Math.min(total, i + 100); k++)
            batch.push(admin.request({ op: 'user.add', login: `n${k}`, password: PASSWORD }));
        for (const r of await withDeadline(Promise.all(batch), 120, 'user.add')) must(r, 'user.add');
    }
    const roomIds = [];
    for (let r = 0; r < opt.rooms; r++) {
        const members = [];
        for (let k = 0; k < opt.perRoom; k++) members.push(`n${r * opt.perRoom + k}`);
        const rep = must(await withDeadline(admin.request({ op: 'room.create', name: `indep ${r}`, confirm: true, members }), 60, 'room.create'), 'room.create');
        roomIds.push(rep.room.room);
    }
    const conns = [];
    for (let i = 0; i < total; i++) {
        const c = new KzConn(i, (me, ev) => {
            if (ev.event === 'msg') {
                if (ev.content && typeof ev.content.body === 'string') receipt(me.idx, ev.content.body);
                else st.errors++;
            }
        });
        c.onReply = (o) => onAck(o.ok === true);
        conns.push(c);
    }
    // Log in and go live, a hundred at a time; a member is live once sync says so.
    for (let i = 0; i < total; i += 100) {
        await withDeadline(Promise.all(conns.slice(i, i + 100).map(async (c) => {
            await c.opened;
            must(await c.request({ op: 'login', login: `n${c.idx}`, password: PASSWORD }), 'login');
            let rep = must(await c.request({ op: 'sync' }), 'sync');
            while (!rep.live) rep = must(await c.request({ op: 'sync', since: rep.next }), 'sync');
        })), 120, 'members going live');
    }
    return {
        conns,
        send: (c, body) => c.post({ op: 'msg.send', room: roomIds[Math.floor(c.idx / opt.perRoom)], body }),
        close: () => { for (const c of [admin, ...conns]) c.ws.terminate(); },
    };
}

// ---- mosquitto over MQTT 3.1.1, QoS 1, one topic per room ----

async function mqttSetup() {
    const conns = [];
    for (let i = 0; i < total; i += 100) {
        const batch = [];
        for (let k = i; k < Math.min(total, i + 100); k++) {
            const client = mqtt.connect(opt.mqtt, {
                protocolVersion: 4, clean: true, clientId: `n${k}`, keepalive: 60,
                reconnectPeriod: 0, connectTimeout: 30000,
            });
            const c = { idx: k, client, topic: `room/${Math.floor(k / opt.perRoom)}` };
            client.on('error', () => { st.errors++; });
            client.on('close', () => { c.closed = true; });
            client.on('message', (topic, payload) => receipt(k, payload.toString('utf8')));
            conns.push(c);
            batch.push(new Promise((resolve, reject) => {
                client.once('connect', () => {
                    client.subscribe(c.topic, { qos: 1 }, (err, granted) => {
                        if (err || !granted || granted[0].qos !== 1) reject(err || new Error('subscribe refused'));
                        else resolve();
                    });
                });
                client.once('error', reject);
            }));
        }
        await withDeadline(Promise.all(batch), 120, 'subscribers');
    }
    return {
        conns,
        send: (c, body) => c.client.publish(c.topic, body, { qos: 1 }, (err) => onAck(!err)),
        close: () => { for (const c of conns) c.client.end(true); },
    };
}

// ---- one rate ----

function pct(sorted, p) {
    return sorted.length ? sorted[Math.floor(p * (sorted.length - 1))] : 0;
}

const r3 = (x) => (x === null ? null : Math.round(x * 1000) / 1000);

async function runRate(srv, rate) {
    st.run++;
    Object.assign(st, { sent: 0, acked: 0, delivered: 0, echoes: 0, stale: 0, lat: [], lag: [] });
    const loop = monitorEventLoopDelay({ resolution: 1 });
    const period = 1000 / rate;
    const s0 = serverStats();
    const t0 = nowMs();
    const end = t0 + opt.duration * 1000;
    st.lastDelivery = st.lastAck = t0;
    loop.enable();
    // Each member has its own timer, set for its next scheduled send; when it fires (late or
    // not) it sends everything that is due, each message stamped with its own scheduled time.
    for (const c of srv.conns) {
        let next = t0 + period * random();
        let seq = 0;
        const fire = () => {
            const now = nowMs();
            while (next <= now && next < end) {
                const at = next;
                next += period;
                st.sent++;
                st.lag.push(now - at);
                if (c.closed) { st.errors++; continue; }
                srv.send(c, `${seq++} ${Math.round(at * 1e6)} ${c.idx} ${st.run}`);
            }
            if (next < end) setTimeout(fire, Math.max(0, next - nowMs()));
        };
        setTimeout(fire, Math.max(0, next - nowMs()));
    }
    await sleep(opt.duration * 1000);
    // Wait for everything sent (the timers may still be sending what fell due before the end).
    await waitFor(() => nowMs() >= end + 5 && st.delivered >= st.sent * (opt.perRoom - 1) && st.acked >= st.sent,
        opt.drain);
    const tEnd = nowMs();
    loop.disable();
    const s1 = serverStats();
    const lat = Float64Array.from(st.lat).sort();
    const lag = Float64Array.from(st.lag).sort();
    const expected = st.sent * (opt.perRoom - 1);
    const dsecs = (st.lastDelivery - t0) / 1000, asecs = (st.lastAck - t0) / 1000;
    const cpu = s0.cpu !== null && s1.cpu !== null ? s1.cpu - s0.cpu : null;
    const line = {
        scenario: 'rooms',
        server: opt.kizuna ? 'kizunad' : 'mosquitto',
        client: 'node-indep',
        params: { rooms: opt.rooms, per_room: opt.perRoom, rate_per_member: rate, duration_s: opt.duration },
        sent: st.sent,
        acked: st.acked,
        delivered: st.delivered,
        expected,
        delivered_fraction: expected ? Math.round((st.delivered / expected) * 1e5) / 1e5 : 0,
        echoes: st.echoes,
        stale: st.stale,
        seconds: r3((tEnd - t0) / 1000),
        offered_per_s: Math.round(expected / opt.duration),
        delivered_per_s: dsecs > 0 ? Math.round(st.delivered / dsecs) : 0,
        sent_per_s: Math.round(st.sent / opt.duration),
        acked_per_s: asecs > 0 ? Math.round(st.acked / asecs) : 0,
        latency_ms: { p50: r3(pct(lat, 0.5)), p95: r3(pct(lat, 0.95)), p99: r3(pct(lat, 0.99)), max: r3(lat.length ? lat[lat.length - 1] : 0) },
        send_lag_ms: { p50: r3(pct(lag, 0.5)), p99: r3(pct(lag, 0.99)), max: r3(lag.length ? lag[lag.length - 1] : 0) },
        loop_delay_ms: { p99: r3(loop.percentile(99) / 1e6), max: r3(loop.max / 1e6) },
        errors: st.errors,
        server_cpu_s: r3(cpu),
        server_cpu_us_per_msg: cpu !== null && st.delivered ? Math.round((cpu * 1e6 / st.delivered) * 100) / 100 : null,
        server_peak_rss_kib: s1.hwm,
        loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function main() {
    const srv = opt.kizuna ? await kizunaSetup() : await mqttSetup();
    for (const rate of opt.rates) await runRate(srv, rate);
    srv.close();
    process.exit(st.errors ? 1 : 0);
}

main().catch((e) => {
    process.stderr.write(`rooms.js: ${e.stack || e}\n`);
    process.exit(1);
});
