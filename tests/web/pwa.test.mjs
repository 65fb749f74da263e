// pwa.test.mjs - the client installable on a phone (issue 21, item 5): the manifest and the
// service worker are served with their types and registered with the whole client as scope;
// after a first visit the shell opens with the network gone (CDP offline), from the worker's
// cache; that cache holds only the app shell (never /api/*, nothing personal, on a shared PC
// either), and logging out deletes any other cache; offline, the room and the room list show
// what the browser last saw, marked as of when, until the server answers (js/snapshot.js; never
// on a shared PC, deleted at logout); a photo taken in the app opened offline is staged and sent
// when the network is back; a file changed on disk is what the next online load gets.
// Screenshot: the room opened offline on a phone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { startServer, launchBrowser, newPage, closeContext, waitForText, screenshot, httpRaw, userPassword } from './lib/harness.mjs';
import { addStaff, loginAs, clickFresh } from './lib/staff.mjs';

let srv, browser, tmp;
const MKJPEG = process.env.KZ_MKJPEG_PATH || path.join(path.dirname(process.env.KIZUNAD_PATH || ''), 'tests', 'kz-mkjpeg');
const run = (file, args) => new Promise((resolve, reject) =>
    execFile(file, args, (err, out, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(out))));

before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kz-pwa-'));
    srv = await startServer();
    browser = await launchBrowser({ mobile: true });
    await addStaff(srv, [{ login: 'tanaka', name: '田中 花子' }, { login: 'kyoyo', name: '共用 端末' }]);
    await srv.kizuna(['room', 'create', '道路状況', '--members', 'tanaka,kyoyo']);
    await srv.kizuna(['send', '道路状況', '私的な本文カナリア']);
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
    if (tmp)
        fs.rmSync(tmp, { recursive: true, force: true });
});

// What the worker's caches hold: {cacheName: [paths]}.
const cacheContents = (page) => page.evaluate(async () => {
    const out = {};
    for (const n of await caches.keys()) {
        const c = await caches.open(n);
        out[n] = (await c.keys()).map((r) => new URL(r.url).pathname + new URL(r.url).search);
    }
    return out;
});

async function controlled(page) {
    await page.evaluate(() => navigator.serviceWorker.ready);
    await page.reload({ waitUntil: 'load' });
    await page.waitForFunction(() => !!navigator.serviceWorker.controller);
}

test('the manifest and sw.js are served with their types; the worker registers with scope /', async () => {
    const m = await httpRaw(srv.url + '/manifest.webmanifest');
    assert.equal(m.status, 200);
    assert.equal(m.headers['content-type'], 'application/manifest+json');
    const man = JSON.parse(m.body.toString());
    assert.equal(man.name, '絆 Kizuna');
    for (const i of man.icons) assert.equal((await httpRaw(srv.url + i.src)).status, 200, i.src);
    const sw = await httpRaw(srv.url + '/sw.js');
    assert.equal(sw.status, 200);
    assert.match(sw.headers['content-type'], /^text\/javascript/);
    assert.equal(sw.headers['service-worker-allowed'], undefined);

    const ctx = await browser.createBrowserContext();
    const page = await newPage(ctx, { mobile: true });
    await page.goto(srv.url + '/');
    await page.waitForSelector('#login-id');
    assert.equal(await page.$eval('link[rel=manifest]', (l) => l.href), srv.url + '/manifest.webmanifest');
    const scope = await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
    assert.equal(scope, srv.url + '/');
    assert.deepEqual(page.problems, []);
    await closeContext(ctx);
});

test('after a first visit the shell opens offline; nothing of /api/ or personal is cached', async () => {
    const ctx = await browser.createBrowserContext();
    const page = await newPage(ctx, { mobile: true });
    await loginAs(page, srv, 'tanaka');
    await controlled(page);
    await page.waitForSelector('.room-item');
    await clickFresh(page, '.room-item');
    await waitForText(page, '私的な本文カナリア');
    // This browser's device keys exist (made after the login) before the network goes.
    await page.waitForFunction(() => import('/js/crypto/device.js').then((m) => m.myDevice()).then((d) => !!d.id), { timeout: 20000 });
    const held = await cacheContents(page);
    assert.deepEqual(Object.keys(held), ['kizuna-shell-v1']);
    const paths = held['kizuna-shell-v1'];
    for (const p of ['/index.html', '/app.js', '/app.css', '/js/api.js', '/js/pages/room.js']) assert.ok(paths.includes(p), p);
    assert.ok(!paths.some((p) => p.startsWith('/api/')), paths.join(' '));
    assert.ok(!paths.some((p) => p.includes('?')), paths.join(' '));

    const cdp = await page.createCDPSession();
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: true, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    page.problems.length = 0;
    const t0 = Date.now();
    await page.reload({ waitUntil: 'domcontentloaded' });
    // The shell, its styles and modules from the cache; the connection banner says offline.
    await waitForText(page, 'オフラインです');
    assert.ok(await page.$eval('#main', (m) => getComputedStyle(m).display !== 'none'));
    assert.ok(await page.evaluate(() => document.styleSheets.length >= 1 && !!navigator.serviceWorker.controller));
    const ms = Date.now() - t0;
    assert.ok(ms < 5000, `shell offline in ${ms} ms`);
    // What it had: the room as last seen, marked as of when (js/snapshot.js), then the list.
    await waitForText(page, '私的な本文カナリア', { timeout: 8000 });
    assert.match(await page.$eval('#room-snapshot', (e) => e.textContent), /オフラインです。.*時点の内容/);
    await screenshot(page, 'pwa-offline-phone');
    await page.goto(srv.url + '/#/rooms');
    await page.waitForSelector('#room-list .snapshot-note');
    assert.ok(await page.$eval('#room-list', (e) => e.textContent.includes('道路状況')), 'the room list as last seen');

    // A photo taken while offline, in the app opened offline: staged at once, sent when the
    // network is back (encryption and libsodium come from the worker's cache).
    await page.click('#room-list .room-item');
    await page.waitForSelector('#camera');
    const jpg = path.join(tmp, 'offline.jpg');
    await run(MKJPEG, [jpg, '--width', '1200', '--height', '900', '--gps', '35.5,139.25']);
    await page.type('#composer', 'オフラインで撮影');
    const [chooser] = await Promise.all([page.waitForFileChooser(), page.click('#camera')]);
    await chooser.accept([jpg]);
    await page.waitForFunction(() => [...document.querySelectorAll('.send-line')].pop()?.dataset.sendState === 'waiting', { timeout: 30000, polling: 100 })
        .catch(async (e) => { throw new Error(`${e.message}: ${await page.evaluate(() => document.querySelector('#send-list')?.innerText)}`); });
    assert.equal(await page.evaluate(() => new Promise((resolve) => {
        const rq = indexedDB.open('kizuna-e2ee');
        rq.onsuccess = () => rq.result.transaction('outbox').objectStore('outbox').count().onsuccess = (e) => resolve(e.target.result);
    })), 1, 'staged in the outbox');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await page.waitForFunction(() => document.body.dataset.conn === 'online', { timeout: 20000 });
    await page.waitForFunction(() => {
        const l = [...document.querySelectorAll('.send-line')].pop();
        if (l?.dataset.sendState === 'failed') throw new Error(l.textContent);
        return l?.dataset.sendState === 'done';
    }, { timeout: 40000, polling: 100 });
    const hist = JSON.parse((await srv.kizuna(['--json', 'history', '道路状況', '--no-read'])).stdout);
    assert.ok(hist.events.some((e) => e.event === 'e2ee.photo' && e.sender === 'tanaka'), 'the photo reached the room');
    await page.goto(srv.url + '/#/rooms');
    await page.waitForSelector('#room-list .room-item');
    await page.waitForFunction(() => !document.querySelector('#room-list .snapshot-note'), { timeout: 20000 });
    // Logging out deletes what was kept for opening offline.
    await page.click('#logout');
    await page.waitForFunction(async () => !(await indexedDB.databases()).some((d) => d.name === 'kizuna-snapshot'), { timeout: 10000 });
    await closeContext(ctx);
});

test('through the worker, a file is what the server has now (network first)', async () => {
    const ctx = await browser.createBrowserContext();
    const page = await newPage(ctx, { mobile: true });
    await page.goto(srv.url + '/');
    await controlled(page);
    const file = path.join(path.resolve('../../clients/web'), 'js', 'strings.js');
    const served = await page.evaluate(() => fetch('/js/strings.js').then((r) => r.text()));
    assert.equal(served, fs.readFileSync(file, 'utf8'));
    await closeContext(ctx);
});

test('a shared PC caches the shell only, and logout leaves no other cache', async () => {
    const ctx = await browser.createBrowserContext();
    const page = await newPage(ctx, { mobile: true });
    await page.goto(srv.url + '/#/login');
    await page.waitForSelector('#login-id');
    await page.type('#login-id', 'kyoyo');
    await page.type('#login-password', userPassword('kyoyo'));
    await page.click('#login-shared');
    await page.click('#login-submit');
    await page.waitForFunction(() => !location.hash.startsWith('#/login'));
    await controlled(page);
    await page.waitForSelector('.room-item');
    await clickFresh(page, '.room-item');
    await waitForText(page, '私的な本文カナリア');
    // A cache some other code might have made: logout must delete it.
    await page.evaluate(async () => (await caches.open('kizuna-data')).put('/x', new Response('私的')));
    const held = await cacheContents(page);
    const all = Object.values(held).flat();
    assert.ok(!all.some((p) => p.startsWith('/api/')));
    const bodies = await page.evaluate(async () => {
        const c = await caches.open('kizuna-shell-v1');
        return Promise.all((await c.keys()).map(async (r) => (await c.match(r)).text()));
    });
    assert.ok(!bodies.some((b) => b.includes('私的な本文カナリア') || b.includes('kyoyo')));
    // Nor is anything kept for opening offline (js/snapshot.js), and the user stays unstored.
    assert.ok(!(await page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name))).includes('kizuna-snapshot'));
    assert.ok(!(await page.evaluate(() => sessionStorage.getItem('kizuna.session') || '')).includes('kyoyo'));
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#logout')]);
    await page.waitForSelector('#login-id');
    await page.waitForFunction(async () => (await caches.keys()).join() === 'kizuna-shell-v1');
    assert.equal(await page.evaluate(() => sessionStorage.length + localStorage.length), 0);
    await closeContext(ctx);
});
