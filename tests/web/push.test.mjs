// push.test.mjs - Web Push in the web client (issue 24, item 4): js/push.js subscribes with
// the server's VAPID key and hands the subscription to kizunad; kizunad posts an urgent
// roll-call to the subscription's endpoint, which this test serves (the push service's
// stand-in), encrypted for the subscription and signed with its VAPID key; the test decrypts it
// and delivers it to the real service worker the way Chromium's push service would
// (CDP ServiceWorker.deliverPushMessage), and sw.js shows the notification.
//
// The one part played rather than run: headless Chromium's PushManager.subscribe talks to
// Google's push service (FCM), unreachable here and not ours to test, so the page's
// PushManager is replaced by one that returns a subscription to the stand-in with keys this
// test holds (what a real browser would hold inside). Everything on both sides of it is real:
// push.js, the ops, kizunad's encryption and signature, and the service worker's handler.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { startServer, launchBrowser, newPage, closeContext, screenshot } from './lib/harness.mjs';
import { addStaff, loginAs } from './lib/staff.mjs';

const SUBJECT = 'mailto:bousai@example.lg.jp';
let srv, browser, standin;
const posts = [];

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const hkdf = (salt, ikm, info, len) => Buffer.from(crypto.hkdfSync('sha256', ikm, salt, info, len));

// RFC 8291, the receiving side.
function decrypt(body, ecdh, auth) {
    const salt = body.subarray(0, 16);
    const idlen = body[20];
    const asPublic = body.subarray(21, 21 + idlen);
    const ct = body.subarray(21 + idlen);
    const secret = ecdh.computeSecret(asPublic);
    const ikm = hkdf(auth, secret, Buffer.concat([Buffer.from('WebPush: info\0'), ecdh.getPublicKey(), asPublic]), 32);
    const cek = hkdf(salt, ikm, Buffer.from('Content-Encoding: aes128gcm\0'), 16);
    const nonce = hkdf(salt, ikm, Buffer.from('Content-Encoding: nonce\0'), 12);
    const d = crypto.createDecipheriv('aes-128-gcm', cek, nonce);
    d.setAuthTag(ct.subarray(ct.length - 16));
    const plain = Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]);
    let end = plain.length;
    while (end > 0 && plain[end - 1] === 0) end--;
    assert.equal(plain[end - 1], 2, 'the last record ends with delimiter 2');
    return plain.subarray(0, end - 1).toString('utf8');
}

// RFC 8292: the token verifies with k, which is the server's key, for this audience.
function checkVapid(authorization, key, aud) {
    const m = /^vapid t=([^,]+), k=(.+)$/.exec(authorization);
    assert.ok(m, `not a VAPID authorization: ${authorization}`);
    assert.equal(m[2], key, 'k is not the server key');
    const [h, c, s] = m[1].split('.');
    const claims = JSON.parse(Buffer.from(c, 'base64url'));
    assert.equal(claims.aud, aud);
    assert.equal(claims.sub, SUBJECT);
    const now = Date.now() / 1000;
    assert.ok(claims.exp > now && claims.exp <= now + 24 * 3600, `exp ${claims.exp}`);
    const raw = Buffer.from(key, 'base64url');
    const pub = crypto.createPublicKey({ format: 'jwk', key: { kty: 'EC', crv: 'P-256',
        x: b64u(raw.subarray(1, 33)), y: b64u(raw.subarray(33, 65)) } });
    assert.ok(crypto.verify('sha256', Buffer.from(`${h}.${c}`), { key: pub, dsaEncoding: 'ieee-p1363' },
        Buffer.from(s, 'base64url')), 'the VAPID signature does not verify');
}

async function until(fn, what, ms = 15000) {
    const deadline = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
    }
}

before(async () => {
    standin = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            posts.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks) });
            res.writeHead(201).end();
        });
    });
    await new Promise((r) => standin.listen(0, '127.0.0.1', r));
    srv = await startServer({ config: { push_subject: SUBJECT, push_allow_private_endpoints: true, push_coalesce_ms: 0 } });
    browser = await launchBrowser({ mobile: true });
    await addStaff(srv, [{ login: 'tanaka', name: '田中 花子' }]);
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
    standin?.close();
});

test('an urgent roll-call reaches the closed client through the push stand-in and its service worker shows it', async () => {
    const ecdh = crypto.createECDH('prime256v1');
    ecdh.generateKeys();
    const auth = crypto.randomBytes(16);
    const endpoint = `http://127.0.0.1:${standin.address().port}/push/tanaka`;
    await browser.defaultBrowserContext().overridePermissions(srv.url, ['notifications']);

    const page = await newPage(browser, { mobile: true });
    await page.evaluateOnNewDocument((endpoint, p256dh, auth) => {
        let current = null;
        PushManager.prototype.subscribe = async function (opts) {
            const k = new Uint8Array(opts.applicationServerKey);
            window.__pushKey = btoa(String.fromCharCode(...k)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
            current = {
                endpoint,
                options: { userVisibleOnly: opts.userVisibleOnly, applicationServerKey: k.buffer },
                toJSON: () => ({ endpoint, expirationTime: null, keys: { p256dh, auth } }),
                unsubscribe: async () => { current = null; return true; },
            };
            return current;
        };
        PushManager.prototype.getSubscription = async function () { return current; };
    }, endpoint, b64u(ecdh.getPublicKey()), b64u(auth));
    await loginAs(page, srv, 'tanaka');
    await page.evaluate(() => navigator.serviceWorker.ready);
    // The notices page offers it; one click subscribes (the permission is granted above).
    await page.goto(srv.url + '/#/notices');
    await page.waitForSelector('#push-box[data-push="off"] #push-toggle');
    await screenshot(page, 'push-offer-phone');
    await page.click('#push-toggle');
    await page.waitForSelector('#push-box[data-push="on"]');
    const state = await page.evaluate(async () => (await import('/js/push.js')).pushState());
    assert.equal(state, 'on');
    const serverKey = await page.evaluate(async () => (await import('/js/api.js')).api.call('push.vapid_key').then((r) => r.key));
    assert.equal(await page.evaluate(() => window.__pushKey), serverKey, 'subscribed with another key than the server\'s');
    await page.close(); // Kizuna is closed: only the push reaches tanaka

    await srv.kizuna(['login', 'admin']);
    await srv.kizuna(['notice', 'post', '--title', '安否確認（震度6弱）', '--body', 'KZSECRET 本文は送られない', '--to', 'user:tanaka',
        '--urgent', '--choices', '無事・出勤可|無事・出勤不可']);
    const post = await until(() => posts.find((p) => p.path === '/push/tanaka'), 'the push');
    assert.equal(post.headers['content-encoding'], 'aes128gcm');
    assert.equal(post.headers.urgency, 'high');
    checkVapid(post.headers.authorization, serverKey, `http://127.0.0.1:${standin.address().port}`);
    const plain = decrypt(post.body, ecdh, auth);
    const payload = JSON.parse(plain);
    assert.equal(payload.kind, 'rollcall');
    assert.equal(payload.title, '安否確認（震度6弱）');
    assert.ok(!plain.includes('KZSECRET'), 'the body left the server');

    // Chromium's push service would now hand the decrypted message to the service worker.
    const probe = await newPage(browser, { mobile: true });
    await probe.goto('about:blank');
    const cdp = await probe.createCDPSession();
    let regs = [];
    cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => { regs = regs.concat(e.registrations); });
    await cdp.send('ServiceWorker.enable');
    const reg = await until(() => regs.find((r) => r.scopeURL === srv.url + '/' && !r.isDeleted), 'the service worker registration');
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: srv.url, registrationId: reg.registrationId, data: plain });
    await probe.goto(srv.url + '/#/login');
    const shown = await until(() => probe.evaluate(async () => {
        const r = await navigator.serviceWorker.ready;
        return (await r.getNotifications()).map((n) => ({ title: n.title, body: n.body, url: n.data && n.data.url, tag: n.tag }));
    }).then((ns) => (ns.length ? ns : null)), 'the notification');
    assert.equal(shown.length, 1);
    assert.equal(shown[0].title, '安否確認（震度6弱）');
    assert.match(shown[0].body, /回答してください/);
    assert.equal(shown[0].url, '/#/notices/' + payload.notice);
    // Its buttons are the roll-call's first choices, from tanaka's own one-tap answer token.
    assert.match(payload.answer, /^[A-Za-z0-9_-]{43}$/);
    const actions = await probe.evaluate(async () => {
        const [n] = await (await navigator.serviceWorker.ready).getNotifications();
        return n.actions.map((a) => a.title);
    });
    assert.deepEqual(actions, ['無事・出勤可', '無事・出勤不可'].slice(0, actions.length));
    assert.ok(actions.length >= 1, 'no answer buttons on the notification');

    // tanaka taps 無事・出勤可 on the notification. Chromium has no way to click a notification
    // from a test, so the worker's own click handler is called with that button's action: the
    // same function the notificationclick event runs.
    const swTarget = await browser.waitForTarget((tg) => tg.type() === 'service_worker' && tg.url() === srv.url + '/sw.js');
    const worker = await swTarget.worker();
    await worker.evaluate(async () => {
        const [n] = await self.registration.getNotifications();
        await onNotificationClick(n, 'answer-1');
    });
    const confirmShown = await until(() => probe.evaluate(async () => {
        const ns = await (await navigator.serviceWorker.ready).getNotifications();
        return ns.length ? ns[0].body : null;
    }), 'the confirmation');
    assert.match(confirmShown, /回答しました：無事・出勤可/);
    const rep = JSON.parse((await srv.kizuna(['--json', 'notice', 'report', String(payload.notice)])).stdout);
    const me = rep.reach.people.find((x) => x.login === 'tanaka');
    assert.equal(me.answered_by, 'push');
    assert.equal(rep.totals.responses[0].count, 1);
    // A second tap (the same notification shown on another of tanaka's browsers) is refused by
    // the server and says so; the answer stays.
    await worker.evaluate(async (answer, tag) => {
        await onNotificationClick({ title: '安否確認', tag, close() {},
            data: { answer, choices: ['無事・出勤可', '無事・出勤不可'], url: '/#/' } }, 'answer-2');
    }, payload.answer, 'notice-' + payload.notice);
    const refused = await until(() => probe.evaluate(async () => {
        const ns = await (await navigator.serviceWorker.ready).getNotifications();
        return ns.find((n) => /回答済み/.test(n.body))?.body || null;
    }), 'the refusal');
    assert.match(refused, /回答済みです/);
    const rep2 = JSON.parse((await srv.kizuna(['--json', 'notice', 'report', String(payload.notice)])).stdout);
    assert.equal(rep2.totals.responses[0].count, 1);
    assert.equal(rep2.totals.responses[1].count, 0);
    await probe.close();

    // HQ's report page says how tanaka was reached and how she answered.
    const hqCtx = await browser.createBrowserContext();
    const hq = await newPage(hqCtx, { mobile: true });
    await loginAs(hq, srv, 'admin');
    await hq.goto(srv.url + '/#/notices/' + payload.notice + '/report');
    await hq.waitForSelector('#rp-reach-people');
    const row = await hq.$eval('#rp-reach-people tbody', (tb) => [...tb.rows].map((r) => r.innerText.replace(/\s+/g, ' ')).join('\n'));
    assert.match(row, /田中 花子/);
    assert.match(row, /通知のボタン/);
    const pushStat = await hq.$eval('#rp-reach', (el) => el.innerText);
    assert.match(pushStat, /プッシュ通知\s*1/);
    await screenshot(hq, 'report-reach-phone');
    await closeContext(hqCtx);
});
