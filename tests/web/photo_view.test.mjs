// photo_view.test.mjs - encrypted photos decrypted in the browser (issue 21, items 1 and 4): a
// user who logs in only in Chromium gets a device (keys in IndexedDB, registered with the
// qualified self-signature, the first signed list of the user signed by it); a photo the CLI
// sends with EXIF GPS and a caption shows in the room as a thumbnail with its caption, capture
// time and a geo: link, and in full on a tap; the server holds neither caption nor GPS text; a
// photo sent before the user had any device waits "for the key from device D on server S",
// asks for it, and shows once the sender's CLI answers; a blob damaged on the server's disk
// "failed its integrity check"; the sender's signed device list is pinned. No network: the
// CLI and the browser talk to a loopback kizunad.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync, readdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, launchBrowser, newPage, waitForText, screenshot } from './lib/harness.mjs';
import { addStaff, loginAs } from './lib/staff.mjs';

const MKJPEG = path.join(path.dirname(process.env.KIZUNAD_PATH || ''), 'tests', 'kz-mkjpeg');
const CAPTION = 'カナリア橋 流失 canary-7731';
let srv, browser, tmp;

function run(file, args) {
    return new Promise((resolve, reject) =>
        execFile(file, args, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout))));
}

async function sendPhoto(room, name, gps) {
    const jpg = path.join(tmp, name);
    await run(MKJPEG, [jpg, '--width', '1200', '--height', '900', '--gps', gps, '--time', '2026:11:30 09:12:00', '--detail']);
    const r = await srv.kizuna(['--json', 'photo', 'send', room, jpg, '--caption', CAPTION], { user: 'tanaka' });
    return JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
}

async function makeRoom(name, member) {
    const r = await srv.kizuna(['--json', 'room', 'create', name, '--members', member], { user: 'tanaka' });
    return JSON.parse(r.stdout).room.room;
}

async function deviceOf(page) {
    return page.evaluate(() => import('/js/crypto/device.js').then((m) => m.myDevice()).then((d) => ({ id: d.id, state: d.state })));
}

// An op through the page's own connection.
function call(page, op, args) {
    return page.evaluate((o, a) => import('/js/api.js').then((m) => m.api.call(o, a)), op, args);
}

before(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'kz-photo-web-'));
    srv = await startServer();
    await addStaff(srv, [{ login: 'sato', name: '佐藤' }, { login: 'tanaka', name: '田中' }, { login: 'suzuki', name: '鈴木' }]);
    await srv.kizuna(['login', 'tanaka'], { user: 'tanaka' });
    browser = await launchBrowser({ mobile: true });
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
    if (tmp)
        rmSync(tmp, { recursive: true, force: true });
});

test('a photo from the CLI: thumbnail, caption, time and a geo: link, then the full image', async () => {
    const page = await newPage(browser, { mobile: true });
    await loginAs(page, srv, 'sato');
    const dev = await deviceOf(page);
    assert.match(dev.id, /^[A-Za-z0-9_-]{22}$/);
    assert.ok(['signed_root', 'approved'].includes(dev.state), dev.state);
    // The server has the device and the first list, signed by it.
    const list = await call(page, 'device.list', { login: 'sato' });
    assert.deepEqual(list.devices.map((d) => d.device), [dev.id]);
    assert.equal(list.lists.length, 1);
    assert.equal(list.lists[0].by, dev.id);
    const stored = await page.evaluate(() => new Promise((resolve) => {
        const rq = indexedDB.open('kizuna-e2ee');
        rq.onsuccess = () => rq.result.transaction('devices').objectStore('devices').getAll().onsuccess = (e) =>
            resolve(e.target.result.map((r) => ({ user: r.user, id: r.id, sk: r.boxSk.length })));
    }));
    assert.equal(stored.length, 1);
    assert.equal(stored[0].id, dev.id);
    assert.match(stored[0].user, /^sato@/);

    const room = await makeRoom('写真班', 'sato');
    const sent = await sendPhoto(room, 'bridge.jpg', '43.588,142.466');
    await page.goto(`${srv.url}/#/room/${room}`);
    await waitForText(page, CAPTION, { timeout: 20000 });
    const shown = await page.evaluate(() => ({
        geo: document.querySelector('.photo-geo')?.getAttribute('href'),
        time: document.querySelector('.photo-time')?.textContent,
        thumb: document.querySelector('.photo-thumb')?.naturalWidth,
    }));
    assert.equal(shown.geo, 'geo:43.588000,142.466000');
    assert.match(shown.time, /2026-11-30 09:12:00/);
    await page.waitForFunction(() => document.querySelector('.photo-thumb')?.naturalWidth > 0);
    // The sender's signed device list is pinned (crypto/trust.js), by the qualified names.
    const pins = await page.evaluate(() => new Promise((resolve) => {
        const rq = indexedDB.open('kizuna-e2ee');
        rq.onsuccess = () => rq.result.transaction('contacts').objectStore('contacts').getAll().onsuccess = (e) =>
            resolve(e.target.result.map((r) => ({ key: r.key, ever: r.ever.length })));
    }));
    assert.equal(pins.length, 1, JSON.stringify(pins));
    assert.match(pins[0].key, /^sato@[^|]+\|tanaka@/);
    assert.equal(pins[0].ever, 1);
    await page.click('.photo-open');
    await page.waitForFunction(() => document.querySelector('.photo-full')?.naturalWidth > 0, { timeout: 20000 });
    const w = await page.evaluate(() => document.querySelector('.photo-full').naturalWidth);
    assert.equal(w, 1200);
    await screenshot(page, 'photo-view-phone');

    // The server holds ciphertext only: no caption and no GPS text in its files.
    const hay = [];
    const walk = (d) => { for (const f of readdirSync(d)) { const p = path.join(d, f); if (statSync(p).isDirectory()) walk(p); else hay.push(readFileSync(p)); } };
    walk(srv.dataDir);
    for (const needle of ['canary-7731', '142.466', 'カナリア橋'])
        assert.ok(!hay.some((b) => b.includes(Buffer.from(needle))), `the server's files hold ${needle}`);
    assert.ok(!srv.stderr().includes('canary-7731'));

    // The blob damaged on the server's disk: the browser refuses it and says why.
    const blobFile = path.join(srv.dataDir, 'blobs', sent.blob.slice(0, 2), sent.blob);
    const b = readFileSync(blobFile);
    b[b.length >> 1] ^= 0x20;
    writeFileSync(blobFile, b);
    await page.reload();
    await waitForText(page, CAPTION, { timeout: 20000 });
    await page.waitForFunction(() => document.querySelector('.photo-thumb')?.naturalWidth > 0);
    await page.click('.photo-open');
    await waitForText(page, '完全性の確認に失敗しました（blob_tampered）');
    assert.deepEqual(page.problems.filter((p) => !/HTTP 404.*favicon/.test(p)), []);
    await page.close();
});

test('a photo sent before the browser had a device waits for the key, asks, and opens once answered', async () => {
    const room = await makeRoom('避難所', 'suzuki');
    const sent = await sendPhoto(room, 'shelter.jpg', '35.0,139.5');
    const ctx = await browser.createBrowserContext();
    const page = await newPage(ctx, { mobile: true });
    await loginAs(page, srv, 'suzuki');
    await deviceOf(page);
    const who = await call(page, 'device.list', { login: 'tanaka' });
    const tanakaDev = who.devices.find((d) => d.revoked_at == null)?.device;
    assert.ok(tanakaDev, JSON.stringify(who));
    await page.goto(`${srv.url}/#/room/${room}`);
    const serverId = await page.evaluate(() => import('/js/session.js').then((m) => m.serverId()));
    await waitForText(page, `鍵を待っています（${serverId} の端末 ${tanakaDev} から）`, { timeout: 20000 });
    await screenshot(page, 'photo-view-waiting-key');
    // The sender's CLI answers requests from every command that reads the room's photos.
    const pl = await srv.kizuna(['photo', 'list', room], { user: 'tanaka' });
    assert.match(pl.stderr, /shared the key of epoch .* to device/);
    await waitForText(page, CAPTION, { timeout: 20000 });
    assert.ok(sent.blob);
    await ctx.close();
});

test('on a shared PC the device keys live in sessionStorage only, and logging out wipes them', async () => {
    const ctx = await browser.createBrowserContext();
    const page = await newPage(ctx, { mobile: true });
    await page.goto(srv.url + '/#/login');
    await page.waitForSelector('#login-id');
    await page.type('#login-id', 'sato');
    await page.type('#login-password', 'sato-password-1');
    await page.click('#login-shared');
    await page.click('#login-submit');
    await page.waitForFunction(() => !location.hash.startsWith('#/login'));
    const dev = await deviceOf(page);
    const kept = await page.evaluate(() => ({
        session: JSON.parse(sessionStorage.getItem('kizuna.e2ee.device') || 'null')?.id,
        local: Object.keys(localStorage).filter((k) => k.includes('e2ee')),
    }));
    assert.equal(kept.session, dev.id);
    assert.deepEqual(kept.local, []);
    assert.equal(await page.evaluate(() => new Promise((resolve) => {
        const rq = indexedDB.open('kizuna-e2ee');
        rq.onupgradeneeded = () => { rq.transaction.abort(); };
        rq.onsuccess = () => (rq.result.objectStoreNames.contains('devices')
            ? (rq.result.transaction('devices').objectStore('devices').count().onsuccess = (e) => resolve(e.target.result))
            : resolve(0));
        rq.onerror = () => resolve(0);
    })), 0, 'nothing of the shared session in IndexedDB');
    await Promise.all([page.waitForNavigation(), page.click('#logout')]); // logout reloads the page
    await page.waitForSelector('#login-id');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('kizuna.e2ee.device')), null);
    await ctx.close();
});
