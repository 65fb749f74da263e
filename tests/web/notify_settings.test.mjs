// notify_settings.test.mjs - a person's notification choices in the web client (issue 24,
// item 3): from the notices page, beside 「通知を受け取る」, the settings view shows what reaches
// them by push and e-mail per kind (notify.prefs), refuses to turn a required kind off on both
// channels, and keeps previews and quiet hours (push.quiet) across a reload; a group room's
// members panel watches the room for photos (room.watch); the service worker shows a mention
// and a preview the way the person chose, and a tap opens the room at the message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, screenshot, waitForText } from './lib/harness.mjs';
import { addStaff, loginAs } from './lib/staff.mjs';

let srv, browser;

before(async () => {
    srv = await startServer({ config: { push_subject: 'mailto:bousai@example.lg.jp' } });
    browser = await launchBrowser({ mobile: true });
    await addStaff(srv, [{ login: 'tanaka', name: '田中 花子' }, { login: 'sato', name: '佐藤 一郎' }]);
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
});

const checked = (page, sel) => page.$eval(sel, (e) => e.checked);
const call = (page, op, args) => page.evaluate(async (op, args) =>
    (await import('/js/api.js')).api.call(op, args), op, args);

async function until(fn, what, ms = 15000) {
    const deadline = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
    }
}

test('the settings view changes what reaches a person, refuses silencing a required kind, and keeps it across a reload', async () => {
    const page = await newPage(browser, { mobile: true });
    await loginAs(page, srv, 'tanaka');
    await page.goto(srv.url + '/#/notices');
    await page.waitForSelector('#push-box #notify-settings');
    await screenshot(page, 'notify-link-phone');
    await page.click('#notify-settings');
    await page.waitForSelector('#ns-form');
    assert.equal(await page.evaluate(() => location.hash), '#/notify');
    await screenshot(page, 'notify-settings-phone');
    // The defaults: every push kind on, urgent kinds and reminders by e-mail, no digest, no
    // previews, no quiet hours; the digest is e-mail only and direct messages push only.
    assert.equal(await checked(page, '#ns-push-direct'), true);
    assert.equal(await checked(page, '#ns-email-notice'), true);
    assert.equal(await checked(page, '#ns-email-digest'), false);
    assert.equal(await page.$('#ns-push-digest'), null, 'the digest offered by push');
    assert.equal(await page.$('#ns-email-direct'), null, 'direct messages offered by e-mail');
    assert.equal(await checked(page, '#ns-previews'), false);
    assert.equal(await checked(page, '#ns-quiet-on'), false);

    // Urgent notices off on both channels: refused here, and nothing reaches the server.
    await page.click('#ns-push-notice');
    await page.click('#ns-email-notice');
    await page.click('#ns-save');
    await waitForText(page, '「緊急のお知らせ」はプッシュかメールのどちらかを選んでください。');
    assert.deepEqual((await call(page, 'notify.prefs', {})).email.includes('notice'), true);

    // By e-mail only, then: direct messages not pushed, the digest on, previews on, quiet
    // hours 22:00-06:30.
    await page.click('#ns-email-notice');
    await page.click('#ns-push-direct');
    await page.click('#ns-email-digest');
    await page.click('#ns-previews');
    await page.click('#ns-quiet-on');
    await page.$eval('#ns-quiet-from', (e) => { e.value = '22:00'; });
    await page.$eval('#ns-quiet-to', (e) => { e.value = '06:30'; });
    await page.click('#ns-save');
    await waitForText(page, '通知の設定を保存しました。');
    await screenshot(page, 'notify-settings-saved-phone');

    await page.reload();
    await page.waitForSelector('#ns-form');
    assert.equal(await checked(page, '#ns-push-notice'), false);
    assert.equal(await checked(page, '#ns-email-notice'), true);
    assert.equal(await checked(page, '#ns-push-direct'), false);
    assert.equal(await checked(page, '#ns-push-mention'), true);
    assert.equal(await checked(page, '#ns-email-digest'), true);
    assert.equal(await checked(page, '#ns-previews'), true);
    assert.equal(await checked(page, '#ns-quiet-on'), true);
    assert.equal(await page.$eval('#ns-quiet-from', (e) => e.value), '22:00');
    assert.equal(await page.$eval('#ns-quiet-to', (e) => e.value), '06:30');
    const prefs = await call(page, 'notify.prefs', {});
    assert.ok(!prefs.push.includes('direct') && !prefs.push.includes('notice'), JSON.stringify(prefs));
    assert.ok(prefs.email.includes('digest') && prefs.previews, JSON.stringify(prefs));
    assert.deepEqual((await call(page, 'push.quiet', {})).quiet, { from: '22:00', to: '06:30' });

    // Quiet hours off again: stored as none.
    await page.click('#ns-quiet-on');
    await page.click('#ns-save');
    await waitForText(page, '通知の設定を保存しました。');
    assert.equal((await call(page, 'push.quiet', {})).quiet, null);
    assert.deepEqual(page.problems, []);
    await page.close();
});

test('a group room is watched for photos from its members panel, and it stays watched', async () => {
    const page = await newPage(await browser.createBrowserContext(), { mobile: true });
    await loginAs(page, srv, 'tanaka');
    const made = await call(page, 'room.create', { name: '現地パトロール', members: ['sato'] });
    const room = made.room.room || made.room;
    await page.goto(srv.url + '/#/room/' + encodeURIComponent(room));
    await page.waitForSelector('#room-members');
    await until(() => page.$eval('#room-members', (e) => !e.textContent.includes('…')), 'the room info');
    await page.click('#room-members');
    await page.waitForSelector('#watch-room');
    assert.equal(await checked(page, '#watch-room'), false);
    await waitForText(page, 'この部屋の写真を通知');
    await page.click('#watch-room');
    await until(async () => (await call(page, 'room.watch', { room })).watched, 'the watch stored');
    await screenshot(page, 'room-watch-phone');
    await page.reload();
    await page.waitForSelector('#room-members');
    await until(() => page.$eval('#room-members', (e) => !e.textContent.includes('…')), 'the room info');
    await page.click('#room-members');
    await page.waitForSelector('#watch-room');
    assert.equal(await checked(page, '#watch-room'), true, 'the watch was not kept');
    const listed = (await call(page, 'room.list', {})).rooms.find((r) => r.room === room);
    assert.equal(listed.watched, true);
    // The direct room has no such choice (its photos push already).
    const direct = await call(page, 'room.direct', { user: 'sato' });
    await page.goto(srv.url + '/#/room/' + encodeURIComponent(direct.room.room || direct.room));
    await page.reload(); // no dialog left from the group room
    await page.waitForSelector('#room-members');
    await until(() => page.$eval('#room-members', (e) => !e.textContent.includes('…')), 'the room info');
    await page.click('#room-members');
    await page.waitForSelector('#members');
    assert.equal(await page.$('#watch-room'), null);
    assert.deepEqual(page.problems, []);
    await page.close();
});

test('the service worker shows a mention with its room and a preview, and opens the room at the message', async () => {
    const ctx = await browser.createBrowserContext();
    await ctx.overridePermissions(srv.url, ['notifications']);
    const page = await newPage(ctx, { mobile: true });
    await loginAs(page, srv, 'tanaka');
    await page.evaluate(() => navigator.serviceWorker.ready);
    const cdp = await page.createCDPSession();
    let regs = [];
    cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => { regs = regs.concat(e.registrations); });
    await cdp.send('ServiceWorker.enable');
    const reg = await until(() => regs.find((r) => r.scopeURL === srv.url + '/' && !r.isDeleted), 'the service worker registration');
    const shown = async (payload) => {
        await page.evaluate(async () => {
            for (const n of await (await navigator.serviceWorker.ready).getNotifications()) n.close();
        });
        await cdp.send('ServiceWorker.deliverPushMessage', { origin: srv.url, registrationId: reg.registrationId,
            data: JSON.stringify(payload) });
        return until(() => page.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications())
            .map((n) => ({ title: n.title, body: n.body, url: n.data && n.data.url })))
            .then((ns) => (ns.length ? ns[0] : null)), 'the notification');
    };
    let n = await shown({ kind: 'mention', room: 'Rm_1', pos: 41, from: '佐藤 一郎', title: '現地班' });
    assert.equal(n.title, '佐藤 一郎（現地班）');
    assert.equal(n.body, 'あなた宛てのメッセージがあります');
    assert.equal(n.url, '/#/room/Rm_1?pos=41');
    n = await shown({ kind: 'direct', room: 'Dm_2', pos: 7, from: '佐藤 一郎', text: '至急連絡ください' });
    assert.equal(n.title, '佐藤 一郎');
    assert.equal(n.body, '至急連絡ください');
    n = await shown({ kind: 'photo', room: 'Rm_1', pos: 42, from: '佐藤 一郎', title: 'new photo' });
    assert.equal(n.body, '新しい写真が投稿されました');
    n = await shown({ kind: 'hotline', room: 'Hl_3', pos: 3, from: '宇和島市', title: '南予ホットライン' });
    assert.equal(n.title, '【第一報】南予ホットライン');
    assert.deepEqual(page.problems, []);
    await page.close();
});
