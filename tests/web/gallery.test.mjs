// gallery.test.mjs - a room's photo gallery for HQ (issue 21, item 4; js/pages/gallery.js):
// three photos the CLI sends, taken on three days, show newest first, each decrypted in the
// browser with its caption, capture time and geo: link; the date filter shows the one taken on
// the chosen day, and all again; a tap opens the full image; the room links to the gallery.
// Screenshot: the gallery on a phone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, launchBrowser, newPage, waitForText, screenshot } from './lib/harness.mjs';
import { addStaff, loginAs } from './lib/staff.mjs';

const MKJPEG = process.env.KZ_MKJPEG_PATH || path.join(path.dirname(process.env.KIZUNAD_PATH || ''), 'tests', 'kz-mkjpeg');
let srv, browser, tmp;

function run(file, args) {
    return new Promise((resolve, reject) =>
        execFile(file, args, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout))));
}

before(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'kz-gallery-web-'));
    srv = await startServer();
    await addStaff(srv, [{ login: 'honbu', name: '本部' }, { login: 'tanaka', name: '田中' }]);
    await srv.kizuna(['login', 'tanaka'], { user: 'tanaka' });
    browser = await launchBrowser({ mobile: true });
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('the gallery: newest first, filtered by the day taken, full image on a tap', async () => {
    const page = await newPage(browser, { mobile: true });
    await loginAs(page, srv, 'honbu');
    await page.evaluate(() => import('/js/crypto/device.js').then((m) => m.myDevice()));
    const r = await srv.kizuna(['--json', 'room', 'create', '被害写真', '--members', 'honbu'], { user: 'tanaka' });
    const room = JSON.parse(r.stdout).room.room;
    await srv.kizuna(['send', room, '文字だけのメッセージ'], { user: 'tanaka' });
    const shots = [['2026:11:28 08:00:00', '28日 県道12号 冠水', '43.1,141.3'],
        ['2026:11:29 13:30:00', '29日 市道3号 崩落', '43.2,141.4'],
        ['2026:11:30 17:45:00', '30日 橋 流失', '43.3,141.5']];
    for (const [i, [time, caption, gps]] of shots.entries()) {
        const jpg = path.join(tmp, `p${i}.jpg`);
        await run(MKJPEG, [jpg, '--width', '800', '--height', '600', '--gps', gps, '--time', time]);
        await srv.kizuna(['--json', 'photo', 'send', room, jpg, '--caption', caption], { user: 'tanaka' });
    }
    await page.goto(`${srv.url}/#/room/${room}`);
    await waitForText(page, '30日 橋 流失', { timeout: 20000 });
    await page.click('#room-photos');
    await page.waitForFunction(() => location.hash.endsWith('/photos'));
    await page.waitForFunction(() => document.querySelectorAll('#gallery .photo-thumb').length === 3
        && [...document.querySelectorAll('#gallery .photo-thumb')].every((i) => i.naturalWidth > 0), { timeout: 20000 });
    const captions = () => page.$$eval('#gallery li:not([hidden]) .photo-caption', (l) => l.map((e) => e.textContent));
    assert.deepEqual(await captions(), ['30日 橋 流失', '29日 市道3号 崩落', '28日 県道12号 冠水']);
    assert.deepEqual(await page.$$eval('#gallery .photo-geo', (l) => l.map((a) => a.getAttribute('href'))),
        ['geo:43.300000,141.500000', 'geo:43.200000,141.400000', 'geo:43.100000,141.300000']);
    await waitForText(page, '3 枚');
    await screenshot(page, 'gallery-phone');

    const setDate = (v) => page.$eval('#gallery-date', (el, v) => { el.value = v; el.dispatchEvent(new Event('change')); }, v);
    await setDate('2026-11-29');
    assert.deepEqual(await captions(), ['29日 市道3号 崩落']);
    await waitForText(page, '1 枚');
    await screenshot(page, 'gallery-filtered-phone');
    await setDate('2026-11-27');
    assert.deepEqual(await captions(), []);
    await waitForText(page, 'この日の写真はありません。');
    await page.click('#gallery-all');
    assert.equal((await captions()).length, 3);

    // The full image on a tap, decrypted here.
    await page.click('#gallery li:first-child .photo-open');
    await page.waitForFunction(() => document.querySelector('#gallery .photo-full')?.naturalWidth === 800, { timeout: 20000 });
    await screenshot(page, 'gallery-full-phone');
    assert.deepEqual(page.problems.filter((p) => !/favicon/.test(p)), []);
    await page.close();
});
