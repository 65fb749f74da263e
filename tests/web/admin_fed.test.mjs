// admin_fed.test.mjs - the read-only federation page and the audit log (issue 20, item 5): a
// second server's identity (kizunad init and fingerprint, never served: no link is needed to
// pin it) is pinned with the CLI and a counterpart hotline made with it; the admin's page shows
// this server's fingerprint, the peer by its municipality's name, and the hotline group with
// each municipality's role; the audit page filters by action and by target and saves the
// filtered entries as CSV (BOM first). Screenshots: the federation page, the audit log.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, launchBrowser, newPage, waitForText, screenshot } from './lib/harness.mjs';
import { loginAs, downloadsInto, waitForDownload } from './lib/staff.mjs';

const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

function fingerprint(dataDir, configPath) {
    const out = execFileSync(process.env.KIZUNAD_PATH, ['fingerprint', '--data', dataDir, ...(configPath ? ['--config', configPath] : [])],
        { encoding: 'utf8' });
    return {
        server: /server id:\s+(\S+)/.exec(out)[1],
        key: /public key:\s+(\S+)/.exec(out)[1],
        fingerprint: /fingerprint:\s+([\d ]+)/.exec(out)[1].trim(),
    };
}

test('peers and hotline groups, read only; the audit log filtered and exported', async () => {
    const srv = await startServer();
    cleanup.push(() => srv.stop());
    const other = mkdtempSync(path.join(tmpdir(), 'kizuna-peer-'));
    cleanup.push(() => rmSync(other, { recursive: true, force: true }));
    execFileSync(process.env.KIZUNAD_PATH, ['init', '--data', other, '--server-id', 'jp-38203-uwajima'],
        { env: { ...process.env, KIZUNA_ADMIN_PASSWORD: 'admin-pass-123' }, stdio: 'ignore' });
    const peer = fingerprint(other);
    const self = fingerprint(srv.dataDir, srv.configPath);

    await srv.kizuna(['login', 'admin']);
    await srv.kizuna(['admin', 'peer', 'add', peer.server, '--key', peer.key, '--address', '127.0.0.1:9',
        '--fingerprint', peer.fingerprint, '--name', '宇和島市']);
    await srv.kizuna(['hotline', 'create', '南予ホットライン', '--member', `${peer.server}=affected`]);

    const browser = await launchBrowser();
    cleanup.push(() => browser.close());
    const admin = await newPage(await browser.createBrowserContext(), { mobile: false });
    await loginAs(admin, srv, 'admin');
    await admin.goto(srv.url + '/#/admin/federation');
    await waitForText(admin, '南予ホットライン');
    const text = await admin.evaluate(() => document.querySelector('.af-page').innerText);
    assert.ok(text.includes(self.fingerprint), 'this server\'s fingerprint');
    assert.ok(text.includes(self.server));
    const peerRow = await admin.$$eval('.af-page section:nth-of-type(2) tbody tr', (trs) => trs.map((tr) => tr.innerText));
    assert.equal(peerRow.length, 1);
    assert.match(peerRow[0], /jp-38203-uwajima/);
    assert.match(peerRow[0], /宇和島市/);
    const hot = await admin.$eval('.af-hotline', (e) => e.innerText);
    assert.match(hot, /宇和島市\s+jp-38203-uwajima\s+被災市町/);
    assert.match(hot, /県本部/);
    await screenshot(admin, 'admin-federation');

    // The audit log: everything, then one action, then one target.
    await admin.goto(srv.url + '/#/admin/audit');
    await admin.waitForSelector('#aa-entries tbody tr');
    const actions = () => admin.$$eval('#aa-entries tbody tr', (trs) => trs.map((tr) => tr.children[2].innerText.trim()));
    assert.ok((await actions()).includes('peer.add'));
    await admin.type('#aa-action', 'peer.add');
    await admin.click('.aa-page form button[type="submit"]');
    await admin.waitForFunction(() => [...document.querySelectorAll('#aa-entries tbody tr')].every((tr) => tr.children[2]?.innerText.trim() === 'peer.add'));
    assert.deepEqual(await actions(), ['peer.add']);
    const details = await admin.$eval('#aa-entries tbody tr', (tr) => tr.innerText);
    assert.match(details, /宇和島市/);
    await admin.$eval('#aa-action', (e) => { e.value = ''; });
    await admin.type('#aa-target', 'admin');
    await admin.click('.aa-page form button[type="submit"]');
    await admin.waitForFunction(() => [...document.querySelectorAll('#aa-entries tbody tr')].every((tr) => tr.children[3]?.innerText.trim() === 'admin'));
    assert.ok((await actions()).includes('login'));
    await screenshot(admin, 'admin-audit');
    const dl = await downloadsInto(admin);
    await admin.click('#aa-csv');
    const csv = await waitForDownload(dl);
    assert.deepEqual([...csv.bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
    const lines = csv.bytes.toString('utf8').split('\n').filter(Boolean);
    assert.match(lines[0], /^\ufeff"at","actor","address","action","target","details"$/);
    assert.ok(lines.slice(1).every((l) => /^"[^"]*","[^"]*","[^"]*","[^"]*","admin",/.test(l)), lines.join('\n'));

    assert.deepEqual(admin.problems, []);
});
