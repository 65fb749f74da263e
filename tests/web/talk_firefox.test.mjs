// talk_firefox.test.mjs - the web client in Firefox (Debian's firefox-esr, driven by
// puppeteer-core over WebDriver BiDi): log in, talk with a Chromium user live, 既読 rising,
// Enter during an IME conversion (a keydown with isComposing) sends nothing, and the phone
// layout. Skipped, saying so, when firefox-esr is not installed (deploy/setup.sh installs it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { startServer, launchBrowser, newPage, waitForText, screenshot, userPassword } from './lib/harness.mjs';
import { addStaff, loginAs, clickFresh } from './lib/staff.mjs';

const FIREFOX = process.env.FIREFOX_PATH || '/usr/bin/firefox-esr';
const have = existsSync(FIREFOX);
let srv, chromium, firefox, profile, F, C;

before(async () => {
    if (!have) return;
    srv = await startServer();
    await addStaff(srv, [{ login: 'tanaka', name: '田中 花子' }, { login: 'sato', name: '佐藤 一郎' }]);
    await srv.kizuna(['room', 'create', '現地本部', '--members', 'tanaka,sato']);
    profile = mkdtempSync(path.join(tmpdir(), 'kizuna-ff-'));
    firefox = await puppeteer.launch({
        browser: 'firefox', executablePath: FIREFOX, headless: true, userDataDir: profile,
        defaultViewport: { width: 1280, height: 800 }, protocolTimeout: 60000,
        extraPrefsFirefox: { 'intl.accept_languages': 'ja', 'intl.locale.requested': 'ja' },
    });
    chromium = await launchBrowser();
    F = await firefox.newPage();
    F.setDefaultTimeout(15000);
    F.problems = [];
    F.on('pageerror', (e) => F.problems.push('uncaught: ' + e.message));
    F.on('console', (m) => { if (m.type() === 'error') F.problems.push('console: ' + m.text()); });
    C = await newPage(chromium, { mobile: false });
});

after(async () => {
    await firefox?.close();
    await chromium?.close();
    await srv?.stop();
    srv?.remove();
    if (profile) rmSync(profile, { recursive: true, force: true });
});

test('Firefox: log in, talk live with Chromium, 既読, IME Enter, phone layout', { skip: !have && `${FIREFOX} is not installed` }, async () => {
    await F.goto(srv.url + '/#/login');
    await F.waitForSelector('#login-id');
    await F.type('#login-id', 'tanaka');
    await F.type('#login-password', userPassword('tanaka'));
    await F.click('#login-submit');
    await F.waitForSelector('.room-item');
    await clickFresh(F, '.room-item');
    await F.waitForSelector('#composer');
    await loginAs(C, srv, 'sato');
    await C.waitForSelector('.room-item');
    await clickFresh(C, '.room-item');
    await C.waitForSelector('#composer');

    await F.type('#composer', 'Firefoxから送信: 県道12号線 冠水');
    await F.keyboard.press('Enter');
    await waitForText(C, 'Firefoxから送信: 県道12号線 冠水');
    await F.waitForFunction(() => document.querySelector('#msgs li.msg.mine .read-count')?.textContent === '既読 1');
    await C.type('#composer', 'Chromiumから返信: 了解');
    await C.keyboard.press('Enter');
    await waitForText(F, 'Chromiumから返信: 了解');

    // an Enter whose keydown says a composition is on (what Firefox's IME gives) sends nothing
    const sentBefore = await F.$$eval('#msgs li.msg', (l) => l.length);
    await F.evaluate(() => {
        const ta = document.querySelector('#composer');
        ta.focus();
        ta.dispatchEvent(new CompositionEvent('compositionstart', { data: '' }));
        ta.value = 'けんどう';
        ta.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', keyCode: 229, isComposing: true, bubbles: true, cancelable: true }));
        ta.value = '県道';
        ta.dispatchEvent(new CompositionEvent('compositionend', { data: '県道' }));
    });
    assert.equal(await F.$eval('#composer', (e) => e.value), '県道');
    assert.equal(await F.$$eval('#msgs li.msg', (l) => l.length), sentBefore);
    await F.keyboard.press('Enter');
    await waitForText(C, '県道');
    await F.waitForFunction((n) => document.querySelectorAll('#msgs li.msg').length === n + 1, {}, sentBefore);

    await F.setViewport({ width: 390, height: 844 });
    await F.waitForFunction(() => getComputedStyle(document.querySelector('.room-side')).display === 'none');
    await screenshot(F, 'talk-room-firefox-phone', { fullPage: false });
    assert.deepEqual(F.problems, []);
});
