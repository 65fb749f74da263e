// notices_firefox.test.mjs - the notice and administration pages in Firefox (Debian's
// firefox-esr, driven by puppeteer-core over WebDriver BiDi): a roll-call from the CLI answered
// in one tap, the author's report with the answer in it, the users page with a filter, and an
// invitation's QR code drawn on its canvas. Skipped, saying so, when firefox-esr is not
// installed (deploy/setup.sh installs it).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { startServer, waitForText } from './lib/harness.mjs';
import { addStaff, loginAs } from './lib/staff.mjs';

const FIREFOX = process.env.FIREFOX_PATH || '/usr/bin/firefox-esr';
const have = existsSync(FIREFOX);
const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

async function firefoxPage(browser) {
    const ctx = await browser.createBrowserContext();
    const page = await ctx.newPage();
    page.setDefaultTimeout(15000);
    page.problems = [];
    page.on('pageerror', (e) => page.problems.push('uncaught: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error') page.problems.push('console: ' + m.text()); });
    return page;
}

test('Firefox: a roll-call answered in one tap, the report, users, an invitation QR code', { skip: !have && `${FIREFOX} is not installed` }, async () => {
    const srv = await startServer();
    cleanup.push(() => srv.stop());
    await addStaff(srv, [
        { login: 'suzuki', name: '鈴木 一郎', dept: '危機管理課', role: 'hq' },
        { login: 'tanaka', name: '田中 花子', dept: '総務課' },
    ]);
    const profile = mkdtempSync(path.join(tmpdir(), 'kizuna-ff-'));
    cleanup.push(() => rmSync(profile, { recursive: true, force: true }));
    const firefox = await puppeteer.launch({
        browser: 'firefox', executablePath: FIREFOX, headless: true, userDataDir: profile,
        defaultViewport: { width: 1280, height: 800 }, protocolTimeout: 60000,
        extraPrefsFirefox: { 'intl.accept_languages': 'ja', 'intl.locale.requested': 'ja' },
    });
    cleanup.push(() => firefox.close());

    // HQ posts from the CLI; tanaka answers in Firefox.
    await srv.kizuna(['login', 'suzuki'], { user: 'suzuki' });
    await srv.kizuna(['notice', 'post', '--title', '安否確認', '--body', '安否を回答してください。', '--to', 'all', '--urgent',
        '--choices', '無事・出勤可|無事・出勤不可|負傷|その他'], { user: 'suzuki' });
    const staff = await firefoxPage(firefox);
    await loginAs(staff, srv, 'tanaka', { next: '#/notices' });
    await staff.waitForSelector('.nt-card-urgent[data-notice="1"] button[data-choice="2"]');
    await staff.click('.nt-card[data-notice="1"] button[data-choice="2"]');
    await waitForText(staff, '回答済み: 無事・出勤不可');

    const hq = await firefoxPage(firefox);
    await loginAs(hq, srv, 'suzuki', { next: '#/notices/1/report' });
    await hq.waitForSelector('#rp-depts');
    const totals = await hq.$eval('#rp-totals', (e) => e.innerText);
    assert.match(totals, /回答済み\s*1\s*\/ 2/);
    const answers = await hq.$eval('#rp-answers', (e) => e.innerText);
    assert.match(answers, /無事・出勤不可\s*1（50%）/);

    // The admin: users filtered, and an invitation's QR code on its canvas.
    const admin = await firefoxPage(firefox);
    await loginAs(admin, srv, 'admin', { next: '#/admin/users' });
    await admin.waitForSelector('#au-users tbody tr');
    await admin.select('#au-role', 'hq');
    await admin.waitForFunction(() => [...document.querySelectorAll('#au-users tbody th')].map((t) => t.innerText.trim()).join() === 'suzuki');
    await admin.goto(srv.url + '/#/admin/invites');
    await admin.waitForSelector('#iv-create');
    await admin.click('#iv-create');
    await admin.waitForSelector('canvas.iv-qr');
    const dark = await admin.$eval('canvas.iv-qr', (c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 128) n++;
        return n / (d.length / 4);
    });
    assert.ok(dark > 0.2 && dark < 0.6, `a QR code is about half dark modules inside its quiet zone (${dark})`);

    for (const p of [staff, hq, admin])
        assert.deepEqual(p.problems, []);
});
