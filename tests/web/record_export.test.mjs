// record_export.test.mjs - the room's record from the web client's room menu (issue 22, item 5;
// js/record.js): a member opens the members dialog, 記録を書き出す, and saves the chronology as
// CSV (UTF-8 with a BOM, every message, the canary phone number in it: the internal record) and
// as HTML; then the published version of a review approved with the CLI, in which the canary
// is a ■■■. Then the whole review in the browser: the reviewer starts one from the same dialog,
// marks everything, accepts the helper's proposals (the phone number among them), is not
// offered to approve it herself (the server refuses it too: test_record); an admin's browser approves it; the published HTML has no canary.
// Screenshots: the dialog, the review page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startServer, launchBrowser, newPage, screenshot } from './lib/harness.mjs';
import { addStaff, loginAs, downloadsInto, downloadNames, waitForDownload, clearToasts } from './lib/staff.mjs';

const ROOM = '記録の部屋';
const CANARY = '090-4417-2231';
let srv, browser, roomId, reviewId;

before(async () => {
    srv = await startServer();
    await addStaff(srv, [{ login: 'sato', name: '佐藤 一郎' }, { login: 'suzuki', name: '鈴木 花子' }]);
    const r = await srv.kizuna(['--json', 'room', 'create', ROOM, '--members', 'sato,suzuki']);
    roomId = JSON.parse(r.stdout).room.room;
    await srv.kizuna(['send', ROOM, '県道12号 通行止め']);
    await srv.kizuna(['send', ROOM, `連絡先は ${CANARY} です`]);
    await srv.kizuna(['record', 'reviewer', roomId, 'sato']);
    await srv.kizuna(['login', 'sato'], { user: 'sato' });
    const c = await srv.kizuna(['--json', 'record', 'review', 'create', ROOM, '--title', '公開版'], { user: 'sato' });
    const review = JSON.parse(c.stdout).review;
    reviewId = review;
    await srv.kizuna(['record', 'review', 'mark', String(review), '--all'], { user: 'sato' });
    await srv.kizuna(['record', 'review', 'accept', String(review), '--all'], { user: 'sato' });
    await srv.kizuna(['record', 'review', 'approve', String(review)]);
    browser = await launchBrowser();
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
});

async function exportVia(page, { kind, format, review }) {
    await clearToasts(page);
    await page.click('#room-members');
    await page.waitForSelector('dialog[open] #members');
    const [btn] = await page.$$('xpath/.//dialog[@open]//button[contains(., "記録を書き出す")]');
    await btn.click();
    await page.waitForSelector('dialog[open] #rec-kind');
    await page.select('#rec-kind', kind);
    await page.select('#rec-format', format);
    if (review) await page.type('#rec-review', String(review));
    return page;
}

test('a member saves the room record as CSV and HTML, and the published version hides the canary', async () => {
    const page = await newPage(browser, { mobile: false });
    await loginAs(page, srv, 'suzuki');
    await page.goto(`${srv.url}/#/room/${roomId}`);
    await page.waitForSelector('#composer');
    const dir = await downloadsInto(page);

    await exportVia(page, { kind: 'export', format: 'csv' });
    await screenshot(page, 'record-export-dialog');
    await page.click('dialog[open] button[type="submit"]');
    // (Chromium saves a Japanese name as "download" without the ja_JP locale: the name the
    // page asked for is checked instead; staff.mjs.)
    const csv = await waitForDownload(dir);
    assert.match((await downloadNames(page)).at(-1), /^記録_記録の部屋_\d{4}-\d\d-\d\d\.csv$/);
    assert.deepEqual([...csv.bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'UTF-8 with a BOM, for Excel');
    const text = csv.bytes.toString('utf8');
    assert.ok(text.includes('県道12号 通行止め') && text.includes(CANARY), text.slice(0, 800));

    for (const f of readdirSync(dir)) rmSync(path.join(dir, f));
    await exportVia(page, { kind: 'export', format: 'html' });
    await page.click('dialog[open] button[type="submit"]');
    const html = (await waitForDownload(dir)).bytes.toString('utf8');
    assert.match(html, /<!DOCTYPE html>/i);
    assert.ok(html.includes(CANARY));

    for (const f of readdirSync(dir)) rmSync(path.join(dir, f));
    await exportVia(page, { kind: 'publish', format: 'html', review: reviewId });
    await page.click('dialog[open] button[type="submit"]');
    const pub = (await waitForDownload(dir)).bytes.toString('utf8');
    assert.match((await downloadNames(page)).at(-1), /^公開版_.*\.html$/);
    assert.ok(!pub.includes(CANARY) && !pub.includes('4417'), 'the published record holds no canary');
    assert.ok(pub.includes('■■■') && pub.includes('県道12号 通行止め'), pub.slice(0, 1500));
    assert.deepEqual(page.problems, []);
});

test('a reviewer reviews in the browser, an admin approves, and the published record hides the canary', async () => {
    const page = await newPage(await browser.createBrowserContext(), { mobile: false });
    await loginAs(page, srv, 'sato');
    await page.goto(`${srv.url}/#/room/${roomId}`);
    await page.waitForSelector('#composer');
    await exportVia(page, { kind: 'review_new', format: 'html' });
    await page.click('dialog[open] button[type="submit"]');
    await page.waitForFunction(() => location.hash.startsWith('#/review/'));
    const id = Number(await page.evaluate(() => location.hash.split('/').pop()));
    assert.ok(id > reviewId);
    await page.waitForSelector('#rv-mark-all');
    await page.click('#rv-mark-all');
    await page.waitForFunction(() => /公開対象 [1-9]/.test(document.querySelector('#review')?.innerText || ''));
    const items = await page.$$eval('#rv-list .rv-item', (l) => l.map((e) => e.innerText));
    assert.ok(items.some((x) => x.includes(CANARY)), `the phone number is proposed: ${items}`);
    await screenshot(page, 'record-review');
    await page.click('#rv-accept-all');
    await page.waitForFunction(() => !document.querySelector('#rv-list .rv-proposed'));
    assert.equal(await page.$('#rv-approve'), null, 'no approving one\'s own review');
    assert.ok(await page.$('#rv-approve-note'));
    const admin = await newPage(await browser.createBrowserContext(), { mobile: false });
    await loginAs(admin, srv, 'admin');
    await admin.goto(`${srv.url}/#/review/${id}`);
    await admin.waitForSelector('#rv-approve');
    await admin.click('#rv-approve');
    await admin.waitForFunction(() => /承認済み/.test(document.querySelector('#review')?.innerText || ''));

    const dir = await downloadsInto(page);
    await page.goto(`${srv.url}/#/room/${roomId}`);
    await page.waitForSelector('#composer');
    await exportVia(page, { kind: 'publish', format: 'html', review: id });
    await page.click('dialog[open] button[type="submit"]');
    const pub = (await waitForDownload(dir)).bytes.toString('utf8');
    assert.ok(!pub.includes(CANARY) && pub.includes('■■■') && pub.includes('県道12号 通行止め'));
    assert.deepEqual(admin.problems, []);
    assert.deepEqual(page.problems, []);
});
