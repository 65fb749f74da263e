// admin_invite.test.mjs - an invitation for dispatched staff (issue 20, item 5): the admin makes
// one in the browser; the page draws the join link as a QR code (checked module by module
// against the QR encoding of exactly the link shown) and the link opens this web client's join
// page on a phone-sized browser, with the code filled in; joining creates the account with the
// invitation's department and end date, logs the phone in with one session, and the list shows
// the invitation used once. Screenshots: the invitation with its QR code, the join page.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, waitForText, screenshot } from './lib/harness.mjs';
import { loginAs, clearToasts } from './lib/staff.mjs';

const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

test('an invitation shows a QR code of its link, which opens the join page on a phone', async () => {
    const srv = await startServer();
    cleanup.push(() => srv.stop());
    const browser = await launchBrowser();
    cleanup.push(() => browser.close());
    const admin = await newPage(await browser.createBrowserContext(), { mobile: false });
    await loginAs(admin, srv, 'admin');

    await admin.goto(srv.url + '/#/admin/invites');
    await admin.waitForSelector('#iv-create');
    assert.equal(await admin.$eval('#iv-dept', (e) => e.value), '応援職員'); // the default
    await admin.$eval('#iv-dept', (e) => { e.value = ''; });
    await admin.type('#iv-dept', '応援職員');
    await admin.type('#iv-groups', '避難所班');
    await admin.type('#iv-note', '仙台市からの応援');
    // the accounts end in 30 days (a date input takes yyyy-mm-dd through its value)
    const end = new Date(Date.now() + 30 * 86400000);
    const ymd = `${end.getFullYear()}-${String(end.getMonth() + 1).padStart(2, '0')}-${String(end.getDate()).padStart(2, '0')}`;
    await admin.$eval('#iv-account-expires', (e, v) => { e.value = v; }, ymd);
    await admin.click('#iv-create');
    await admin.waitForSelector('#iv-result canvas.iv-qr');
    const code = await admin.$eval('#iv-code', (e) => e.textContent);
    assert.match(code, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){4}$/);
    const link = await admin.$eval('#iv-link', (a) => a.href);
    assert.equal(link, `${srv.url}/#/join/${code}`);

    // The canvas holds the QR code of exactly that link: every module's centre pixel against
    // the encoding of the link (the vendored encoder, loaded the way the page loads it).
    const check = await admin.evaluate(async (text) => {
        const { default: qrcode } = await import('/vendor/qrcode-generator/qrcode.js');
        const qr = qrcode(0, 'M');
        qr.addData(text);
        qr.make();
        const n = qr.getModuleCount();
        const c = document.querySelector('canvas.iv-qr');
        const px = c.width / (n + 8);
        const g = c.getContext('2d');
        let wrong = 0, dark = 0;
        for (let y = -4; y < n + 4; y++)
            for (let x = -4; x < n + 4; x++) {
                const d = g.getImageData(Math.floor((x + 4 + 0.5) * px), Math.floor((y + 4 + 0.5) * px), 1, 1).data;
                const isDark = d[0] < 128;
                const want = x >= 0 && y >= 0 && x < n && y < n && qr.isDark(y, x);
                if (isDark !== want) wrong++;
                if (isDark) dark++;
            }
        return { n, wrong, dark, label: c.getAttribute('aria-label') };
    }, link);
    assert.equal(check.wrong, 0, JSON.stringify(check));
    assert.ok(check.n >= 21 && check.dark > 100, JSON.stringify(check));
    assert.ok(check.label.includes(link), 'the QR code is labelled with its link');
    await clearToasts(admin);
    await screenshot(admin, 'admin-invite-qr');

    // The phone opens the link: the join page, the code filled in.
    const phone = await newPage(await browser.createBrowserContext(), { mobile: true });
    await phone.goto(link);
    await phone.waitForSelector('#jn-submit');
    assert.equal(await phone.$eval('#jn-code', (e) => e.value), code);
    await phone.type('#jn-login', 'sendai.sato');
    await phone.type('#jn-name', '佐藤 次郎（仙台市）');
    await phone.type('#jn-password', 'sendai-password-1');
    await phone.type('#jn-again', 'sendai-password-1');
    await screenshot(phone, 'join-phone');
    await phone.click('#jn-submit');
    await phone.waitForFunction(() => location.hash === '#/notices');
    await waitForText(phone, 'お知らせ');
    await srv.kizuna(['login', 'admin']);
    const who = await srv.kizuna(['--json', 'admin', 'user', 'list']);
    const u = JSON.parse(who.stdout).users.find((x) => x.login === 'sendai.sato');
    assert.equal(u.name, '佐藤 次郎（仙台市）');
    assert.equal(u.department, '応援職員');
    assert.deepEqual(u.groups, ['避難所班']);
    // midnight of that day in the browser's zone (the harness runs chromium in Asia/Tokyo)
    const midnight = await phone.evaluate((v) => { const [y, m, d] = v.split('-').map(Number); return new Date(y, m - 1, d).getTime(); }, ymd);
    assert.equal(u.expires_at, midnight);
    assert.equal(u.must_change_password, false);
    const sessions = await srv.kizuna(['admin', 'sessions', 'sendai.sato']);
    assert.equal(sessions.stdout.split('\n').filter((l) => /last seen/.test(l)).length, 1, sessions.stdout);

    // The list: used once of five; revoking it ends the code.
    await admin.reload();
    await admin.waitForFunction(() => /1\/5/.test(document.querySelector('.iv-list')?.innerText || ''));
    await admin.click('.iv-list button.btn-danger');
    await admin.waitForSelector('dialog[open] button[type="submit"]');
    await admin.click('dialog[open] button[type="submit"]');
    await waitForText(admin, '招待 1 を無効にしました');
    const again = await newPage(await browser.createBrowserContext(), { mobile: true });
    await again.goto(link);
    await again.waitForSelector('#jn-submit');
    await again.type('#jn-login', 'sendai.ito');
    await again.type('#jn-password', 'sendai-password-2');
    await again.type('#jn-again', 'sendai-password-2');
    await again.click('#jn-submit');
    await waitForText(again, '参加できません: この招待コードは無効にされました');

    assert.deepEqual(admin.problems, []);
    assert.deepEqual(phone.problems, []);
});
