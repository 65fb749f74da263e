// photo_geo.test.mjs - the browser's location for a photo without GPS (issue 21, item 2;
// js/photo_send.js browserLocation()): with the location permission granted, a photo whose EXIF
// has no GPS is sent with the browser's position (inside the encryption: the CLI reads it, the
// room shows its geo: link); refused, the photo goes without a location and without delay.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, launchBrowser, newPage, screenshot } from './lib/harness.mjs';
import { addStaff, loginAs } from './lib/staff.mjs';

const MKJPEG = process.env.KZ_MKJPEG_PATH || path.join(path.dirname(process.env.KIZUNAD_PATH || ''), 'tests', 'kz-mkjpeg');
let srv, browser, tmp;

function run(file, args) {
    return new Promise((resolve, reject) =>
        execFile(file, args, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout))));
}

before(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'kz-geo-web-'));
    srv = await startServer();
    await addStaff(srv, [{ login: 'patrol', name: '巡回' }, { login: 'patrol2', name: '巡回2' }, { login: 'honbu', name: '本部' }]);
    await srv.kizuna(['login', 'honbu'], { user: 'honbu' });
    browser = await launchBrowser({ mobile: true });
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function sendFrom(page, room, file, caption) {
    await page.goto(`${srv.url}/#/room/${room}`);
    await page.waitForSelector('#composer');
    await page.evaluate(() => document.querySelectorAll('.send-line').forEach((l) => l.remove()));
    await page.type('#composer', caption);
    const [chooser] = await Promise.all([page.waitForFileChooser(), page.click('#camera')]);
    await chooser.accept([file]);
    await page.waitForFunction(() => [...document.querySelectorAll('.send-line')].pop()?.dataset.sendState === 'done', { timeout: 30000 });
}

test('no GPS in the photo: the browser\'s location with permission, none without', async () => {
    const jpg = path.join(tmp, 'nogps.jpg');
    await run(MKJPEG, [jpg, '--width', '640', '--height', '480', '--time', '2026:11:30 10:00:00']);
    const r = await srv.kizuna(['--json', 'room', 'create', '巡回報告', '--members', 'patrol,patrol2'], { user: 'honbu' });
    const room = JSON.parse(r.stdout).room.room;

    const ctx = await browser.createBrowserContext();
    await ctx.overridePermissions(srv.url, ['geolocation']);
    const page = await newPage(ctx, { mobile: true });
    await page.setGeolocation({ latitude: 42.9236, longitude: 143.1967 });
    await loginAs(page, srv, 'patrol');
    await sendFrom(page, room, jpg, '位置はブラウザから');
    await page.waitForFunction(() => document.querySelector('.photo-geo')?.getAttribute('href') === 'geo:42.923600,143.196700', { timeout: 20000 });
    await screenshot(page, 'photo-geo-phone');
    await ctx.close();

    const ctx2 = await browser.createBrowserContext();
    const page2 = await newPage(ctx2, { mobile: true });
    await loginAs(page2, srv, 'patrol2');
    const t0 = Date.now();
    await sendFrom(page2, room, jpg, '位置なし');
    assert.ok(Date.now() - t0 < 15000);
    await page2.waitForFunction(() => [...document.querySelectorAll('.photo')].some((f) => f.textContent.includes('位置なし') && !f.querySelector('.photo-geo')), { timeout: 20000 });
    await ctx2.close();
});
