// devices.test.mjs - device keys and safety numbers in the browser (issue 21, item 1;
// js/pages/devices.js): the user's devices listed with this browser marked; another device (the
// CLI's) revoked from the page, after which the server lists it revoked and its session is over;
// the safety number of two users, each in their own browser, shown as the same 60 digits and
// the same QR code on both sides. Screenshots: the devices page and the safety number on a phone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, waitForText, screenshot } from './lib/harness.mjs';
import { addStaff, loginAs, confirmOk, clearToasts } from './lib/staff.mjs';

let srv, browser;

before(async () => {
    srv = await startServer();
    await addStaff(srv, [{ login: 'sato', name: '佐藤' }, { login: 'suzuki', name: '鈴木' }]);
    browser = await launchBrowser({ mobile: true });
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
});

const myId = (page) => page.evaluate(() => import('/js/crypto/device.js').then((m) => m.myDevice()).then((d) => d.id));

test('the devices page: this browser marked, the CLI device revoked; safety numbers equal on both sides', async () => {
    const ctxA = await browser.createBrowserContext();
    const ctxB = await browser.createBrowserContext();
    const A = await newPage(ctxA, { mobile: true });
    const B = await newPage(ctxB, { mobile: true });
    await loginAs(A, srv, 'sato');
    await loginAs(B, srv, 'suzuki');
    const idA = await myId(A);
    await myId(B);
    await srv.kizuna(['login', 'sato'], { user: 'sato' });
    const cli = await A.evaluate(() => import('/js/api.js').then((m) => m.api.call('device.list', {})));
    const cliDev = (cli.devices || []).map((d) => d.device).find((d) => d !== idA);
    assert.ok(cliDev, JSON.stringify(cli));

    await A.goto(`${srv.url}/#/devices`);
    await A.waitForSelector(`#device-list li[data-device="${cliDev}"]`);
    assert.equal(await A.$eval('#device-this', (e) => e.closest('li').dataset.device), idA);
    assert.equal(await A.$$eval('#device-list li', (l) => l.length), 2);
    await A.click(`#device-list li[data-device="${cliDev}"] .device-revoke`);
    await confirmOk(A);
    await A.waitForFunction((id) => document.querySelector(`#device-list li[data-device="${id}"]`)?.classList.contains('revoked'), {}, cliDev);
    assert.equal(await A.$(`#device-list li[data-device="${cliDev}"] .device-revoke`), null);
    const after = await A.evaluate(() => import('/js/api.js').then((m) => m.api.call('device.list', {})));
    assert.ok(after.devices.find((d) => d.device === cliDev).revoked_at != null);
    assert.equal(after.devices.find((d) => d.device === idA).revoked_at, null);
    const r = await srv.kizuna(['whoami'], { user: 'sato', check: false });
    assert.notEqual(r.code, 0, 'the revoked CLI device still works');
    await screenshot(A, 'devices-phone');

    await A.goto(`${srv.url}/#/devices?user=suzuki`);
    await B.goto(`${srv.url}/#/devices?user=sato`);
    await A.waitForSelector('#safety-number', { timeout: 20000 });
    await B.waitForSelector('#safety-number', { timeout: 20000 });
    const na = await A.$eval('#safety-number', (e) => e.dataset.digits);
    const nb = await B.$eval('#safety-number', (e) => e.dataset.digits);
    assert.match(na, /^\d{60}$/);
    assert.equal(na, nb);
    assert.equal((await A.$eval('#safety-number', (e) => e.textContent)).replace(/\s/g, ''), na);
    const qr = (p) => p.$eval('.safety-out canvas', (c) => c.toDataURL());
    assert.equal(await qr(A), await qr(B));
    await clearToasts(A);
    await screenshot(A, 'safety-phone');
    assert.deepEqual(A.problems, []);
    assert.deepEqual(B.problems, []);
    await ctxA.close();
    await ctxB.close();
});
