// jma_rollcall.test.mjs - issue 25's "Done when" in the browser: a local HTTP server stands in
// for JMA's feed; a 震度6弱 telegram for the configured town arrives; HQ's browser shows the alert
// in the HQ room at once, with its countdown; after the misfire delay the roll-call reaches the
// staff; one answers on a phone in the web client, another with the CLI; HQ's report page shows
// both answers by department. The rules, drills and cancellation are test_alerts.c's.
// Screenshots: the HQ room with the alert, the phone with the roll-call.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import { startServer, launchBrowser, newPage, waitForText, screenshot } from './lib/harness.mjs';
import { addStaff, loginAs, clearToasts, clickFresh } from './lib/staff.mjs';

const TOWN = '0420200'; // 石巻市
let srv, browser, feed, docs = [];

// JMA's time (+09:00) of now, as telegrams carry it.
function jst(ms = Date.now()) {
    return new Date(ms + 9 * 3600e3).toISOString().replace(/\.\d+Z$/, '+09:00');
}

function quake(eventId) {
    return `<?xml version="1.0" encoding="UTF-8"?>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/">
<Control><Title>震源・震度に関する情報</Title><DateTime>${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}</DateTime>
<Status>通常</Status><EditorialOffice>気象庁本庁</EditorialOffice><PublishingOffice>気象庁</PublishingOffice></Control>
<Head xmlns="http://xml.kishou.go.jp/jmaxml1/informationBasis1/"><Title>震源・震度情報</Title>
<ReportDateTime>${jst()}</ReportDateTime><TargetDateTime>${jst()}</TargetDateTime><EventID>${eventId}</EventID>
<InfoType>発表</InfoType><Serial>1</Serial><InfoKind>地震情報</InfoKind><InfoKindVersion>1.0_1</InfoKindVersion>
<Headline><Text>強い揺れを観測しました。</Text></Headline></Head>
<Body xmlns="http://xml.kishou.go.jp/jmaxml1/body/seismology1/" xmlns:jmx_eb="http://xml.kishou.go.jp/jmaxml1/elementBasis1/">
<Earthquake><OriginTime>${jst(Date.now() - 120e3)}</OriginTime>
<Hypocenter><Area><Name>宮城県沖</Name><Code type="震央地名">287</Code></Area></Hypocenter>
<jmx_eb:Magnitude type="Mj" description="Ｍ６．８">6.8</jmx_eb:Magnitude></Earthquake>
<Intensity><Observation><MaxInt>6-</MaxInt><Pref><Name>宮城県</Name><Code>04</Code><MaxInt>6-</MaxInt>
<Area><Name>宮城県東部</Name><Code>220</Code><MaxInt>6-</MaxInt>
<City><Name>石巻市</Name><Code>${TOWN}</Code><MaxInt>6-</MaxInt></City></Area></Pref></Observation></Intensity>
</Body></Report>
`;
}

function atom(base) {
    const entries = docs.map((d) => `<entry><title>震源・震度に関する情報</title><id>urn:uuid:${d.id}</id>
<updated>${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}</updated><author><name>気象庁</name></author>
<link type="application/xml" href="${base}/data/${d.id}.xml"/><content type="text">地震情報</content></entry>`).join('\n');
    return `<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" lang="ja"><title>高頻度（地震火山）</title>
<updated>${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}</updated><id>${base}/feed.xml</id>
<link href="${base}/feed.xml" rel="self"/>${entries}</feed>
`;
}

before(async () => {
    feed = http.createServer((req, res) => {
        const base = `http://127.0.0.1:${feed.address().port}`;
        if (req.url === '/feed.xml') {
            res.writeHead(200, { 'content-type': 'application/atom+xml' });
            res.end(atom(base));
            return;
        }
        const d = docs.find((x) => req.url === `/data/${x.id}.xml`);
        if (!d) { res.writeHead(404); res.end(); return; }
        res.writeHead(200, { 'content-type': 'application/xml' });
        res.end(d.body);
    });
    await new Promise((r) => feed.listen(0, '127.0.0.1', r));
    srv = await startServer({ config: {
        jma_feeds: `http://127.0.0.1:${feed.address().port}/feed.xml`, jma_poll_s: 1, jma_fetch_timeout_s: 2,
        jma_towns: TOWN, jma_pref_min_int: '', jma_delay_s: 8, jma_author: 'honbu',
    } });
    await addStaff(srv, [
        { login: 'honbu', name: '本部 太郎', dept: '本部', role: 'hq' },
        { login: 'soumu1', name: '総務 花子', dept: '総務課' },
        { login: 'kensetsu1', name: '建設 次郎', dept: '建設課' },
    ]);
    // The HQ room, then the server again with it as jma_hq_room (a room's id exists once made).
    await srv.kizuna(['login', 'honbu'], { user: 'honbu' });
    const r = await srv.kizuna(['--json', 'room', 'create', '災害対策本部', '--members', 'honbu'], { user: 'honbu' });
    const cfg = JSON.parse(fs.readFileSync(srv.configPath, 'utf8'));
    cfg.jma_hq_room = JSON.parse(r.stdout).room.room;
    fs.writeFileSync(srv.configPath, JSON.stringify(cfg) + '\n');
    await srv.restart();
    browser = await launchBrowser();
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
    await new Promise((r) => (feed ? feed.close(r) : r()));
});

test('a 震度6弱 telegram: HQ sees the alert and its countdown, staff answer the roll-call in the browser and the CLI, the report fills by department', async () => {
    const hq = await newPage(await browser.createBrowserContext(), { mobile: false });
    await loginAs(hq, srv, 'honbu');
    await hq.waitForSelector('.room-item');
    await clickFresh(hq, '.room-item');
    await hq.waitForSelector('#composer');
    const phone = await newPage(await browser.createBrowserContext(), { mobile: true });
    await loginAs(phone, srv, 'soumu1');
    await phone.goto(srv.url + '/#/notices');

    // JMA publishes the telegram.
    docs.push({ id: 'a1b2c3d4-0000-4000-8000-000000000001', body: quake('20261130150000') });
    await waitForText(hq, '石巻市 震度6弱', { timeout: 30000 });
    const alertText = await hq.$eval('#msgs', (e) => e.innerText);
    assert.match(alertText, /秒|送信/, `the alert says when the roll-call goes: ${alertText}`);
    await screenshot(hq, 'jma-alert-hq');

    // After the delay the roll-call is a notice for everyone; the phone answers in one tap.
    await phone.waitForSelector('.nt-card-urgent button[data-choice="1"]', { timeout: 60000 });
    const id = await phone.$eval('.nt-card-urgent', (c) => c.dataset.notice);
    await clearToasts(phone);
    await screenshot(phone, 'jma-rollcall-phone');
    await phone.tap(`.nt-card[data-notice="${id}"] button[data-choice="1"]`);
    await waitForText(phone, '回答済み: 無事・出勤可');
    // kensetsu1 answers with the CLI.
    await srv.kizuna(['login', 'kensetsu1'], { user: 'kensetsu1' });
    await srv.kizuna(['notice', 'respond', id, '無事・出勤不可'], { user: 'kensetsu1' });

    // HQ's report page: the answers by department.
    await hq.goto(`${srv.url}/#/notices/${id}/report`);
    await hq.waitForSelector('#rp-depts');
    await hq.waitForFunction(() => /建設課/.test(document.querySelector('#rp-depts')?.innerText || '') &&
        /総務課/.test(document.querySelector('#rp-depts')?.innerText || ''), { timeout: 15000 });
    const head = await hq.$$eval('#rp-depts thead th', (l) => l.map((c) => c.innerText.trim()));
    const depts = await hq.$$eval('#rp-depts tbody tr', (rows) => rows.map((r) => [...r.children].map((c) => c.innerText.trim())));
    const cell = (dept, col) => depts.find((r) => r[0] === dept)?.[head.indexOf(col)];
    assert.equal(cell('総務課', '無事・出勤可'), '1', JSON.stringify({ head, depts }));
    assert.equal(cell('建設課', '無事・出勤不可'), '1', JSON.stringify({ head, depts }));
    assert.equal(cell('総務課', '無事・出勤不可'), '0');
    for (const p of [hq, phone])
        assert.deepEqual(p.problems, []);
});
