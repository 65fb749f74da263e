// admin_users.test.mjs - the administration pages (issue 20, item 5): staff imported from a CSV
// file in the browser, with a dry run that lists every bad line (its number, the problem, the
// line itself) and offers no "apply" until the file is clean; applying the corrected file
// creates the good users and shows their one-time passwords, offered as a CSV with its BOM;
// the users page lists them, filters by department, role and expiry, edits one (an end date),
// exports the list as CSV; and a lost phone: the admin signs one of a user's sessions out from
// the sessions page, and that browser ends on the page that says why. Screenshots: the import
// preview, the users page, the sessions page.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, launchBrowser, newPage, waitForText, screenshot } from './lib/harness.mjs';
import { addStaff, loginAs, downloadsInto, downloadNames, waitForDownload, confirmOk, clearToasts, checkImport, importedPasswords, screenshotBoth } from './lib/staff.mjs';

const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

const HEADER = 'login,name,department,role,groups';
const GOOD = [
    'yamada,山田 太郎,総務課,staff,避難所班',
    'kimura,木村 花子,建設課,staff,道路班;消防団',
    'hayashi,林 次郎,危機管理課,hq,',
];
const BAD = [
    'Bad Login,悪い ログイン,総務課,staff,', // line 5: not a login id
    'mori,森 三郎,総務課,boss,', // line 6: unknown role
    'yamada,山田 二重,総務課,staff,', // line 7: a second yamada
];

test('CSV import: the dry run shows every bad line, the corrected file creates the users; users, export, a session revoked', async () => {
    const srv = await startServer();
    cleanup.push(() => srv.stop());
    await addStaff(srv, [{ login: 'tanaka', name: '田中 花子', dept: '総務課' }]);
    const dir = mkdtempSync(path.join(tmpdir(), 'kizuna-import-'));
    // ASCII names: chromium under a LANG the machine has no locale for cannot open others.
    const badFile = path.join(dir, 'staff.csv');
    const goodFile = path.join(dir, 'staff-fixed.csv');
    // As Excel saves 「CSV UTF-8」: a BOM and CRLF line ends.
    writeFileSync(badFile, '\ufeff' + [HEADER, ...GOOD, ...BAD].join('\r\n') + '\r\n');
    writeFileSync(goodFile, '\ufeff' + [HEADER, ...GOOD].join('\r\n') + '\r\n');

    const browser = await launchBrowser();
    cleanup.push(() => browser.close());
    const admin = await newPage(await browser.createBrowserContext(), { mobile: false });
    await loginAs(admin, srv, 'admin');

    // The dry run of the file with problems.
    const input = await checkImport(admin, srv, badFile);
    await admin.waitForSelector('#ai-problems');
    const rows = await admin.$$eval('#ai-problems tbody tr', (trs) => trs.map((tr) => [...tr.children].map((c) => c.innerText.trim())));
    assert.deepEqual(rows.map((r) => r[0]), ['5', '6', '7'], JSON.stringify(rows));
    assert.match(rows[0][1], /^「Bad Login」はログインIDに使えません/);
    assert.match(rows[1][1], /^権限「boss」は使えません[^]*unknown role 'boss'/);
    assert.match(rows[2][1], /^ログインID「yamada」は 2 行目と重複しています/);
    assert.equal(rows[0][2], BAD[0]);
    assert.equal(rows[2][2], BAD[2]);
    const summary = await admin.$eval('.ai-summary', (e) => e.innerText);
    assert.match(summary, /問題 3 件/);
    assert.ok(await admin.$eval('#ai-apply', (b) => b.hidden), 'no apply while the file has problems');
    await screenshot(admin, 'admin-import-preview');
    let list = await srv.kizuna(['admin', 'user', 'list']);
    assert.ok(!/yamada/.test(list.stdout), 'a dry run adds no one');

    // The same as Excel's plain 「CSV (コンマ区切り)」 saves it, Shift_JIS: the line shown is
    // decoded as the server read it.
    const sjisFile = path.join(dir, 'staff-sjis.csv');
    writeFileSync(sjisFile, execFileSync('iconv', ['-f', 'UTF-8', '-t', 'CP932'],
        { input: [HEADER, 'sasaki,佐々木 ①子,総務課,chief,'].join('\r\n') + '\r\n' }));
    await input.uploadFile(sjisFile);
    await admin.click('#ai-check');
    await admin.waitForFunction(() => /cp932/.test(document.querySelector('.ai-summary')?.innerText || ''));
    const sjisRows = await admin.$$eval('#ai-problems tbody tr', (trs) => trs.map((tr) => [...tr.children].map((c) => c.innerText.trim())));
    assert.deepEqual(sjisRows, [['2', "権限「chief」は使えません（admin、hq、staff のいずれか）\n(unknown role 'chief' (admin, hq or staff))",
        'sasaki,佐々木 ①子,総務課,chief,']]);

    // The corrected file: no problems, then apply, then the one-time passwords.
    await input.uploadFile(goodFile);
    await admin.click('#ai-check');
    await waitForText(admin, '問題はありません');
    assert.match(await admin.$eval('.ai-summary', (e) => e.innerText), /追加 3 人/);
    await admin.click('#ai-apply');
    await waitForText(admin, '登録しました: 追加 3 人、変更 0 人、変更なし 0 人');
    const pw = await importedPasswords(admin);
    assert.deepEqual(Object.keys(pw).sort(), ['hayashi', 'kimura', 'yamada']);
    const dl = await downloadsInto(admin);
    await admin.click('#ai-passwords-csv');
    const file = await waitForDownload(dl);
    assert.deepEqual([...file.bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
    assert.match(file.bytes.toString('utf8'), /"login","one_time_password"\n"(hayashi|kimura|yamada)","[^"]{20}"/);
    assert.match((await downloadNames(admin))[0], /^一時パスワード_.*\.csv$/);
    list = await srv.kizuna(['admin', 'user', 'list']);
    for (const l of ['yamada', 'kimura', 'hayashi'])
        assert.match(list.stdout, new RegExp(`^${l} `, 'm'));

    // The users page: filters.
    await srv.kizuna(['admin', 'user', 'update', 'kimura', '--expires', '3d']);
    await admin.goto(srv.url + '/#/admin/users');
    await admin.waitForSelector('#au-users tbody tr');
    const logins = () => admin.$$eval('#au-users tbody th', (ths) => ths.map((t) => t.innerText.trim()));
    assert.deepEqual(await logins(), ['admin', 'hayashi', 'kimura', 'tanaka', 'yamada']);
    await admin.select('#au-dept', '総務課');
    assert.deepEqual(await logins(), ['tanaka', 'yamada']);
    await admin.select('#au-dept', '');
    await admin.select('#au-role', 'hq');
    assert.deepEqual(await logins(), ['hayashi']);
    await admin.select('#au-role', '');
    await admin.select('#au-expiry', 'soon');
    assert.deepEqual(await logins(), ['kimura']);
    await admin.select('#au-expiry', '');
    await admin.select('#au-state', 'otp');
    assert.deepEqual(await logins(), ['hayashi', 'kimura', 'yamada']);
    await admin.select('#au-state', '');
    await screenshotBoth(admin, 'admin-users', '#au-users tbody tr');

    // Edit: a department and an end date for yamada.
    await admin.click('#au-users a[href="#/admin/user/yamada"]');
    await admin.waitForSelector('#au-submit');
    await admin.waitForSelector('.au-form-page .au-state'); // the user's data is in the form
    const deptInput = await admin.waitForSelector('.au-form-page input[list="au-depts"]');
    assert.equal(await deptInput.evaluate((e) => e.value), '総務課');
    await deptInput.evaluate((e) => { e.value = ''; });
    await deptInput.type('建設課');
    await admin.click('#au-submit');
    await waitForText(admin, 'yamada を保存しました');
    list = await srv.kizuna(['--json', 'admin', 'user', 'list']);
    const yamada = JSON.parse(list.stdout).users.find((u) => u.login === 'yamada');
    assert.equal(yamada.department, '建設課');
    assert.deepEqual(yamada.groups, ['避難所班']);

    // A new one-time password, shown once; disable and enable.
    await clearToasts(admin); // a toast over a button would take the click
    await admin.click('#au-reset');
    await confirmOk(admin);
    const otp = await (await admin.waitForSelector('#au-otp')).evaluate((e) => e.textContent);
    assert.match(otp, /^\S{20}$/);
    await clearToasts(admin);
    await admin.click('#au-disable');
    await confirmOk(admin);
    await admin.waitForSelector('#au-enable');
    await waitForText(admin, 'yamada を無効にしました');
    assert.match(await admin.$eval('.au-state', (e) => e.innerText), /無効/);
    await clearToasts(admin);
    await admin.click('#au-enable');
    await admin.waitForSelector('#au-disable');
    list = await srv.kizuna(['--json', 'admin', 'user', 'list']);
    const again = JSON.parse(list.stdout).users.find((u) => u.login === 'yamada');
    assert.equal(again.disabled, false);
    assert.equal(again.must_change_password, true);

    // Export: the server's CSV, BOM first; it imports back.
    await admin.goto(srv.url + '/#/admin/users');
    await admin.waitForSelector('#au-export');
    const dl2 = await downloadsInto(admin);
    await admin.click('#au-export');
    const exp = await waitForDownload(dl2);
    assert.deepEqual([...exp.bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
    const csv = exp.bytes.toString('utf8');
    assert.match(csv, /^\ufeff"login","name","department","role","groups","email","phone"\n/);
    assert.match(csv, /"kimura","木村 花子","建設課","staff","消防団;道路班","",""/);
    assert.match((await downloadNames(admin)).at(-1), /^ユーザー一覧_.*\.csv$/);

    // A lost phone: tanaka is logged in; the admin signs that session out.
    const phone = await newPage(await browser.createBrowserContext(), { mobile: true });
    await loginAs(phone, srv, 'tanaka');
    await admin.goto(srv.url + '/#/admin/sessions');
    await admin.waitForSelector('#as-login');
    await admin.type('#as-login', 'tanaka');
    await admin.keyboard.press('Enter');
    await admin.waitForSelector('#as-sessions tbody button[data-session]');
    await clearToasts(admin);
    await screenshot(admin, 'admin-sessions');
    await clearToasts(admin);
    await admin.click('#as-sessions tbody button[data-session]');
    await confirmOk(admin);
    await waitForText(phone, '管理者がこの端末をログアウトさせました');
    await waitForText(admin, 'をログアウトさせました');

    // Her CLI has photo keys (a registered device): revoking the device signs it out too.
    await srv.kizuna(['login', 'tanaka'], { user: 'tanaka' });
    await admin.click('.as-page form button[type="submit"]');
    await admin.waitForSelector('.as-devices tbody button.btn-danger');
    await clearToasts(admin);
    await admin.click('.as-devices tbody button.btn-danger');
    await confirmOk(admin);
    await admin.waitForFunction(() => /取り消し済み/.test(document.querySelector('.as-devices')?.innerText || ''));
    // Its session ended with it (the sessions table is drawn again after the devices': wait).
    await admin.waitForFunction(() => document.querySelectorAll('#as-sessions tbody button[data-session]').length === 0,
        { timeout: 10000 }).catch(() => {});
    assert.equal(await admin.$$eval('#as-sessions tbody button[data-session]', (b) => b.length), 0, 'its session ended with it');
    const cli = await srv.kizuna(['rooms'], { user: 'tanaka', check: false });
    assert.notEqual(cli.code, 0);
    assert.match(cli.stderr + cli.stdout, /revoked|log in again/);

    assert.deepEqual(admin.problems, []);
});
