// talk_login.test.mjs - logging in to the web client (clients/web/js/pages/login.js,
// js/api.js): the one-time password changed on first use; a "共用PC" (shared PC) login leaves no
// token and no message text in localStorage, sessionStorage, IndexedDB or cookies after logout;
// a session revoked from the CLI by an admin is thrown out of the page with its reason; and
// "my sessions" revokes another of one's own devices. Screenshots: login (desktop and phone),
// the forced password change, the ended page, my sessions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
    startServer, launchBrowser, newPage, waitForText, screenshot, userPassword,
} from './lib/harness.mjs';
import { addStaff, loginAs, confirmOk, clickFresh } from './lib/staff.mjs';

let srv, browser;

before(async () => {
    srv = await startServer();
    browser = await launchBrowser();
    await addStaff(srv, [
        { login: 'sato', name: '佐藤 一郎', dept: '総務課' },
        { login: 'suzuki', name: '鈴木 次郎', dept: '建設課' },
    ]);
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
});

// Everything the browser keeps for the page's origin, as one string.
async function storageDump(page) {
    const inPage = await page.evaluate(async () => {
        const all = (st) => Object.fromEntries(Array.from({ length: st.length }, (_, i) => [st.key(i), st.getItem(st.key(i))]));
        const dbs = indexedDB.databases ? await indexedDB.databases() : [];
        return JSON.stringify({ local: all(localStorage), session: all(sessionStorage), idb: dbs, cookie: document.cookie });
    });
    const cookies = await page.cookies();
    return inPage + JSON.stringify(cookies);
}

// Logging out and an ended session reload the page (it drops everything it held): wait across it.
async function waitAcross(page, selector, timeout = 15000) {
    const end = Date.now() + timeout;
    for (;;) {
        const found = await page.$(selector).catch(() => null);
        if (found) return;
        if (Date.now() > end) throw new Error(`no ${selector}: ` + page.url());
        await new Promise((r) => setTimeout(r, 100));
    }
}

test('first login asks for a new password, then opens the rooms', async () => {
    const r = await srv.kizuna(['admin', 'user', 'add', 'tanaka', '--name', '田中 花子']);
    const otp = /one-time password: (\S+)/.exec(r.stdout)[1];
    const page = await newPage(browser, { mobile: false });
    await page.goto(srv.url + '/');
    await page.waitForSelector('#login-id');
    await screenshot(page, 'talk-login-desktop');
    await page.type('#login-id', 'tanaka');
    await page.type('#login-password', otp);
    await page.click('#login-submit');
    await page.waitForSelector('#passwd-new');
    assert.equal(await page.evaluate(() => location.hash), '#/passwd');
    // Nothing but the change is possible: the nav is empty, other routes come back here.
    await page.evaluate(() => { location.hash = '#/rooms'; });
    await page.waitForFunction(() => location.hash === '#/passwd');
    await page.type('#passwd-new', 'short');
    await page.type('#passwd-again', 'short');
    await page.click('#passwd-submit');
    await page.waitForFunction(() => document.querySelector('#passwd-error').textContent.length > 0);
    await screenshot(page, 'talk-passwd-desktop');
    await page.$eval('#passwd-new', (e) => { e.value = ''; });
    await page.$eval('#passwd-again', (e) => { e.value = ''; });
    await page.type('#passwd-new', 'kizuna-tanaka-2026');
    await page.type('#passwd-again', 'kizuna-tanaka-2026');
    await page.click('#passwd-submit');
    await page.waitForSelector('#room-list');
    await waitForText(page, 'まだルームがありません');
    // The new password works for the CLI too, and the old one no longer does.
    await srv.kizuna(['login', 'tanaka'], { user: 'tanaka', password: 'kizuna-tanaka-2026' });
    const old = await srv.kizuna(['login', 'tanaka'], { user: 'tanaka2', password: otp, check: false });
    assert.notEqual(old.code, 0);
    assert.deepEqual(page.problems, []);
    await page.close();
});

test('a phone-sized login page, and a wrong password says so', async () => {
    const ctx = await browser.createBrowserContext();
    const page = await newPage(ctx, { mobile: true });
    await page.goto(srv.url + '/#/login');
    await page.waitForSelector('#login-id');
    await page.type('#login-id', 'sato');
    await page.type('#login-password', 'not-the-password');
    await page.click('#login-submit');
    await waitForText(page, 'ログインできません');
    await screenshot(page, 'talk-login-phone');
    await ctx.close();
});

test('a shared-PC logout leaves no token and no message text in the browser', async () => {
    await srv.kizuna(['room', 'create', '総務連絡', '--members', 'sato']);
    const secret = '避難所の鍵は総務課の金庫にあります（暗証 4711）';
    await srv.kizuna(['send', '総務連絡', secret]);
    const ctx = await browser.createBrowserContext();
    const page = await newPage(ctx, { mobile: false });
    await page.goto(srv.url + '/#/login');
    await page.waitForSelector('#login-id');
    await page.type('#login-id', 'sato');
    await page.type('#login-password', userPassword('sato'));
    await page.click('#login-shared');
    await page.click('#login-submit');
    await page.waitForSelector('.room-item');
    await clickFresh(page, '.room-item');
    await waitForText(page, secret);
    const during = await storageDump(page);
    const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('kizuna.session')).token);
    assert.ok(token.length > 20);
    assert.ok(!(await page.evaluate(() => localStorage.getItem('kizuna.session'))), 'a shared PC keeps the token in sessionStorage only');
    assert.ok(!during.includes('4711'), 'message text is never stored');
    await page.click('#logout');
    await waitAcross(page, '#login-id');
    const afterOut = await storageDump(page);
    assert.ok(!afterOut.includes(token), 'the token is gone: ' + afterOut);
    assert.ok(!afterOut.includes('4711') && !afterOut.includes('避難所'), 'no message text: ' + afterOut);
    assert.ok(!(await page.evaluate(() => document.body.innerText)).includes('4711'));
    // and the token no longer works on the server
    const r = await fetch(srv.url + '/api/v1/whoami', { method: 'POST', headers: { authorization: 'Bearer ' + token }, body: '{}' });
    assert.equal(r.status, 401);
    // a reload shows the login page, nothing else
    await page.reload();
    await page.waitForSelector('#login-id');
    assert.deepEqual(page.problems.filter((p) => !p.includes('401')), []);
    await ctx.close();
});

test('a session an admin revokes from the CLI is thrown out with its reason', async () => {
    const ctx = await browser.createBrowserContext();
    const page = await newPage(ctx, { mobile: false });
    await loginAs(page, srv, 'suzuki');
    await page.waitForSelector('#room-list');
    const list = await srv.kizuna(['--json', 'admin', 'sessions', 'suzuki']);
    const sessions = JSON.parse(list.stdout).sessions;
    assert.equal(sessions.length, 1);
    await srv.kizuna(['admin', 'revoke', String(sessions[0].id)]);
    await waitAcross(page, '#ended-reason');
    await waitForText(page, '管理者がこの端末をログアウトさせました');
    await screenshot(page, 'talk-ended-desktop');
    assert.equal(await page.evaluate(() => localStorage.getItem('kizuna.session')), null);
    // opening the app again does not get back in
    await page.goto(srv.url + '/');
    await page.waitForSelector('#login-id');
    await ctx.close();
});

test('my sessions lists both devices and signs the other one out', async () => {
    const a = await browser.createBrowserContext();
    const b = await browser.createBrowserContext();
    const pa = await newPage(a, { mobile: false });
    const pb = await newPage(b, { mobile: false });
    await loginAs(pa, srv, 'sato');
    await loginAs(pb, srv, 'sato');
    await pa.goto(srv.url + '/#/sessions');
    await pa.waitForFunction(() => document.querySelectorAll('#sessions tbody tr').length === 2);
    await screenshot(pa, 'talk-sessions-desktop');
    await pa.click('#sessions tbody tr:not(.current) button');
    await confirmOk(pa);
    await waitAcross(pb, '#ended-reason');
    await waitForText(pb, 'あなたの別の端末からログアウトされました');
    await pa.waitForFunction(() => document.querySelectorAll('#sessions tbody tr').length === 1);
    await a.close();
    await b.close();
});

test('a shared PC left idle is signed out with its reason and keeps nothing', async () => {
    const srv2 = await startServer({ config: { shared_session_idle_s: 2 } });
    try {
        await addStaff(srv2, [{ login: 'kato', name: '加藤 四郎' }]);
        await srv2.kizuna(['room', 'create', '受付', '--members', 'kato']);
        await srv2.kizuna(['send', '受付', '住民からの問い合わせ: 給水所の場所']);
        const ctx = await browser.createBrowserContext();
        const page = await newPage(ctx, { mobile: true });
        await page.goto(srv2.url + '/#/login');
        await page.waitForSelector('#login-id');
        await page.type('#login-id', 'kato');
        await page.type('#login-password', userPassword('kato'));
        await page.click('#login-shared');
        await page.click('#login-submit');
        await waitForText(page, '給水所の場所');
        // nobody touches it: the server ends the session, the page says why and forgets it all
        await waitAcross(page, '#ended-reason');
        await waitForText(page, '共用PCを一定時間操作しなかったため、ログアウトしました');
        await screenshot(page, 'talk-ended-idle-phone');
        const dump = await storageDump(page);
        assert.ok(!dump.includes('給水所') && !dump.includes('"token"'), dump);
        assert.ok(!(await page.evaluate(() => document.body.innerText)).includes('給水所'));
        await ctx.close();
    } finally {
        await srv2.stop();
        srv2.remove();
    }
});

test('the first screen: under 300 KB of our code and styles, usable within 1 s on loopback', async () => {
    const ctx = await browser.createBrowserContext();
    const page = await newPage(ctx, { mobile: true });
    // when the login field exists, by the page's own clock (from the start of its navigation)
    await page.evaluateOnNewDocument(() => {
        new MutationObserver((_, obs) => {
            if (document.getElementById('login-id')) { window.__kzReady = performance.now(); obs.disconnect(); }
        }).observe(document, { childList: true, subtree: true });
    });
    const load = async () => {
        await page.goto(srv.url + '/');
        await page.waitForSelector('#login-id');
        return Math.round(await page.evaluate(() => window.__kzReady));
    };
    const first = await load();
    const w = await page.evaluate(() => {
        const all = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]
            .filter((e) => e.name.startsWith(location.origin));
        return {
            files: all.length,
            decoded: all.reduce((n, e) => n + e.decodedBodySize, 0),
            transferred: all.reduce((n, e) => n + e.encodedBodySize, 0),
        };
    });
    const again = await load(); // a returning visitor: the files revalidate (304)
    console.log(`first screen: ${w.files} files, ${w.decoded} bytes (${w.transferred} over the wire), ` +
        `ready in ${first} ms on the first visit, ${again} ms on the next`);
    assert.ok(w.decoded < 300 * 1024, JSON.stringify(w));
    // 1 s is the budget; a first visit is given 2 s so that a loaded CI machine does not fail it
    const budget = Number(process.env.KIZUNA_WEB_READY_MS) || 1000;
    assert.ok(again < budget, `ready in ${again} ms`);
    assert.ok(first < 2 * budget, `ready in ${first} ms on the first visit`);
    await ctx.close();
});
