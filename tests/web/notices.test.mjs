// notices.test.mjs - a roll-call (安否確認) from HQ's browser to staff's phones (issue 20, item
// 4): HQ (role hq) posts it from the web form; a staff member already logged in on a phone-sized
// browser gets the urgent alert banner live, sees it pinned on top of the board and answers in
// one tap; the HQ report page shows the answer in its totals and its department table and lists
// the others as missing; the remind button reminds exactly those; the CSV downloads as a file
// Excel reads (UTF-8 with its BOM) with a Japanese name. A second notice, posted from the CLI,
// asks for 確認しました, which the phone gives in one tap. Screenshots: the board, the banner,
// the report.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, waitForText, screenshot } from './lib/harness.mjs';
import { addStaff, loginAs, downloadsInto, downloadNames, waitForDownload, confirmOk, clearToasts, screenshotBoth } from './lib/staff.mjs';

const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

test('a roll-call posted by HQ in the browser is answered on a phone in one tap and shows in the report', async () => {
    const srv = await startServer();
    cleanup.push(() => srv.stop());
    await addStaff(srv, [
        { login: 'suzuki', name: '鈴木 一郎', dept: '危機管理課', role: 'hq' },
        { login: 'tanaka', name: '田中 花子', dept: '総務課' },
        { login: 'sato', name: '佐藤 健', dept: '建設課' },
        { login: 'ito', name: '伊藤 真理', dept: '建設課' },
    ]);

    const browser = await launchBrowser();
    cleanup.push(() => browser.close());
    const hqCtx = await browser.createBrowserContext();
    const phoneCtx = await browser.createBrowserContext();
    const hq = await newPage(hqCtx, { mobile: false });
    const phone = await newPage(phoneCtx, { mobile: true });

    // The staff member is on the board before anything is posted: the alert must come live.
    await loginAs(phone, srv, 'tanaka', { next: '#/notices' });
    await phone.waitForSelector('.nt-board');
    await waitForText(phone, 'お知らせはありません');

    // HQ posts the roll-call from the web form (the defaults: urgent, the four usual choices).
    await loginAs(hq, srv, 'suzuki');
    await hq.goto(srv.url + '/#/notices');
    await hq.waitForSelector('a[href="#/notices/new?rollcall=1"]');
    await hq.click('a[href="#/notices/new?rollcall=1"]');
    await hq.waitForSelector('.nt-form');
    const title = await hq.$eval('.nt-form input[type="text"]', (e) => e.value);
    assert.equal(title, '安否確認');
    await hq.click('.nt-form button[type="submit"]');
    await hq.waitForFunction(() => /^#\/notices\/\d+\/report$/.test(location.hash));
    const id = Number(await hq.evaluate(() => location.hash.split('/')[2]));
    await hq.waitForSelector('#rp-totals');
    await waitForText(hq, '集計: 安否確認');

    // The phone: the urgent banner arrives by itself, the notice is pinned on top, unread.
    await phone.waitForSelector('.banner-alert');
    const bannerText = await phone.$eval('.banner-alert', (e) => e.innerText);
    assert.match(bannerText, /緊急のお知らせ: 安否確認/);
    await phone.waitForSelector(`.nt-section .nt-card-urgent[data-notice="${id}"]`);
    const firstSection = await phone.$eval('.nt-section', (s) => s.innerText);
    assert.match(firstSection, /重要・要対応/);
    assert.match(firstSection, /安否確認/);
    assert.match(firstSection, /未読/);
    await screenshot(phone, 'notices-board-phone-alert');

    // One tap answers.
    await phone.click(`.nt-card[data-notice="${id}"] button[data-choice="1"]`);
    await waitForText(phone, '回答済み: 無事・出勤可');
    await phone.waitForSelector(`.nt-card[data-notice="${id}"] button[data-choice="1"][aria-pressed="true"]`);
    assert.equal(await phone.$('.banner-alert'), null, 'answering ends the alert banner');

    // A comment after the answer keeps the answer.
    await clearToasts(phone); // a toast over a button would take the tap
    await phone.type(`.nt-card[data-notice="${id}"] .nt-comment`, '自宅から徒歩で向かいます');
    await phone.click(`.nt-card[data-notice="${id}"] .nt-comment-form button`);
    await waitForText(phone, 'コメントを送りました');

    // HQ's report refreshes itself (every 10 s); the refresh button is the same load, now.
    await hq.click('#rp-refresh');
    await hq.waitForFunction(() => {
        const s = document.querySelector('#rp-totals')?.innerText || '';
        return /回答済み\s*1\s*\/ 4/.test(s);
    });
    const depts = await hq.$$eval('#rp-depts tbody tr', (rows) => rows.map((r) => [...r.children].map((c) => c.innerText.trim())));
    const soumu = depts.find((r) => r[0] === '総務課');
    // 部署, 対象, 既読, 回答済み, 無事・出勤可, 無事・出勤不可, 負傷, その他, 未回答
    assert.deepEqual(soumu, ['総務課', '1', '1', '1', '1', '0', '0', '0', '0'], JSON.stringify(depts));
    const kensetsu = depts.find((r) => r[0] === '建設課');
    assert.deepEqual(kensetsu.slice(0, 4), ['建設課', '2', '0', '0']);
    assert.equal(kensetsu.at(-1), '2');
    const missing = await hq.$eval('#rp-not_responded', (e) => e.innerText);
    assert.match(missing, /未回答（3）/);
    for (const name of ['佐藤 健', '伊藤 真理', 'Administrator'])
        assert.ok(missing.includes(name), `${name} in ${missing}`);
    assert.ok(!missing.includes('田中 花子'), missing);
    const answers = await hq.$eval('#rp-answers', (e) => e.innerText);
    assert.match(answers, /無事・出勤可\s*1（25%）/);
    await screenshotBoth(hq, 'notice-report', '#rp-depts');

    // Remind the missing: exactly the three who have not answered. sato, on the talk page,
    // gets the reminder's banner; tanaka, who answered, does not.
    const sato = await newPage(await browser.createBrowserContext(), { mobile: true });
    await loginAs(sato, srv, 'sato');
    await hq.click('#rp-remind');
    await confirmOk(hq);
    await waitForText(hq, '3 人に再通知しました');
    // A second reminder at once rings nobody: the page says when it can go.
    await hq.click('#rp-remind');
    await confirmOk(hq);
    await waitForText(hq, '再通知したばかりです。約5分後にもう一度送れます');
    await sato.waitForSelector('.banner-warn');
    assert.match(await sato.$eval('.banner-warn', (e) => e.innerText), /再通知: 安否確認/);
    await sato.click('.banner-warn button:not(.banner-close)');
    await sato.waitForFunction((n) => location.hash === `#/notices/${n}`, {}, id);
    await sato.waitForSelector(`.nt-card-full button[data-choice="3"]`);
    assert.equal(await sato.$('.banner-warn'), null, 'opening the notice ends its banner');
    await clearToasts(sato);
    await screenshot(sato, 'notice-detail-phone');
    assert.equal(await phone.$('.banner-warn'), null);

    // A correction: the phone's board shows the new text and 第2版 by itself.
    await hq.click('#rp-edit');
    await hq.waitForSelector('dialog[open] #rp-edit-body');
    await hq.$eval('#rp-edit-body', (e) => { e.value = ''; });
    await hq.type('#rp-edit-body', '地震が発生しました。18時までに安否を回答してください。');
    await hq.click('dialog[open] button[type="submit"]');
    await waitForText(hq, '訂正しました（第2版）');
    await waitForText(phone, '18時までに安否を回答してください');
    await waitForText(phone, '第2版');

    // The CSV, as Excel needs it: the BOM first, a Japanese file name.
    const dir = await downloadsInto(hq);
    await hq.click('#rp-csv');
    const dl = await waitForDownload(dir);
    const [asked] = await downloadNames(hq);
    assert.match(asked, /^安否確認_集計_\d{4}-\d\d-\d\d_\d{4}\.csv$/);
    assert.deepEqual([...dl.bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'UTF-8 BOM');
    const csv = dl.bytes.toString('utf8');
    assert.match(csv, /"総務課","tanaka","田中 花子",/);
    assert.match(csv, /"無事・出勤可","自宅から徒歩で向かいます"/);
    assert.equal(csv.split('\n').filter(Boolean).length, 5, csv); // header + 4 recipients

    // A notice from the CLI that asks for 確認しました: pushed to the board, one tap.
    await srv.kizuna(['notice', 'post', '--title', '避難所の開設について', '--body', '本日18時に第二体育館を避難所として開設します。',
        '--to', 'dept:総務課', '--ack'], { user: 'admin' });
    await phone.waitForSelector('.nt-card .nt-ack:not([disabled])');
    await clearToasts(phone);
    await phone.click('.nt-card .nt-ack:not([disabled])');
    await waitForText(phone, '✓ 確認済み');
    await clearToasts(phone);
    await screenshot(phone, 'notices-board-phone');
    const ack = await srv.kizuna(['notice', 'report', '2'], { user: 'admin' });
    assert.match(ack.stdout, /TOTAL\s+1\s+1\s+1\s+0/, ack.stdout);

    // A notice to one department from HQ's form: only its people receive it.
    await hq.goto(srv.url + '/#/notices/new');
    await hq.waitForSelector('.nt-form input[name="dept"][value="建設課"]');
    await hq.type('.nt-form input[type="text"]', '県道12号線の通行止め');
    await hq.type('.nt-form textarea', '県道12号線は冠水のため通行止めです。迂回してください。');
    await hq.click('.nt-form .adm-fieldset:nth-of-type(2) input[type="checkbox"]'); // 全職員 off
    await hq.click('.nt-form input[name="dept"][value="建設課"]');
    await hq.click('.nt-form button[type="submit"]');
    await hq.waitForFunction(() => /^#\/notices\/3\/report$/.test(location.hash));
    await hq.waitForSelector('#rp-totals');
    assert.match(await hq.$eval('#rp-totals', (e) => e.innerText), /対象者\s*2\b/);
    assert.deepEqual(await hq.$$eval('#rp-depts tbody th', (ths) => ths.map((x) => x.innerText.trim())), ['建設課', '合計']);

    // HQ's own board lists what HQ sent, each with its report.
    await hq.goto(srv.url + '/#/notices');
    await hq.waitForSelector(`.nt-posted li[data-notice="${id}"] a[href="#/notices/${id}/report"]`);

    assert.deepEqual(hq.problems, []);
    assert.deepEqual(phone.problems, []);
});
