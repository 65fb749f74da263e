// talk_offline.test.mjs - the web client by itself through a network loss and a server restart
// (clients/web/js/api.js): messages typed while offline wait in the outbox, shown as unsent, and
// go out once each, in order, when the connection is back; what others said meanwhile arrives
// by resume (sync since the last position), never twice; a send whose reply was lost is sent
// again with the same client_id and the server keeps one. Screenshot: the room while offline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, waitForText, screenshot } from './lib/harness.mjs';
import { addStaff, loginAs, clickFresh } from './lib/staff.mjs';

const ROOM = '道路状況';
let srv, browser, A, B, cdpA;

async function bodies() {
    const r = await srv.kizuna(['--json', 'history', ROOM, '--no-read', '--limit', '200']);
    return JSON.parse(r.stdout).events.filter((e) => e.event === 'msg').map((e) => e.content.body);
}

// The texts of the messages on a page, in the page's order.
const shown = (page) => page.$$eval('#msgs li.msg .msg-body', (l) => l.map((e) => e.textContent));

async function openRoom(page) {
    await page.waitForSelector('.room-item');
    await clickFresh(page, '.room-item');
    await page.waitForSelector('#composer');
}

async function setOffline(offline) {
    await cdpA.send('Network.emulateNetworkConditions', { offline, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
}

before(async () => {
    srv = await startServer();
    browser = await launchBrowser();
    await addStaff(srv, [{ login: 'tanaka', name: '田中 花子' }, { login: 'sato', name: '佐藤 一郎' }]);
    await srv.kizuna(['room', 'create', ROOM, '--members', 'tanaka,sato']);
    const a = await browser.createBrowserContext();
    const b = await browser.createBrowserContext();
    A = await newPage(a, { mobile: false });
    B = await newPage(b, { mobile: true });
    await loginAs(A, srv, 'tanaka');
    await loginAs(B, srv, 'sato');
    await openRoom(A);
    await openRoom(B);
    cdpA = await A.createCDPSession();
    await cdpA.send('Network.enable');
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
});

test('sent while the network is down: kept, then delivered once each, in order', async () => {
    await setOffline(true);
    await A.waitForFunction(() => document.body.dataset.conn === 'offline');
    for (const m of ['オフライン1 県道12号線 冠水', 'オフライン2 市道3号線 通行止め', 'オフライン3 避難所 開設']) {
        await A.type('#composer', m);
        await A.keyboard.press('Enter');
    }
    await A.waitForFunction(() => document.querySelectorAll('#msgs li.pending').length === 3);
    await waitForText(A, '未送信 3 件');
    await waitForText(A, '未送信（接続を待っています）');
    await B.type('#composer', 'その間の連絡です');
    await B.click('#send');
    await waitForText(B, 'その間の連絡です');
    await screenshot(A, 'talk-room-offline-desktop', { fullPage: false });
    assert.deepEqual(await bodies(), ['その間の連絡です'], 'nothing went out while offline');

    await setOffline(false);
    await waitForText(B, 'オフライン3 避難所 開設', { timeout: 20000 });
    await waitForText(A, 'その間の連絡です');
    await A.waitForFunction(() => document.querySelectorAll('#msgs li.pending').length === 0);
    assert.deepEqual(await bodies(), ['その間の連絡です', 'オフライン1 県道12号線 冠水', 'オフライン2 市道3号線 通行止め', 'オフライン3 避難所 開設']);
    assert.deepEqual(await shown(B), await bodies());
    assert.deepEqual(await shown(A), await bodies());
});

test('a server restart: both pages reconnect by themselves and resume without loss or repeats', async () => {
    await srv.stop();
    await A.waitForFunction(() => document.body.dataset.conn !== 'online');
    await B.waitForFunction(() => document.body.dataset.conn !== 'online');
    await A.type('#composer', '再起動中に送信 1');
    await A.keyboard.press('Enter');
    await A.type('#composer', '再起動中に送信 2');
    await A.keyboard.press('Enter');
    await srv.restart();
    await waitForText(B, '再起動中に送信 2', { timeout: 20000 });
    await srv.kizuna(['send', ROOM, '再起動後のCLIからの連絡']);
    await waitForText(A, '再起動後のCLIからの連絡');
    await waitForText(B, '再起動後のCLIからの連絡');
    const all = await bodies();
    assert.deepEqual(all.slice(-3), ['再起動中に送信 1', '再起動中に送信 2', '再起動後のCLIからの連絡']);
    assert.deepEqual(await shown(A), all);
    assert.deepEqual(await shown(B), all);
});

test('a reply lost with the connection: sent again with the same client_id, kept once', async () => {
    // The request leaves, the connection drops before its answer: the outbox sends it again.
    await A.evaluate(async () => {
        const { api } = await import('/js/api.js');
        api.send(api_room(), '返事が失われた送信');
        api._drop('test: the reply is lost');
        function api_room() { return decodeURIComponent(location.hash.split('/')[2]); }
    });
    await waitForText(B, '返事が失われた送信', { timeout: 20000 });
    await A.waitForFunction(() => document.querySelectorAll('#msgs li.pending').length === 0, { timeout: 20000 });
    await A.waitForFunction(() => [...document.querySelectorAll('#msgs li.msg[data-pos]')].some((l) => l.textContent.includes('返事が失われた送信')));
    const all = await bodies();
    assert.equal(all.filter((b) => b === '返事が失われた送信').length, 1);
    assert.deepEqual(await shown(A), all);
    assert.deepEqual(A.problems.filter((p) => !/ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_REFUSED|WebSocket/.test(p)), []);
});
