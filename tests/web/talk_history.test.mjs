// talk_history.test.mjs - a room with thousands of messages in the web client
// (clients/web/js/pages/room.js, search.js): paging back keeps at most CAP messages in the page
// and each page comes as fast at the 3,000th message as at the first; Japanese search finds a
// message deep in the history and opens the room there; a message arriving while one reads old
// history shows a "new messages" button instead of moving the page. Screenshot: search results.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, waitForText, screenshot } from './lib/harness.mjs';
import { addStaff, loginAs, clickFresh } from './lib/staff.mjs';

const ROOM = '活動記録';
const N = 3000;
const CAP = 300; // room.js's CAP
let srv, browser, A;

before(async () => {
    srv = await startServer();
    browser = await launchBrowser();
    await addStaff(srv, [{ login: 'tanaka', name: '田中 花子' }]);
    await srv.kizuna(['room', 'create', ROOM, '--members', 'tanaka']);
    A = await newPage(browser, { mobile: false });
    await loginAs(A, srv, 'tanaka');
    // N messages, pipelined on a second WebSocket of tanaka's session
    const made = await A.evaluate(async (n) => {
        const { api } = await import('/js/api.js');
        const rooms = await api.call('room.list');
        const room = rooms.rooms[0].room;
        const ws = new WebSocket(new URL('/api/v1/ws', location.href).href.replace('http', 'ws'));
        await new Promise((r) => { ws.onopen = r; });
        let ok = 0;
        const done = new Promise((resolve) => {
            ws.onmessage = (m) => { const r = JSON.parse(m.data); if (r.id && r.ok) ok++; if (r.id === n) resolve(); };
        });
        ws.send(JSON.stringify({ id: 0, op: 'auth', token: api.session.token }));
        for (let i = 1; i <= n; i++) {
            const body = i === 1234 ? `記録 ${i}: 国道56号で土砂崩れが発生、片側通行` : `記録 ${i}: 巡回異常なし`;
            ws.send(JSON.stringify({ id: i, op: 'msg.send', room, body, client_id: 'hist-' + i }));
        }
        await done;
        ws.close();
        return ok;
    }, N);
    assert.equal(made, N);
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
});

const counts = () => A.$$eval('#msgs li.msg[data-pos]', (l) => l.map((e) => +e.dataset.pos));

test(`paging back through ${N} messages keeps the page small and fast`, async () => {
    await A.goto(srv.url + '/#/rooms');
    await A.waitForSelector('.room-item');
    await clickFresh(A, '.room-item');
    await waitForText(A, `記録 ${N}: 巡回異常なし`);
    // The room list shows that text too: wait for the timeline's own messages (a loaded machine
    // drew the list first, and the first page was read from an empty timeline).
    await A.waitForSelector('#msgs li.msg[data-pos]');
    assert.ok((await counts()).length <= 50);
    const times = [];
    for (let page = 0; page < 14; page++) {
        const first = (await counts())[0];
        const t0 = Date.now();
        // scrolling to the top loads the older page (the first time by the button, as a keyboard would)
        if (page === 0) await A.$eval('#load-older', (b) => { b.focus(); b.click(); });
        else await A.$eval('#timeline', (t) => { t.scrollTop = 0; });
        await A.waitForFunction((f) => +document.querySelector('#msgs li.msg[data-pos]').dataset.pos < f, {}, first).catch(async (e) => {
            const st = await A.$eval('#timeline', (t) => ({ top: t.scrollTop, h: t.scrollHeight, ch: t.clientHeight,
                n: t.querySelectorAll('li.msg').length, older: !t.querySelector('#load-older').hidden }));
            throw new Error(`page ${page}: no older page after ${first}: ${JSON.stringify(st)} (${e.message})`);
        });
        times.push(Date.now() - t0);
        const pos = await counts();
        assert.ok(pos.length <= CAP, `at most ${CAP} messages in the page, not ${pos.length}`);
        assert.deepEqual([...pos].sort((a, b) => a - b), pos, 'in order');
    }
    console.log('page times (ms):', times.join(' '));
    const text = await A.$eval('#msgs', (e) => e.textContent);
    assert.ok(!text.includes(`記録 ${N}:`), 'the newest left the page');
    assert.ok(await A.$eval('#load-newer', (b) => !b.hidden));
    // the last pages are no slower than the first (generously: loopback is fast either way)
    const early = Math.max(...times.slice(0, 3)), late = Math.max(...times.slice(-3));
    assert.ok(late < Math.max(3 * early, 500), `page times ${times.join(', ')} ms`);
    // a message arriving meanwhile does not move what one reads: a button offers it
    await srv.kizuna(['send', ROOM, '新着: 本部から全員へ']);
    await A.waitForSelector('#jump-latest:not([hidden])');
    await A.click('#jump-latest');
    await waitForText(A, '新着: 本部から全員へ');
    assert.ok((await counts()).length <= CAP);
});

test('Japanese search finds a message deep in the history and opens the room there', async () => {
    await A.goto(srv.url + '/#/search');
    await A.waitForSelector('#search-q');
    await A.type('#search-q', '土砂崩れ　片側');  // a full-width space between the words
    await A.keyboard.press('Enter');
    await A.waitForSelector('#search-results .result');
    await waitForText(A, '国道56号で土砂崩れが発生');
    assert.equal(await A.$$eval('#search-results mark', (m) => m.map((e) => e.textContent).join(',')), '土砂崩れ,片側');
    await screenshot(A, 'talk-search-desktop', { fullPage: false });
    await A.click('#search-results .result');
    await A.waitForSelector('#msgs li.msg.highlight');
    assert.match(await A.$eval('#msgs li.msg.highlight', (e) => e.textContent), /記録 1234: 国道56号で土砂崩れ/);
    assert.ok((await counts()).length <= 60);
    // nothing found says so
    await A.goto(srv.url + '/#/search?q=' + encodeURIComponent('存在しない言葉'));
    await waitForText(A, '「存在しない言葉」を含むものは見つかりませんでした');
});
