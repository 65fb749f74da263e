// rollcall_flow.test.mjs - issue 20's "Done when", its notices and administration half, all in
// browsers: the admin imports two staff from a CSV file and gets their one-time passwords from
// the page, posts a roll-call; each of the two logs in with that password on another browser
// (one phone-sized), changes it as asked, finds the roll-call on top of the board and answers in
// one tap; the admin's report shows both answers by department, and its CSV has both rows.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, launchBrowser, newPage, waitForText, screenshot } from './lib/harness.mjs';
import { loginAs, downloadsInto, waitForDownload, checkImport, importedPasswords } from './lib/staff.mjs';

const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

// Logs in with a one-time password and replaces it, as a new member of staff does.
async function firstLogin(page, srv, login, otp, newPassword) {
    await page.goto(srv.url + '/#/login');
    await page.waitForSelector('#login-id');
    await page.type('#login-id', login);
    await page.type('#login-password', otp);
    await page.click('#login-submit');
    await page.waitForFunction(() => location.hash === '#/passwd');
    await page.waitForSelector('#passwd-new');
    await page.type('#passwd-new', newPassword);
    await page.type('#passwd-again', newPassword);
    await page.click('#passwd-submit');
    await page.waitForFunction(() => !location.hash.startsWith('#/passwd'));
}

test('import staff, post a roll-call, two staff answer on their own browsers, HQ downloads the report', async () => {
    const srv = await startServer();
    cleanup.push(() => srv.stop());
    const dir = mkdtempSync(path.join(tmpdir(), 'kizuna-flow-'));
    const file = path.join(dir, 'staff.csv');
    writeFileSync(file, '\ufefflogin,name,department,role,groups\r\n' +
        'kobayashi,小林 由美,総務課,staff,\r\nwatanabe,渡辺 誠,建設課,staff,道路班\r\n');

    const browser = await launchBrowser();
    cleanup.push(() => browser.close());
    const admin = await newPage(await browser.createBrowserContext(), { mobile: false });
    await loginAs(admin, srv, 'admin');

    // Import, and read the one-time passwords off the page.
    await checkImport(admin, srv, file);
    await waitForText(admin, '問題はありません');
    await admin.click('#ai-apply');
    const otp = await importedPasswords(admin);
    assert.deepEqual(Object.keys(otp).sort(), ['kobayashi', 'watanabe']);

    // The roll-call.
    await admin.goto(srv.url + '/#/notices/new?rollcall=1');
    await admin.waitForSelector('.nt-form button[type="submit"]');
    await admin.click('.nt-form button[type="submit"]');
    await admin.waitForFunction(() => location.hash === '#/notices/1/report');
    await admin.waitForSelector('#rp-totals');

    // Two staff, two browsers, one a phone: first login, then one tap each.
    const phone = await newPage(await browser.createBrowserContext(), { mobile: true });
    const pc = await newPage(await browser.createBrowserContext(), { mobile: false });
    const answers = [[phone, 'kobayashi', 1, '無事・出勤可'], [pc, 'watanabe', 2, '無事・出勤不可']];
    for (const [page, login, choice, text] of answers) {
        await firstLogin(page, srv, login, otp[login], `${login}-own-password`);
        await page.goto(srv.url + '/#/notices');
        await page.waitForSelector(`.nt-section .nt-card-urgent[data-notice="1"] button[data-choice="${choice}"]`);
        if (page === pc) { // the keyboard alone: focus the choice, Enter
            await page.focus(`.nt-card[data-notice="1"] button[data-choice="${choice}"]`);
            await page.keyboard.press('Enter');
        } else {
            await page.tap(`.nt-card[data-notice="1"] button[data-choice="${choice}"]`);
        }
        await waitForText(page, `回答済み: ${text}`);
        if (page === pc) // the focus stays on the answer just given
            assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-pressed')), 'true');
    }
    await screenshot(phone, 'rollcall-flow-phone');

    // HQ's report: both answered, one in each department.
    await admin.click('#rp-refresh');
    await admin.waitForFunction(() => /回答済み\s*2\s*\/ 2/.test(document.querySelector('#rp-totals')?.innerText || ''));
    const depts = await admin.$$eval('#rp-depts tbody tr', (rows) => rows.map((r) => [...r.children].map((c) => c.innerText.trim())));
    assert.deepEqual(depts, [
        ['建設課', '1', '1', '1', '0', '1', '0', '0', '0'],
        ['総務課', '1', '1', '1', '1', '0', '0', '0', '0'],
        ['合計', '2', '2', '2', '1', '1', '0', '0', '0'],
    ]);
    await waitForText(admin, '全員が対応済みです');
    const dl = await downloadsInto(admin);
    await admin.click('#rp-csv');
    const csv = await waitForDownload(dl);
    assert.deepEqual([...csv.bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
    const text = csv.bytes.toString('utf8');
    assert.match(text, /"建設課","watanabe","渡辺 誠","[^"]+","","無事・出勤不可",/);
    assert.match(text, /"総務課","kobayashi","小林 由美","[^"]+","","無事・出勤可",/);

    for (const p of [admin, phone, pc])
        assert.deepEqual(p.problems, []);
});
