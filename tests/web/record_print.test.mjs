// record_print.test.mjs - the record's HTML export (issue 22, docs/records.md) renders in
// Chromium and prints to an A4 PDF with its Japanese text: a day of talk exported with
// `kizuna record export --format html`, opened in the browser, printed (page.pdf, the page's
// own @page size), and the published version of an approved review too. Screenshots of both
// in print media go to web-artifacts/ (docs/records-print.png is one of them).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, launchBrowser, newPage, screenshot } from './lib/harness.mjs';
import { addStaff } from './lib/staff.mjs';

let srv, browser, room;

const CANARY = '090-1234-5678';

before(async () => {
    srv = await startServer();
    browser = await launchBrowser();
    await addStaff(srv, [
        { login: 'tanaka', name: '田中 一郎' },
        { login: 'sato', name: '佐藤 美咲' },
    ]);
    const created = await srv.kizuna(['--json', 'room', 'create', '台風10号 対策本部', '--members', 'tanaka,sato']);
    room = JSON.parse(created.stdout).room.room;
    await srv.kizuna(['login', 'tanaka'], { user: 'tanaka' });
    await srv.kizuna(['login', 'sato'], { user: 'sato' });
    // A day of talk: enough rows for several A4 pages, a canary, an edit and a deletion.
    const lines = ['県道12号線が冠水しています。通行止めにします。', '避難所（第一小学校）を開設しました。現在12名。',
        '給水車の到着は15時の見込みです。', '停電: 大字西 約300戸。復旧は未定。'];
    for (let i = 0; i < 60; i++)
        await srv.kizuna(['send', room, `${i + 1}. ${lines[i % lines.length]}`], { user: i % 2 ? 'sato' : 'tanaka' });
    await srv.kizuna(['send', room, `要救助者の連絡先 ${CANARY}、住所 松山市一番町四丁目7番地2`], { user: 'tanaka' });
    await srv.kizuna(['send', room, '誤送信です'], { user: 'sato' });
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
});

/** Opens an exported page in Chromium, prints it; the number of PDF pages and its fonts. The
 * PDF is shown in Chromium's own viewer for a screenshot (shot-pdf): what a person printing it
 * sees, page numbers at the foot included. */
async function printed(file, shot) {
    const html = readFileSync(file, 'utf8');
    const page = await newPage(browser, { mobile: false });
    await page.setContent(html, { waitUntil: 'load' });
    assert.deepEqual(page.problems, [], 'the page renders without an error or a fetch');
    await page.emulateMediaType('print');
    await screenshot(page, shot, { fullPage: false });
    const pdf = Buffer.from(await page.pdf({ preferCSSPageSize: true, printBackground: true }));
    await page.close();
    const pdfFile = file.replace(/\.html$/, '.pdf');
    writeFileSync(pdfFile, pdf);
    const viewer = await browser.newPage(); // Chromium's PDF viewer: its own page, not watched
    await viewer.setViewport({ width: 900, height: 1200 });
    await viewer.goto('file://' + pdfFile, { waitUntil: 'networkidle0' });
    await viewer.waitForFunction(() => document.readyState === 'complete');
    await screenshot(viewer, shot + '-pdf', { fullPage: false });
    await viewer.close();
    const text = pdf.toString('latin1');
    assert.ok(text.startsWith('%PDF-'), 'a PDF');
    const pages = (text.match(/\/Type\s*\/Page[^s]/g) || []).length;
    const media = /\/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]/.exec(text);
    const fonts = [...text.matchAll(/\/(?:BaseFont|FontName)\s*\/([A-Za-z0-9+-]+)/g)].map((m) => m[1]);
    return { html, pages, media, fonts };
}

test('the chronology prints on A4 pages with a Japanese font', async () => {
    const file = path.join(srv.dataDir, 'record.html');
    await srv.kizuna(['record', 'export', room, '--format', 'html', '--out', file], { user: 'tanaka' });
    const { html, pages, media, fonts } = await printed(file, 'record-print');
    assert.ok(html.includes(CANARY) && html.includes('台風10号 対策本部'));
    assert.ok(pages >= 2, `62 messages take more than one page (${pages})`);
    // A4 is 595.28 x 841.89 points.
    assert.ok(media && Math.abs(Number(media[1]) - 595.3) < 1 && Math.abs(Number(media[2]) - 841.9) < 1,
        `an A4 page: ${media?.[0]}`);
    assert.ok(fonts.some((f) => /CJK|JP|Gothic/i.test(f)), `the Japanese text is set in a Japanese font: ${fonts.join(', ')}`);
});

test('the published record prints with its redactions and without the canary', async () => {
    await srv.kizuna(['record', 'reviewer', room, 'sato']);
    const created = await srv.kizuna(['--json', 'record', 'review', 'create', room], { user: 'sato' });
    const review = String(JSON.parse(created.stdout).review);
    await srv.kizuna(['record', 'review', 'mark', review, '--all'], { user: 'sato' });
    await srv.kizuna(['record', 'review', 'accept', review, '--all'], { user: 'sato' });
    await srv.kizuna(['record', 'review', 'approve', review]);
    const file = path.join(srv.dataDir, 'published.html');
    await srv.kizuna(['record', 'publish', review, '--format', 'html', '--out', file], { user: 'tanaka' });
    const { html, pages } = await printed(file, 'record-published-print');
    assert.ok(!html.includes(CANARY) && !html.includes('四丁目'), 'no canary in the published page');
    assert.ok(html.includes('■■■'));
    assert.ok(pages >= 2, `${pages} pages`);
});
