// admin_mail.test.mjs - メール送信状況 (issue 24): with a mail relay that refuses connections
// and one try allowed, an urgent roll-call's mail to a user fails for good; the admin's page
// shows the relay on, nothing waiting, one failure with the user (a link to their page), the
// address, the subject and the relay's error; a staff member may not see it. Screenshots: the
// page on a desktop and on a phone.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, launchBrowser, newPage, waitForText } from './lib/harness.mjs';
import { addStaff, loginAs, screenshotBoth } from './lib/staff.mjs';

const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

// A loopback port with nothing listening on it: the relay refuses every connection.
async function closedPort() {
    const s = net.createServer();
    await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
    const { port } = s.address();
    await new Promise((resolve) => s.close(resolve));
    return port;
}

test('the admin sees the mail outbox and each failure', async () => {
    const srv = await startServer({
        config: {
            smtp_host: '127.0.0.1', smtp_port: await closedPort(), smtp_security: 'none',
            smtp_from: 'kizuna@city.example.lg.jp', mail_retry_max_tries: 1,
        },
    });
    cleanup.push(() => srv.stop());
    await addStaff(srv, [{ login: 'goro', name: '山田 五郎', dept: '総務課' }]);
    await srv.kizuna(['admin', 'user', 'update', 'goro', '--email', 'goro@example.jp']);
    await srv.kizuna(['notice', 'post', '--title', '安否確認', '--body', '回答してください', '--to', 'user:goro',
        '--urgent', '--choices', '無事|負傷']);

    const browser = await launchBrowser();
    cleanup.push(() => browser.close());
    const admin = await newPage(await browser.createBrowserContext(), { mobile: false });
    await loginAs(admin, srv, 'admin');
    await admin.goto(srv.url + '/#/admin/mail');
    await waitForText(admin, 'メール送信状況');
    // The relay answers nothing at all: the one try fails within a moment; refresh until then.
    const deadline = Date.now() + 15000;
    while (!(await admin.$eval('#am-failed', (e) => e.innerText).catch(() => '')).startsWith('1')) {
        assert.ok(Date.now() < deadline, 'the failure never showed');
        await new Promise((r) => setTimeout(r, 200));
        await admin.click('.am-page .adm-head button');
    }
    const summary = await admin.$eval('#am-summary', (e) => e.innerText);
    assert.match(summary, /有効/);
    assert.match(await admin.$eval('#am-pending', (e) => e.innerText), /^0/);
    const rows = await admin.$$eval('#am-failures tbody tr', (trs) => trs.map((tr) => tr.innerText));
    assert.equal(rows.length, 1);
    assert.match(rows[0], /goro/);
    assert.match(rows[0], /goro@example\.jp/);
    assert.match(rows[0], /【至急】【回答依頼】安否確認/);
    assert.match(rows[0], /connect/i, 'the relay\'s error is shown');
    assert.equal(await admin.$eval('#am-failures tbody a', (a) => a.getAttribute('href')), '#/admin/user/goro');
    const tab = await admin.$eval('.adm-tabs a[aria-current="page"]', (a) => a.innerText);
    assert.equal(tab, 'メール送信状況');
    await screenshotBoth(admin, 'admin-mail', '#am-failures');
    assert.deepEqual(admin.problems, []);

    // A staff member is refused by the server; the page says so.
    const staff = await newPage(await browser.createBrowserContext(), { mobile: false });
    await loginAs(staff, srv, 'goro');
    await staff.goto(srv.url + '/#/admin/mail');
    await waitForText(staff, 'この操作をする権限がありません');
    assert.equal(await staff.$$eval('#am-failures tbody tr', (trs) => trs.length), 0);
});
