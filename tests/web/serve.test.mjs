// serve.test.mjs - kizunad serving a web client (server/http_static.c, http_policy.c) as a
// browser sees it: a page of ES modules, JSON and WebAssembly loads under the server's CSP with
// no console error and no violation; types, security headers, gzip, ETag and 304 are right;
// a page of another origin cannot open the API's WebSocket or call an op; and the harness's
// IME helper produces what a real IME does. Uses tests/web/fixtures/site, not the real client.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
    startServer, launchBrowser, newPage, waitForText, screenshot, imeFor, httpRaw, WEB_TESTS_DIR,
} from './lib/harness.mjs';

const SITE = path.join(WEB_TESTS_DIR, 'fixtures', 'site');
let srv, browser;

before(async () => {
    srv = await startServer({ config: { web_root: SITE } });
    browser = await launchBrowser();
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
});

test('the page loads in Chromium with no console error and no CSP violation', async () => {
    const page = await newPage(browser, { mobile: true });
    await page.goto(srv.url + '/', { waitUntil: 'load' });
    // The module imported a .mjs, fetched JSON and ran WebAssembly: all of it under the CSP.
    await waitForText(page, '美瑛町の皆さん、こんにちは 読み込み完了 (42)');
    await screenshot(page, 'serve-fixture-phone');
    assert.deepEqual(page.problems, []);
    await page.close();
});

test('types, security headers, gzip, ETag, 304, ?v= and HEAD', async () => {
    const types = {
        '/': 'text/html; charset=utf-8',
        '/app.js': 'text/javascript; charset=utf-8',
        '/lib/greet.mjs': 'text/javascript; charset=utf-8',
        '/style.css': 'text/css; charset=utf-8',
        '/logo.svg': 'image/svg+xml',
        '/data.json': 'application/json',
        '/app.webmanifest': 'application/manifest+json',
    };
    for (const [p, type] of Object.entries(types)) {
        const r = await httpRaw(srv.url + p);
        assert.equal(r.status, 200, p);
        assert.equal(r.headers['content-type'], type, p);
        assert.match(r.headers['content-security-policy'], /^default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; /, p);
        assert.match(r.headers['content-security-policy'], /frame-ancestors 'none'; base-uri 'none'; form-action 'self'/, p);
        assert.equal(r.headers['x-content-type-options'], 'nosniff', p);
        assert.equal(r.headers['referrer-policy'], 'no-referrer', p);
        assert.equal(r.headers['cache-control'], 'no-cache', p);
        assert.ok(!Object.keys(r.headers).some((h) => h.startsWith('access-control-')), `${p}: no CORS headers`);
        assert.equal(Number(r.headers['content-length']), r.body.length, p);
    }
    // The API's replies carry the same policy.
    const health = await httpRaw(srv.url + '/healthz');
    assert.match(health.headers['content-security-policy'], /wasm-unsafe-eval/);
    assert.equal(health.headers['x-content-type-options'], 'nosniff');

    const plain = await httpRaw(srv.url + '/app.js');
    const etag = plain.headers.etag;
    assert.match(etag, /^"[0-9a-f]{32}"$/);
    assert.equal(plain.headers['content-encoding'], undefined);
    const gz = await httpRaw(srv.url + '/app.js', { headers: { 'accept-encoding': 'gzip, deflate, br' } });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.equal(gz.headers.vary, 'Accept-Encoding');
    assert.ok(gz.body.length < plain.body.length);
    assert.deepEqual(gunzipSync(gz.body), plain.body);
    const refused = await httpRaw(srv.url + '/app.js', { headers: { 'accept-encoding': 'gzip;q=0, identity' } });
    assert.equal(refused.headers['content-encoding'], undefined);

    // Revalidation: 304 with no body, for the plain and the gzip tag alike.
    for (const tag of [etag, gz.headers.etag]) {
        const r = await httpRaw(srv.url + '/app.js', { headers: { 'if-none-match': tag } });
        assert.equal(r.status, 304);
        assert.equal(r.body.length, 0);
        assert.equal(r.headers.etag.replace('-gz', ''), etag);
    }
    const stale = await httpRaw(srv.url + '/app.js', { headers: { 'if-none-match': '"0123456789abcdef0123456789abcdef"' } });
    assert.equal(stale.status, 200);

    // A URL naming the file's hash may be cached for a year; a stale hash may not.
    const hash = etag.slice(1, -1);
    const pinned = await httpRaw(`${srv.url}/app.js?v=${hash}`);
    assert.equal(pinned.headers['cache-control'], 'public, max-age=31536000, immutable');
    const old = await httpRaw(`${srv.url}/app.js?v=0123456789abcdef0123456789abcdef`);
    assert.equal(old.headers['cache-control'], 'no-cache');
    assert.deepEqual(old.body, plain.body);

    const head = await httpRaw(srv.url + '/app.js', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers['content-length']), plain.body.length);
    assert.equal(head.body.length, 0);

    for (const p of ['/nope.js', '/README.md', '/.hidden.js', '/lib/', '/%2e%2e/%2e%2e/etc/passwd']) {
        const r = await httpRaw(srv.url + p);
        assert.equal(r.status, 404, p);
    }
});

// A page of another origin (a plain HTTP server on another port, no CSP of ours) tries the API.
test('a page of another origin cannot open the WebSocket or call an op', async () => {
    const evil = http.createServer((req, res) => {
        res.setHeader('content-type', 'text/html; charset=utf-8');
        res.end('<!doctype html><title>other</title><p>other origin</p>');
    });
    await new Promise((resolve) => evil.listen(0, '127.0.0.1', resolve));
    try {
        const page = await newPage(browser);
        await page.goto(`http://127.0.0.1:${evil.address().port}/`);
        const result = await page.evaluate((port) => new Promise((resolve) => {
            const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/ws`);
            ws.onopen = () => resolve('open');
            ws.onclose = () => resolve('closed');
            setTimeout(() => resolve('timeout'), 5000);
        }), srv.port);
        assert.equal(result, 'closed');
        // A "simple" cross-origin POST reaches the server (no preflight) but is refused before
        // the op runs; the page could not read the reply anyway (no CORS headers).
        await page.evaluate((port) => fetch(`http://127.0.0.1:${port}/api/v1/login`, {
            method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' },
            body: JSON.stringify({ login: 'admin', password: 'guess', device: 'x' }),
        }).catch(() => null), srv.port);
        await page.close();
        assert.match(srv.stderr(), /cross_origin_refused origin="http:\/\/127\.0\.0\.1:\d+"/);
        assert.doesNotMatch(srv.stderr(), /login_failed/);

        // The same from the server's own page works.
        const own = await newPage(browser);
        await own.goto(srv.url + '/');
        const same = await own.evaluate(() => new Promise((resolve) => {
            const ws = new WebSocket(`ws://${location.host}/api/v1/ws`);
            ws.onopen = () => { ws.close(); resolve('open'); };
            ws.onclose = () => resolve('closed');
            setTimeout(() => resolve('timeout'), 5000);
        }));
        assert.equal(same, 'open');
        assert.deepEqual(own.problems, []);
        await own.close();
    } finally {
        evil.close();
    }
    // The CLI sends no Origin: it keeps working.
    const r = await srv.kizuna(['login', 'admin']);
    assert.equal(r.code, 0);
});

test('imeFor: composing, Enter during conversion, committing', async () => {
    const page = await newPage(browser);
    await page.goto(srv.url + '/ime.html');
    await page.focus('#box');
    const ime = await imeFor(page);
    await ime.compose('けんどう');
    await ime.enterWhileComposing();
    await ime.commit('県道');
    await page.keyboard.type('12号線');
    await page.keyboard.press('Enter');
    const { log, sent } = await page.evaluate(() => ({ log: window.imeLog, sent: window.sent }));
    assert.ok(log.includes('compositionstart::'), log.join(' '));
    assert.ok(log.some((l) => l.startsWith('keydown:Enter:229:')), log.join(' '));
    assert.ok(log.includes('compositionend:県道:'), log.join(' '));
    // The Enter that confirmed the conversion sent nothing; the real one sent the whole line.
    assert.deepEqual(sent, ['県道12号線']);
    assert.deepEqual(page.problems, []);
    await ime.detach();
    await page.close();
});

// With no web_root a build's kizunad serves the checkout's clients/web (the README's run
// command): the real client's first page loads under the CSP with nothing missing or refused.
test('the real client is served by default and loads cleanly', async () => {
    const dflt = await startServer();
    try {
        const page = await newPage(browser);
        await page.goto(dflt.url + '/', { waitUntil: 'networkidle0' });
        assert.ok((await page.title()).includes('Kizuna'), await page.title());
        assert.deepEqual(page.problems, []);
        await page.close();
    } finally {
        await dflt.stop();
        dflt.remove();
    }
});
