// talk_hotline.test.mjs - a counterpart hotline in the web client (clients/web/js/pages/room.js):
// two real kizunad, the prefecture's and 宇和島市's, pinned to each other and sharing a hotline
// made with the CLI; the prefecture's HQ user talks in the browser, the city's staff with the
// CLI. The page shows the city's messages with their municipality and seat, its servers in the
// room's header, and who read a message grouped by municipality with each one's seat, rising
// live as the city reads. Screenshot: who read, by municipality.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { startServer, launchBrowser, newPage, waitForText, screenshot } from './lib/harness.mjs';
import { addStaff, loginAs } from './lib/staff.mjs';

const PREF = 'jp-38-ehime-pref', CITY = 'jp-38203-uwajima';
let pref, city, browser, page, room;

function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
    });
}

function fingerprint(srv) {
    return new Promise((resolve, reject) => {
        execFile(process.env.KIZUNAD_PATH, ['fingerprint', '--data', srv.dataDir, '--config', srv.configPath], (err, out) => {
            if (err) { reject(err); return; }
            const v = (label) => new RegExp(label + ':\\s*([^\\n(]+)').exec(out)[1].trim();
            resolve({ id: v('server id'), key: v('public key'), fp: v('fingerprint') });
        });
    });
}

async function until(what, fn, ms = 20000) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > end) throw new Error(what + ': not within ' + ms + ' ms');
        await new Promise((r) => setTimeout(r, 200));
    }
}

before(async () => {
    // each port is taken just before its server starts (the first one's API port is ephemeral too)
    const fp1 = await freePort();
    pref = await startServer({ config: { server_id: PREF, federation_listen: `127.0.0.1:${fp1}` } });
    const fp2 = await freePort();
    city = await startServer({ config: { server_id: CITY, federation_listen: `127.0.0.1:${fp2}` } });
    const [a, b] = [await fingerprint(pref), await fingerprint(city)];
    await addStaff(pref, [{ login: 'honbu', name: '県 本部員', role: 'hq', dept: '危機管理課' }]);
    await addStaff(city, [
        { login: 'kikikanri', name: '宇和島 三郎', dept: '危機管理課' },
        { login: 'tochoku', name: '宇和島 当直A', dept: '危機管理課' },
    ]);
    await pref.kizuna(['admin', 'peer', 'add', b.id, '--key', b.key, '--address', `127.0.0.1:${fp2}`, '--fingerprint', b.fp, '--name', '宇和島市']);
    await city.kizuna(['admin', 'peer', 'add', a.id, '--key', a.key, '--address', `127.0.0.1:${fp1}`, '--fingerprint', a.fp, '--name', '愛媛県']);
    const made = await pref.kizuna(['--json', 'hotline', 'create', '南予ホットライン', '--member', `${CITY}=affected`]);
    room = JSON.parse(made.stdout).room;
    assert.ok(room, made.stdout);
    await pref.kizuna(['room', 'invite', room, 'honbu']);
    await until('the hotline reaches the city', async () => {
        const r = await city.kizuna(['--json', 'hotline', 'list'], { check: false });
        return r.code === 0 && r.stdout.includes(room);
    });
    await city.kizuna(['room', 'invite', room, 'kikikanri']);
    await city.kizuna(['room', 'invite', room, 'tochoku']);
    await city.kizuna(['hotline', 'seat', room, '危機管理課長', 'kikikanri']);
    await city.kizuna(['hotline', 'seat', room, '当直', 'tochoku', '--on-duty']);
    await city.kizuna(['login', 'kikikanri'], { user: 'kikikanri' });
    await city.kizuna(['login', 'tochoku'], { user: 'tochoku' });
    browser = await launchBrowser();
    page = await newPage(browser, { mobile: false });
    await loginAs(page, pref, 'honbu');
});

after(async () => {
    await browser?.close();
    await city?.stop();
    await pref?.stop();
    city?.remove();
    pref?.remove();
});

test('a hotline: the city speaks with its seat, 既読 by municipality with seats, live', async () => {
    await page.goto(pref.url + '/#/room/' + encodeURIComponent(room));
    await page.waitForSelector('#composer');
    await waitForText(page, '南予ホットライン');
    await page.waitForFunction(() => /宇和島市/.test(document.querySelector('.room-servers')?.textContent || ''));
    // the city's seat holder speaks (from the CLI on the city's server)
    await until('the city sees its staff in the room', async () =>
        (await city.kizuna(['send', room, '宇和島市です。市内で土砂崩れ3か所'], { user: 'kikikanri', check: false })).code === 0);
    await waitForText(page, '宇和島市です。市内で土砂崩れ3か所');
    const sender = await page.$$eval('#msgs li.msg .msg-sender', (l) => l.map((e) => e.textContent).join('|'));
    assert.match(sender, /宇和島 三郎 \[危機管理課長\]（宇和島市）/);

    await page.type('#composer', '県本部です。被害状況を随時報告してください');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#msgs li.msg.mine[data-pos]');
    // the city's 危機管理課長 reads it on the CLI: 既読 1 on the prefecture's page, live
    await until('the city has it', async () => (await city.kizuna(['history', room], { user: 'kikikanri' })).stdout.includes('随時報告'));
    await page.waitForFunction(() => document.querySelector('#msgs li.msg.mine .read-count')?.textContent === '既読 1', { timeout: 20000 });
    await page.click('#msgs li.msg.mine .read-count');
    await page.waitForSelector('#readers .readers-group');
    const groups = await page.$$eval('#readers .readers-group', (l) => l.map((g) => g.innerText));
    const cityGroup = groups.find((g) => g.includes('宇和島市'));
    assert.ok(cityGroup, groups.join('\n---\n'));
    assert.match(cityGroup, /既読 1\/2/);
    assert.match(cityGroup, /既読[\s\S]*宇和島 三郎[\s\S]*危機管理課長[\s\S]*未読[\s\S]*宇和島 当直A[\s\S]*当直（第一報を受ける）/);
    await screenshot(page, 'talk-readers-hotline-desktop', { fullPage: false });
    await page.keyboard.press('Escape');
    assert.deepEqual(page.problems, []);
});

test('a first report (第一報) from the city raises a red banner on the on-duty seat holder\'s page', async () => {
    await pref.kizuna(['hotline', 'seat', room, '県当直', 'honbu', '--on-duty']);
    await page.goto(pref.url + '/#/rooms');
    await page.waitForSelector('.room-item');
    await until('the seat reaches the city', async () =>
        (await city.kizuna(['send', room, '--urgent', '第一報: 宇和島市で震度6弱、庁舎被害あり'], { user: 'kikikanri', check: false })).code === 0);
    await page.waitForSelector('.banner-alert');
    const text = await page.$eval('.banner-alert', (e) => e.textContent);
    assert.match(text, /第一報（南予ホットライン）宇和島市 宇和島 三郎 \[危機管理課長\]: 第一報: 宇和島市で震度6弱/);
    await screenshot(page, 'talk-hotline-alert-desktop', { fullPage: false });
    await page.click('.banner-alert button');
    await page.waitForSelector('#composer');
    await waitForText(page, '庁舎被害あり');
    assert.equal(await page.$('.banner-alert'), null);
});

test('a first report sent from the browser reaches the other municipality\'s on-duty seat in its browser', async () => {
    const ctx = await browser.createBrowserContext();
    const onDuty = await newPage(ctx, { mobile: true });
    await loginAs(onDuty, city, 'tochoku');   // 宇和島市's 当直 (on duty), on the city's own server
    await onDuty.waitForSelector('.room-item');
    await page.goto(pref.url + '/#/room/' + encodeURIComponent(room));
    await page.waitForFunction(() => !document.querySelector('.composer .urgent').hidden);
    await page.click('#urgent');
    await page.type('#composer', '県本部より第一報: 国道56号 宇和島以南 全面通行止め');
    await page.keyboard.press('Enter');
    await onDuty.waitForSelector('.banner-alert', { timeout: 20000 });
    assert.match(await onDuty.$eval('.banner-alert', (e) => e.textContent), /第一報（南予ホットライン）愛媛県 県 本部員 \[県当直\]: 県本部より第一報/);
    await screenshot(onDuty, 'talk-hotline-alert-phone', { fullPage: false });
    assert.equal(await page.$eval('#urgent', (e) => e.checked), false, 'the choice is for one message');
    await ctx.close();
});
