// photo_send.test.mjs - encrypted photos sent from the browser (issue 21, items 2 and 3), in
// Chromium with phone emulation: a JPEG with EXIF GPS, a capture time, orientation 6 and a
// canary in its EXIF, XMP and comments is chosen through the file chooser behind the composer's
// camera button and sent with a caption; the CLI opens it (`kizuna photo get`) with caption, GPS
// and time intact, upright and downscaled to media/'s profile, with no EXIF and no canary in the
// image; a second browser shows it; the server's files and log hold neither caption nor GPS
// text nor canary. A second photo's upload is cut three times (the page taken offline
// mid-upload) and completes without a PATCH from 0; a third is left half uploaded by closing
// the page and resumes from the server's offset in a new page, without encrypting again (no
// POST). A revoked browser device gets no envelope of the next photo's epoch. No network:
// everything talks to a loopback kizunad.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, launchBrowser, newPage, waitForText, screenshot } from './lib/harness.mjs';
import { addStaff, loginAs } from './lib/staff.mjs';

const MKJPEG = process.env.KZ_MKJPEG_PATH || path.join(path.dirname(process.env.KIZUNAD_PATH || ''), 'tests', 'kz-mkjpeg');
const CAPTION = '土砂崩れ 県道 canary-4417';
const CANARY = 'exif-canary-9083';
let srv, browser, tmp, room;

function run(file, args) {
    return new Promise((resolve, reject) =>
        execFile(file, args, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout))));
}

async function mkjpeg(name, w, h, extra = []) {
    const f = path.join(tmp, name);
    await run(MKJPEG, [f, '--width', String(w), '--height', String(h), '--detail', ...extra]);
    return f;
}

function call(page, op, args) {
    return page.evaluate((o, a) => import('/js/api.js').then((m) => m.api.call(o, a)), op, args);
}

async function deviceOf(page) {
    return page.evaluate(() => import('/js/crypto/device.js').then((m) => m.myDevice()).then((d) => ({ id: d.id, state: d.state })));
}

// Chooses file through the camera button's file chooser, with caption typed first.
async function choose(page, file, caption) {
    // Lines of earlier sends stay 3 s: gone first, so the waits below see this send's line.
    await page.evaluate(() => document.querySelectorAll('.send-line').forEach((l) => l.remove()));
    await page.click('#composer');
    await page.type('#composer', caption);
    const [chooser] = await Promise.all([page.waitForFileChooser(), page.click('#camera')]);
    assert.ok(chooser.isMultiple());
    await chooser.accept([file]);
}

// The PATCH offsets and POSTs the page sends to /api/v1/uploads.
function watchUploads(page) {
    const seen = { posts: 0, patches: [] };
    page.on('request', (r) => {
        if (!r.url().includes('/api/v1/uploads')) return;
        if (r.method() === 'POST') seen.posts++;
        if (r.method() === 'PATCH') seen.patches.push(Number(r.headers()['upload-offset']));
    });
    return seen;
}

const sendState = (page) => page.evaluate(() => {
    const l = [...document.querySelectorAll('.send-line')].pop();
    return l ? { state: l.dataset.sendState, percent: Number(l.dataset.percent || 0), text: l.textContent } : null;
});

async function waitPercent(page, p) {
    await page.waitForFunction((x) => {
        const l = [...document.querySelectorAll('.send-line')].pop();
        return l && Number(l.dataset.percent || 0) >= x;
    }, { timeout: 60000, polling: 50 }, p);
}

async function waitSent(page) {
    await page.waitForFunction(() => {
        const l = [...document.querySelectorAll('.send-line')].pop();
        if (l?.dataset.sendState === 'failed') throw new Error(l.textContent);
        return l?.dataset.sendState === 'done';
    }, { timeout: 90000, polling: 100 });
}

async function cliPhoto(pos, out) {
    const r = await srv.kizuna(['--json', 'photo', 'get', room, String(pos), '-o', out], { user: 'tanaka' });
    return JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
}

async function lastPhotoPos(page) {
    const r = await call(page, 'history', { room, limit: 50 });
    return Math.max(...r.events.filter((e) => e.event === 'e2ee.photo').map((e) => e.pos));
}

before(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'kz-photo-send-'));
    srv = await startServer();
    await addStaff(srv, [{ login: 'sato', name: '佐藤' }, { login: 'tanaka', name: '田中' }, { login: 'suzuki', name: '鈴木' }]);
    await srv.kizuna(['login', 'tanaka'], { user: 'tanaka' });
    const r = await srv.kizuna(['--json', 'room', 'create', '被害報告', '--members', 'sato,suzuki'], { user: 'tanaka' });
    room = JSON.parse(r.stdout).room.room;
    browser = await launchBrowser({ mobile: true });
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
    if (tmp)
        rmSync(tmp, { recursive: true, force: true });
});

let satoPage, suzukiCtx, suzukiPage, suzukiDev;

test('js/exif.js reads orientation, time and GPS as media/exif.c does, and never throws', async () => {
    const page = await newPage(browser, { mobile: true });
    await page.goto(srv.url + '/');
    const files = {
        le: await mkjpeg('le.jpg', 64, 48, ['--orientation', '8', '--gps', '43.588,142.466', '--time', '2026:11:30 09:12:00']),
        be: await mkjpeg('be.jpg', 64, 48, ['--big-endian', '--orientation', '3', '--gps', '-33.5,-70.25', '--time', '2025:01:02 03:04:05']),
        none: await mkjpeg('none.jpg', 64, 48),
    };
    const bytes = Object.fromEntries(Object.entries(files).map(([k, f]) => [k, [...readFileSync(f)]]));
    const r = await page.evaluate(async (b) => {
        const { exifRead } = await import('/js/exif.js');
        const out = {};
        for (const [k, v] of Object.entries(b)) out[k] = exifRead(Uint8Array.from(v));
        // Every truncation of the little-endian file: absent fields, never an exception.
        const le = Uint8Array.from(b.le);
        let threw = 0;
        for (let n = 0; n < Math.min(le.length, 1200); n++) try { exifRead(le.subarray(0, n)); } catch { threw++; }
        out.threw = threw;
        return out;
    }, bytes);
    assert.equal(r.le.orientation, 8);
    assert.equal(r.le.capturedAt, '2026-11-30T09:12:00');
    assert.ok(Math.abs(r.le.gps.lat - 43.588) < 1e-5 && Math.abs(r.le.gps.lon - 142.466) < 1e-5, JSON.stringify(r.le));
    assert.equal(r.be.orientation, 3);
    assert.equal(r.be.capturedAt, '2025-01-02T03:04:05');
    assert.ok(Math.abs(r.be.gps.lat + 33.5) < 1e-5 && Math.abs(r.be.gps.lon + 70.25) < 1e-5, JSON.stringify(r.be));
    assert.deepEqual(r.none, { orientation: 1, capturedAt: null, gps: null });
    assert.equal(r.threw, 0);
    await page.close();
});

test('a photo chosen with the camera button reaches the CLI and a second browser, upright, without EXIF', async () => {
    // The second browser has a device before the photo is sent, so the photo's keys reach it.
    suzukiCtx = await browser.createBrowserContext();
    suzukiPage = await newPage(suzukiCtx, { mobile: true });
    await loginAs(suzukiPage, srv, 'suzuki');
    suzukiDev = (await deviceOf(suzukiPage)).id;

    satoPage = await newPage(browser, { mobile: true });
    await loginAs(satoPage, srv, 'sato');
    await deviceOf(satoPage);
    await satoPage.goto(`${srv.url}/#/room/${room}`);
    await satoPage.waitForSelector('#camera');
    const attrs = await satoPage.evaluate(() => {
        const i = document.querySelector('#camera-input');
        return { type: i.type, accept: i.accept, capture: i.hasAttribute('capture'), multiple: i.multiple };
    });
    assert.deepEqual(attrs, { type: 'file', accept: 'image/*', capture: true, multiple: true });
    await screenshot(satoPage, 'photo-send-composer');

    const jpg = await mkjpeg('road.jpg', 3000, 2000, ['--orientation', '6', '--gps', '43.588,142.466',
        '--time', '2026:11:30 09:12:00', '--canary', CANARY]);
    await choose(satoPage, jpg, CAPTION);
    await waitSent(satoPage);
    await waitForText(satoPage, CAPTION, { timeout: 20000 });
    await satoPage.waitForFunction(() => document.querySelector('.photo-thumb')?.naturalWidth > 0);
    assert.equal(await satoPage.$eval('#composer', (e) => e.value), '', 'the caption left the composer');
    await screenshot(satoPage, 'photo-send-sent');

    // The CLI opens it: caption, time and GPS intact; upright (3000x2000 turned by orientation
    // 6 is 2000x3000) and downscaled to a longest edge of 2048; no EXIF, no canary.
    const pos = await lastPhotoPos(satoPage);
    const out = path.join(tmp, 'got.jpg');
    const got = await cliPhoto(pos, out);
    assert.equal(got.ok, true, JSON.stringify(got));
    const msg = JSON.stringify(got);
    assert.ok(msg.includes(CAPTION), msg);
    assert.ok(msg.includes('2026-11-30T09:12:00'), msg);
    assert.ok(/43\.588/.test(msg) && /142\.466/.test(msg), msg);
    const bytes = readFileSync(out);
    assert.ok(!bytes.includes(Buffer.from('Exif\0\0')), 'no EXIF in the image');
    assert.ok(!bytes.includes(Buffer.from(CANARY)), 'no canary in the image');
    assert.ok(!bytes.includes(Buffer.from('http://ns.adobe.com/xap')), 'no XMP in the image');

    // The second browser shows it, with the location link.
    await suzukiPage.goto(`${srv.url}/#/room/${room}`);
    await waitForText(suzukiPage, CAPTION, { timeout: 20000 });
    assert.equal(await suzukiPage.$eval('.photo-geo', (a) => a.getAttribute('href')), 'geo:43.588000,142.466000');
    await suzukiPage.click('.photo-open');
    await suzukiPage.waitForFunction(() => document.querySelector('.photo-full')?.naturalWidth > 0, { timeout: 20000 });
    const full = await suzukiPage.$eval('.photo-full', (i) => [i.naturalWidth, i.naturalHeight]);
    assert.deepEqual(full, [1365, 2048]);
    // Upright: kz-mkjpeg stores red, green / blue, white; orientation 6 turns that clockwise
    // into blue, red / white, green, as media/ does.
    const corners = await suzukiPage.$eval('.photo-full', (i) => {
        const c = document.createElement('canvas');
        c.width = i.naturalWidth; c.height = i.naturalHeight;
        const g = c.getContext('2d');
        g.drawImage(i, 0, 0);
        const at = (x, y) => { const d = g.getImageData(x, y, 1, 1).data; return [d[0], d[1], d[2]].map((v) => (v > 128 ? 1 : 0)).join(''); };
        return [at(300, 400), at(1000, 400), at(300, 1600), at(1000, 1600)];
    });
    assert.deepEqual(corners, ['001', '100', '111', '010'], `corners ${corners}`);
    await screenshot(suzukiPage, 'photo-send-received');

    // The same signed photo posted again (as a hostile server could deliver it anew): its
    // number is one an earlier position had, so the second browser refuses it as a replay.
    const orig = (await call(satoPage, 'history', { room, limit: 50 })).events.find((e) => e.pos === pos);
    const again = await call(satoPage, 'e2ee.post', { room, type: 'e2ee.photo', device: orig.content.device,
        data: orig.content.data, sig: orig.content.sig, blobs: orig.content.blobs, client_id: 'replay-1' });
    await suzukiPage.waitForFunction((p) => {
        const li = document.querySelector(`li[data-pos="${p}"] [data-photo-state]`);
        return li?.dataset.photoState === 'replay';
    }, { timeout: 20000 }, again.pos);
    assert.match(await suzukiPage.$eval(`li[data-pos="${again.pos}"]`, (li) => li.textContent), new RegExp(`#${pos} と同じ写真の再送`));
    assert.equal(await suzukiPage.$eval(`li[data-pos="${pos}"] [data-photo-state]`, (e) => e.dataset.photoState), 'shown', 'the original stays');

    // The server holds ciphertext only.
    const hay = [];
    const walk = (d) => { for (const f of readdirSync(d)) { const p = path.join(d, f); if (statSync(p).isDirectory()) walk(p); else hay.push(readFileSync(p)); } };
    walk(srv.dataDir);
    for (const needle of ['canary-4417', '土砂崩れ', '142.466', '43.588', CANARY])
        assert.ok(!hay.some((b) => b.includes(Buffer.from(needle))), `the server's files hold ${needle}`);
    // Nor pixels: no 64-byte run of the image sent (as the CLI decrypted it) or of the file
    // chosen, taken from the middle of their entropy-coded data.
    const original = readFileSync(jpg);
    for (const [what, img] of [['the image sent', bytes], ['the file chosen', original]])
        for (const at of [0.3, 0.5, 0.7]) {
            const run = img.subarray(Math.floor(img.length * at), Math.floor(img.length * at) + 64);
            assert.ok(!hay.some((b) => b.includes(run)), `the server's files hold pixels of ${what}`);
        }
    for (const needle of ['canary-4417', '142.466', CANARY])
        assert.ok(!srv.stderr().includes(needle), `the server's log holds ${needle}`);
});

test('an upload cut three times resumes from the server offset and completes with the right hash', async () => {
    const cdp = await satoPage.createCDPSession();
    await cdp.send('Network.enable');
    const slow = { offline: false, latency: 20, downloadThroughput: 4 << 20, uploadThroughput: 400 << 10 };
    await cdp.send('Network.emulateNetworkConditions', slow);
    const seen = watchUploads(satoPage);
    const jpg = await mkjpeg('slope.jpg', 4000, 3000, ['--gps', '35.0,139.5', '--quality', '97']);
    await choose(satoPage, jpg, 'cut-three-times');
    let cuts = 0;
    for (const p of [15, 40, 65]) {
        await waitPercent(satoPage, p);
        await cdp.send('Network.emulateNetworkConditions', { ...slow, offline: true });
        await satoPage.waitForFunction(() => document.querySelector('.send-line:last-child')?.dataset.sendState === 'waiting' ||
            [...document.querySelectorAll('.send-line')].pop()?.dataset.sendState === 'waiting', { timeout: 20000, polling: 50 });
        if (++cuts === 2) await screenshot(satoPage, 'photo-send-cut');
        await new Promise((r) => setTimeout(r, 800));
        await cdp.send('Network.emulateNetworkConditions', slow);
    }
    await waitSent(satoPage);
    assert.equal(cuts, 3);
    assert.equal(seen.posts, 1, 'one upload, never created again');
    assert.equal(seen.patches.filter((o) => o === 0).length, 1, `a PATCH from 0 after a cut: ${seen.patches}`);
    for (let i = 1; i < seen.patches.length; i++) assert.ok(seen.patches[i] >= seen.patches[i - 1], `offsets go back: ${seen.patches}`);
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    // The right hash: the CLI downloads it, checks the blob id and every chunk.
    const got = await cliPhoto(await lastPhotoPos(satoPage), path.join(tmp, 'slope-got.jpg'));
    assert.equal(got.ok, true, JSON.stringify(got));
    assert.ok(JSON.stringify(got).includes('cut-three-times'));
});

test('a page closed mid-upload resumes in a new page from the server offset, without encrypting again', async () => {
    // Every PATCH after the first two is cut (as a network gone for good), then the page closes.
    await satoPage.setRequestInterception(true);
    let patches = 0;
    satoPage.on('request', (r) => {
        if (r.isInterceptResolutionHandled()) return;
        if (r.method() === 'PATCH' && ++patches > 2) r.abort('internetdisconnected');
        else r.continue();
    });
    const jpg = await mkjpeg('bridge.jpg', 4000, 3000, ['--quality', '97']);
    await choose(satoPage, jpg, 'resumed-after-reload');
    await satoPage.waitForFunction(() => [...document.querySelectorAll('.send-line')].pop()?.dataset.sendState === 'waiting', { timeout: 20000, polling: 50 });
    const staged = await satoPage.evaluate(() => new Promise((resolve) => {
        const rq = indexedDB.open('kizuna-e2ee');
        rq.onsuccess = () => rq.result.transaction('outbox').objectStore('outbox').getAll().onsuccess = (e) =>
            resolve(e.target.result.map((r) => ({ offset: r.offset, upload: r.upload, len: r.blobLen, sealed: r.sealed.length })));
    }));
    assert.equal(staged.length, 1);
    assert.ok(staged[0].offset > 0 && staged[0].upload.startsWith('/api/v1/uploads/'), JSON.stringify(staged));
    await satoPage.close();
    satoPage = await newPage(browser, { mobile: true });
    const seen = watchUploads(satoPage);
    await satoPage.goto(`${srv.url}/#/room/${room}`);
    await waitSent(satoPage);
    assert.equal(seen.posts, 0, 'no new upload');
    assert.ok(seen.patches.length > 0, JSON.stringify({ seen, state: await sendState(satoPage) }));
    assert.ok(seen.patches.length > 0 && seen.patches[0] >= staged[0].offset, `resumed at ${seen.patches[0]}, was at ${staged[0].offset}`);
    await waitForText(satoPage, 'resumed-after-reload', { timeout: 20000 });
    const left = await satoPage.evaluate(() => new Promise((resolve) => {
        const rq = indexedDB.open('kizuna-e2ee');
        rq.onsuccess = () => rq.result.transaction('outbox').objectStore('outbox').count().onsuccess = (e) => resolve(e.target.result);
    }));
    assert.equal(left, 0, 'the outbox is empty once posted');
});

test('a revoked browser device gets no key of the next photo', async () => {
    // The reply may not arrive: revoking one's own device ends the session.
    const rev = await call(suzukiPage, 'device.revoke', { device: suzukiDev }).catch((e) => ({ error: String(e.message || e) }));
    const dl = await call(satoPage, 'device.list', { login: 'suzuki' });
    assert.ok(dl.devices.find((d) => d.device === suzukiDev)?.revoked_at, JSON.stringify({ rev, dl }));
    const rd = await call(satoPage, 'room.devices', { room });
    assert.ok(!rd.devices.some((d) => d.device === suzukiDev), JSON.stringify({ suzukiDev, rd: rd.devices.map((d) => [d.login, d.device, d.revoked_at]) }));
    const jpg = await mkjpeg('after.jpg', 800, 600, ['--gps', '34.0,135.0']);
    await satoPage.goto(`${srv.url}/#/room/${room}`);
    await satoPage.waitForSelector('#camera');
    await choose(satoPage, jpg, 'after-revocation');
    await waitSent(satoPage);
    const r = await call(satoPage, 'history', { room, limit: 100 });
    const photo = r.events.filter((e) => e.event === 'e2ee.photo').pop();
    const epoch = JSON.parse(photo.content.data).epoch;
    const keys = r.events.filter((e) => e.event === 'e2ee.keys' && JSON.parse(e.content.data).epoch === epoch);
    assert.ok(keys.length >= 1);
    const to = keys.flatMap((e) => JSON.parse(e.content.data).entries.map((x) => x.to));
    assert.ok(!to.includes(suzukiDev), `the revoked device got a key: ${to}`);
    // The epochs before went to it; this one is new.
    const earlier = r.events.filter((e) => e.event === 'e2ee.keys' && JSON.parse(e.content.data).entries.some((x) => x.to === suzukiDev));
    assert.ok(earlier.length >= 1 && earlier.every((e) => JSON.parse(e.content.data).epoch !== epoch));
    // And the revoked browser cannot read the room any more.
    const blob = JSON.parse(photo.content.data) && photo.content.blobs[0];
    const status = await suzukiPage.evaluate(async (b) => (await fetch(`/api/v1/blobs/${b}`, {
        headers: { Authorization: `Bearer ${(await import('/js/api.js')).api.session?.token || ''}` } })).status, blob);
    assert.ok(status === 401 || status === 404, String(status));
    // Cut uploads are the test's doing; nothing else may fail.
    assert.deepEqual(satoPage.problems.filter((p) => !/HTTP 404.*favicon|api\/v1\/uploads\/.*net::ERR_ABORTED/.test(p)), []);
    await suzukiCtx.close();

    // Logged in again, suzuki's browser is a new device (a new root list, the old device being
    // revoked): the photo waits for its key, asks, and the sending browser, still in the room,
    // answers the request as the CLI does, though it was reloaded meanwhile (the epoch's key is
    // no longer in its memory: it takes it from the envelope it sealed to itself).
    await satoPage.reload();
    await satoPage.waitForSelector('#composer');
    const ctx = await browser.createBrowserContext();
    const page = await newPage(ctx, { mobile: true });
    await loginAs(page, srv, 'suzuki');
    const again = await deviceOf(page);
    assert.notEqual(again.id, suzukiDev);
    await page.goto(`${srv.url}/#/room/${room}`);
    await waitForText(page, 'after-revocation', { timeout: 30000 });
    const answers = (await call(satoPage, 'history', { room, limit: 100 })).events.filter((e) => e.event === 'e2ee.keys' &&
        JSON.parse(e.content.data).entries.some((x) => x.to === again.id));
    assert.ok(answers.length >= 1 && answers.every((e) => e.sender === 'sato'), 'answered by the sending browser');
    await ctx.close();
});
