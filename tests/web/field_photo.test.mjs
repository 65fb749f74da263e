// field_photo.test.mjs - issue 21's "Done when", end to end in Chromium: a dispatched patrol
// worker joins through the invitation link an admin's browser shows as a QR code, on a
// phone-sized browser; takes a damage photo with EXIF GPS and sends it with a caption over a
// slow connection that drops twice; HQ's browser shows the thumbnail, caption and location at
// once (the photo message goes before its blob: "thumbnail first"), says the full image is still
// on its way while the sender uploads, and shows it when the upload completes; the upload never
// starts again from 0; the server's files and log hold only ciphertext. Screenshots: the join
// page, HQ with the thumbnail while the upload runs, HQ with the full photo, the phone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, launchBrowser, newPage, waitForText, screenshot } from './lib/harness.mjs';
import { addStaff, loginAs, clearToasts, clickFresh } from './lib/staff.mjs';

const MKJPEG = process.env.KZ_MKJPEG_PATH || path.join(path.dirname(process.env.KIZUNAD_PATH || ''), 'tests', 'kz-mkjpeg');
const CAPTION = '県道12号 路肩崩落 canary-5521';
const ROOM = '被害状況';
let srv, browser, tmp;

before(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'kz-field-'));
    srv = await startServer();
    await addStaff(srv, [{ login: 'honbu', name: '本部 田中', dept: '災害対策本部' }]);
    await srv.kizuna(['room', 'create', ROOM, '--members', 'honbu']);
    browser = await launchBrowser();
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
    if (tmp)
        rmSync(tmp, { recursive: true, force: true });
});

function mkjpeg(file, args) {
    return new Promise((resolve, reject) =>
        execFile(MKJPEG, [file, ...args], (err, _out, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(file))));
}

const sendLine = (page) => page.evaluate(() => {
    const l = [...document.querySelectorAll('.send-line')].pop();
    return l ? { state: l.dataset.sendState, percent: Number(l.dataset.percent || 0), text: l.textContent } : null;
});

test('a patrol worker invited by QR link sends a damage photo over a connection that drops twice; HQ sees the thumbnail at once, then the full photo', async () => {
    // The admin's browser makes the invitation; its link is what the QR code on the screen holds
    // (admin_invite.test.mjs checks the QR code module by module against the link).
    const admin = await newPage(await browser.createBrowserContext(), { mobile: false });
    await loginAs(admin, srv, 'admin');
    await admin.goto(srv.url + '/#/admin/invites');
    await admin.waitForSelector('#iv-create');
    await admin.click('#iv-create');
    await admin.waitForSelector('#iv-result canvas.iv-qr');
    const link = await admin.$eval('#iv-link', (a) => a.href);
    assert.ok(await admin.$eval('canvas.iv-qr', (c, l) => c.getAttribute('aria-label').includes(l), link));

    // The phone opens the link (scanned), joins, and lands logged in.
    const phoneCtx = await browser.createBrowserContext();
    const phone = await newPage(phoneCtx, { mobile: true });
    await phone.goto(link);
    await phone.waitForSelector('#jn-submit');
    await phone.type('#jn-login', 'patrol.ito');
    await phone.type('#jn-name', '伊藤 三郎（応援）');
    await phone.type('#jn-password', 'patrol-password-1');
    await phone.type('#jn-again', 'patrol-password-1');
    await screenshot(phone, 'field-join-phone');
    await phone.click('#jn-submit');
    await phone.waitForFunction(() => location.hash === '#/notices');
    await srv.kizuna(['room', 'invite', ROOM, 'patrol.ito']);

    // HQ's browser is in the room before the photo, so the photo's key reaches it.
    const hq = await newPage(await browser.createBrowserContext(), { mobile: false });
    await loginAs(hq, srv, 'honbu');
    await hq.waitForSelector('.room-item');
    await clickFresh(hq, '.room-item');
    await hq.waitForSelector('#composer');
    await hq.waitForFunction(() => import('/js/crypto/device.js').then((m) => m.myDevice()).then((d) => d.approved), { timeout: 20000 });

    // The phone: its own device (the user's first: it signs its list), the room, a slow link.
    await phone.waitForFunction(() => import('/js/crypto/device.js').then((m) => m.myDevice()).then((d) => d.approved), { timeout: 20000 });
    await phone.goto(`${srv.url}/#/rooms`);
    await phone.waitForSelector('.room-item');
    await clickFresh(phone, '.room-item');
    await phone.waitForSelector('#camera');
    // The link: congested, then dropping twice. The first PATCH is held until HQ has the
    // thumbnail (so "at once" does not depend on timing), the 2nd and 4th are cut off in flight
    // (net::ERR_INTERNET_DISCONNECTED) with the network gone for a second each time (CDP
    // offline: the WebSocket drops too). CDP's throttling does not slow uploads, so it is not
    // what makes the link slow here.
    const cdp = await phone.createCDPSession();
    await cdp.send('Network.enable');
    const online = { offline: false, latency: 40, downloadThroughput: -1, uploadThroughput: -1 };
    let hqHasIt;
    const hqSaw = new Promise((r) => { hqHasIt = r; });
    const seen = { posts: 0, patches: [], cuts: [] };
    await phone.setRequestInterception(true);
    phone.on('request', async (r) => {
        if (r.isInterceptResolutionHandled()) return;
        if (r.url().includes('/api/v1/uploads') && r.method() === 'POST') seen.posts++;
        if (!(r.url().includes('/api/v1/uploads/') && r.method() === 'PATCH')) return r.continue();
        const n = seen.patches.push(Number(r.headers()['upload-offset']));
        if (n === 1) await hqSaw;
        if (n !== 2 && n !== 4) return r.continue();
        seen.cuts.push(seen.patches[n - 1]);
        await cdp.send('Network.emulateNetworkConditions', { ...online, offline: true });
        await r.abort('internetdisconnected');
        setTimeout(() => cdp.send('Network.emulateNetworkConditions', online).catch(() => {}), 1000);
    });
    // Every state the phone's line goes through.
    await phone.evaluate(() => {
        window.__states = [];
        new MutationObserver(() => {
            const st = [...document.querySelectorAll('.send-line')].pop()?.dataset.sendState;
            if (st && window.__states.at(-1) !== st) window.__states.push(st);
        }).observe(document.querySelector('#send-list'), { subtree: true, childList: true, attributes: true });
    });

    const jpg = await mkjpeg(path.join(tmp, 'road.jpg'), ['--width', '4000', '--height', '3000', '--detail', '--quality', '97',
        '--gps', '37.75,140.4675', '--time', '2026:11:30 03:12:00']);
    await phone.click('#composer');
    await phone.type('#composer', CAPTION);
    await clearToasts(phone); // the welcome toast covers the composer's buttons
    const [chooser] = await Promise.all([phone.waitForFileChooser(), phone.click('#camera')]);
    await chooser.accept([jpg]);

    // HQ sees the thumbnail, caption and location while the phone is still uploading.
    await waitForText(hq, CAPTION, { timeout: 30000 });
    await hq.waitForFunction(() => document.querySelector('.photo-thumb')?.naturalWidth > 0, { timeout: 10000 });
    const atThumb = await sendLine(phone);
    assert.notEqual(atThumb?.state, 'done', `the thumbnail came only after the upload: ${JSON.stringify(atThumb)}`);
    assert.equal(await hq.$eval('.photo-geo', (a) => a.getAttribute('href')), 'geo:37.750000,140.467500');
    await hq.click('.photo-open');
    await hq.waitForFunction(() => ['uploading', 'full'].includes(document.querySelector('figure[data-photo-state]')?.dataset.photoState),
        { timeout: 10000, polling: 50 });
    const early = await hq.$eval('figure[data-photo-state]', (f) => ({ state: f.dataset.photoState, text: f.textContent }));
    assert.equal(early.state, 'uploading', `HQ should see the upload still running: ${JSON.stringify({ early, atThumb })}`);
    assert.match(early.text, /送信者がまだ送っています（\d+%）/);
    await screenshot(hq, 'field-photo-hq-thumbnail');
    hqHasIt();

    await phone.waitForFunction(() => {
        const l = [...document.querySelectorAll('.send-line')].pop();
        if (l?.dataset.sendState === 'failed') throw new Error(l.textContent);
        return l?.dataset.sendState === 'done';
    }, { timeout: 120000, polling: 100 });
    const states = await phone.evaluate(() => window.__states);
    assert.equal(seen.cuts.length, 2, `cut twice: ${JSON.stringify(seen)}`);
    assert.equal(states.filter((x) => x === 'waiting').length >= 2, true, `waited for the network twice: ${states}`);
    assert.equal(seen.posts, 1, 'one upload, never created again');
    assert.equal(seen.patches.filter((o) => o === 0).length, 1, `a PATCH from 0 after a cut: ${seen.patches}`);
    await screenshot(phone, 'field-photo-phone');

    // HQ's full image, checked and decrypted in the browser, comes by itself.
    await hq.waitForFunction(() => document.querySelector('.photo-full')?.naturalWidth > 0, { timeout: 60000 });
    assert.deepEqual(await hq.$eval('.photo-full', (i) => [i.naturalWidth, i.naturalHeight]), [2048, 1536]);
    await waitForText(hq, '撮影 2026-11-30 03:12:00');
    await screenshot(hq, 'field-photo-hq-full');

    // The server holds ciphertext only: no caption, no GPS, in its files or its log.
    const hay = [];
    const walk = (d) => { for (const f of readdirSync(d)) { const p = path.join(d, f); if (statSync(p).isDirectory()) walk(p); else hay.push(readFileSync(p)); } };
    walk(srv.dataDir);
    for (const needle of ['canary-5521', '路肩崩落', '37.750000', '140.467500', '140.4675'])
        assert.ok(!hay.some((b) => b.includes(Buffer.from(needle))), `the server's files hold ${needle}`);
    assert.ok(!srv.stderr().includes('canary-5521'));
    // 503 while the blob was on its way is the protocol (blob_not_here), said in the photo.
    assert.deepEqual(hq.problems.filter((p) => !/HTTP 503: .*\/api\/v1\/blobs\/|status of 503/.test(p)), []);
    // The two cuts are the test's doing (requests and the WebSocket failing while offline).
    assert.deepEqual(phone.problems.filter((p) => !/net::ERR_(INTERNET_DISCONNECTED|ABORTED)/.test(p)), []);
});
