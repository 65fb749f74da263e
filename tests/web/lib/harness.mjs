// harness.mjs - what every browser test of the web client shares: a real kizunad (this build's,
// KIZUNAD_PATH from CTest) on an ephemeral loopback port with a fresh data directory, the real
// kizuna CLI as any user, Debian's chromium driven by puppeteer-core, and helpers with deadlines
// (never a sleep for readiness): waiting for text, screenshots, IME composition, and watching a
// page for console errors and CSP violations.
//
// Nothing outlives the test file: every kizunad, `kizuna` child and browser started here is
// killed when the process ends, however it ends (normal exit, an uncaught error, SIGTERM or
// SIGINT from ctest or a person), and kizunad and long-running CLI children also get SIGKILL
// from the kernel if node itself is SIGKILLed (setpriv --pdeathsig). Browsers talk to us over a
// pipe (puppeteer's `pipe: true`), so chromium exits when the pipe's other end dies.
//
// Usage (see serve.test.mjs):
//   import { startServer, launchBrowser, newPage, watchPage, waitForText, screenshot } from './lib/harness.mjs';
//   const srv = await startServer();                 // {url, port, dataDir, adminPassword, ...}
//   await srv.kizuna(['admin', 'user', 'add', 'tanaka', '--password', ...]);   // as admin
//   const browser = await launchBrowser();
//   const page = await newPage(browser, { mobile: true });
//   await page.goto(srv.url);
//   ...
//   await browser.close(); await srv.stop();          // stop() throws unless kizunad exits 0
import { spawn, execFile } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, readFileSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository's tests/web directory. */
export const WEB_TESTS_DIR = path.resolve(here, '..');
/** The repository root. */
export const SOURCE_DIR = path.resolve(here, '../../..');

/** The admin's password in every server the harness starts (as tests/support/harness.h). */
export const ADMIN_PASSWORD = 'admin-pass-123';
/** Users other than admin that tests create get the password `${login}${PW_SUFFIX}`. */
export const PW_SUFFIX = '-password-1';
export const userPassword = (login) => (login === 'admin' ? ADMIN_PASSWORD : login + PW_SUFFIX);

const START_DEADLINE_MS = Number(process.env.KIZUNA_TEST_START_MS) > 0 ? Number(process.env.KIZUNA_TEST_START_MS) : 20000;
const STOP_DEADLINE_MS = 20000;
const CLI_DEADLINE_MS = 30000;

function binary(envName) {
    const p = process.env[envName];
    if (!p)
        throw new Error(`${envName} is not set: run the browser tests with ctest (tests/CMakeLists.txt sets it), ` +
            `or set it to a built binary, e.g. ${envName}=build/web/${envName === 'KIZUNAD_PATH' ? 'kizunad' : 'kizuna'}`);
    return p;
}

/** Where screenshots go: the build directory's web-artifacts/ (KIZUNA_WEB_ARTIFACTS from CTest). */
export const ARTIFACTS_DIR = process.env.KIZUNA_WEB_ARTIFACTS || path.join(SOURCE_DIR, 'build', 'web-artifacts');

// ---- cleanup on every exit path ----

const children = new Set(); // ChildProcess: kizunad and long-running CLI children
const browsers = new Set();

function killAll() {
    for (const c of children) {
        try { c.kill('SIGKILL'); } catch { /* already gone */ }
    }
    children.clear();
    for (const b of browsers) {
        try { b.process()?.kill('SIGKILL'); } catch { /* already gone */ }
    }
    browsers.clear();
}
process.on('exit', killAll); // synchronous: kill() is
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(sig, () => {
        killAll();
        process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 })[sig]);
    });
}
// An uncaught error ends the process through 'exit' too (node's default, or node:test's own
// handler failing the test it happened in): no handler of ours is needed for it.

// Runs argv[0] with the kernel's SIGKILL when node dies, however it dies.
function spawnTracked(argv, opts) {
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...argv], opts);
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
}

function withDeadline(promise, ms, what) {
    let timer;
    const deadline = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    });
    return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

// ---- kizunad ----

// The test defaults of tests/support/harness.c: the cheapest argon2id (tests exercise the path,
// not the cost) and request rates no test reaches.
const TEST_CONFIG = {
    argon2_opslimit: 1,
    argon2_memlimit_kib: 8,
    shutdown_grace_ms: 2000,
    read_push_interval_ms: 50,
    login_lockout_s: 1,
    housekeeping_interval_s: 1,
    session_touch_interval_s: 1,
    requests_per_second: 100000,
    request_burst: 100000,
};

function runFile(file, args, { env = {}, input, timeout = CLI_DEADLINE_MS } = {}) {
    return new Promise((resolve) => {
        const child = execFile(file, args, { env: { ...process.env, ...env }, timeout, killSignal: 'SIGKILL', maxBuffer: 64 << 20 },
            (err, stdout, stderr) => {
                const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
                resolve({ code, signal: err?.signal ?? null, stdout, stderr });
            });
        if (input !== undefined)
            child.stdin.end(input);
        else
            child.stdin.end();
    });
}

/**
 * Starts a real kizunad: `kizunad init` (admin / ADMIN_PASSWORD) in a new temporary directory,
 * then `kizunad serve` on 127.0.0.1, port 0, waiting for its "listening on" line (20 s, or
 * KIZUNA_TEST_START_MS). `config` members override the test defaults (e.g. {web_root: dir}).
 * Returns the server: {url, port, dataDir, configPath, adminPassword, pid, kizuna(args, opts),
 * kizunaSpawn(args, opts), stop(), kill(), restart(), stderr()}. The caller stops it; if it
 * does not, it is killed when the process ends.
 */
export async function startServer({ config = {} } = {}) {
    const kizunad = binary('KIZUNAD_PATH');
    const dataDir = mkdtempSync(path.join(tmpdir(), 'kizuna-web-'));
    const configPath = dataDir + '.json';
    writeFileSync(configPath, JSON.stringify({ ...TEST_CONFIG, ...config }) + '\n');
    const init = await runFile(kizunad, ['init', '--data', dataDir, '--config', configPath],
        { env: { KIZUNA_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    if (init.code !== 0)
        throw new Error(`kizunad init failed (${init.code}): ${init.stdout}${init.stderr}`);
    const srv = {
        url: '', port: 0, dataDir, configPath, adminPassword: ADMIN_PASSWORD, pid: 0, child: null,
        stderrPath: path.join(dataDir, 'stderr.log'),
    };

    async function serve(port) {
        const errFd = openSync(srv.stderrPath, 'a');
        const child = spawnTracked([kizunad, 'serve', '--data', dataDir, '--config', configPath,
            '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', errFd] });
        closeSync(errFd);
        srv.child = child;
        srv.pid = child.pid;
        let out = '';
        const line = await withDeadline(new Promise((resolve, reject) => {
            child.stdout.on('data', (d) => {
                out += d;
                const m = /listening on 127\.0\.0\.1:(\d+)\n/.exec(out);
                if (m)
                    resolve(Number(m[1]));
            });
            child.once('exit', (code, sig) => reject(new Error(`kizunad exited (${code ?? sig}) before listening: ${srv.stderr()}`)));
        }), START_DEADLINE_MS, 'kizunad serve').catch((e) => {
            child.kill('SIGKILL');
            throw e;
        });
        child.stdout.resume(); // keep draining whatever else it prints
        srv.port = line;
        srv.url = `http://127.0.0.1:${line}`;
    }

    /** The server's stderr so far (its log), for failure messages. */
    srv.stderr = () => {
        try { return readFileSync(srv.stderrPath, 'utf8'); } catch { return ''; }
    };

    /** SIGTERM and wait (20 s); throws unless it exits 0 (a clean stop: under ASan, no leaks). */
    srv.stop = async () => {
        const child = srv.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) {
            srv.child = null;
            return;
        }
        const done = new Promise((resolve) => child.once('exit', (code, sig) => resolve({ code, sig })));
        child.kill('SIGTERM');
        const { code, sig } = await withDeadline(done, STOP_DEADLINE_MS, 'kizunad stop').catch((e) => {
            child.kill('SIGKILL');
            throw e;
        });
        srv.child = null;
        if (code !== 0)
            throw new Error(`kizunad did not stop cleanly (${code ?? sig}); its log:\n${srv.stderr().slice(-4000)}`);
    };

    /** SIGKILL (a crash), and wait for it. */
    srv.kill = async () => {
        const child = srv.child;
        srv.child = null;
        if (!child || child.exitCode !== null || child.signalCode !== null)
            return;
        const done = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await done;
    };

    /** Serves again on the same data directory and port (after stop or kill). */
    srv.restart = async () => {
        if (srv.child)
            await srv.stop();
        await serve(srv.port);
    };

    /** Removes the data directory (the server must be stopped). */
    srv.remove = () => {
        rmSync(dataDir, { recursive: true, force: true });
        rmSync(configPath, { force: true });
    };

    function cliEnv(user, password, env) {
        const dir = path.join(dataDir, 'cli', user);
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        return {
            KIZUNA_CONFIG_DIR: dir,
            KIZUNA_SERVER: srv.url,
            KIZUNA_PASSWORD: password ?? userPassword(user),
            ...env,
        };
    }

    /**
     * Runs `kizuna ARGS...` as `user` (default admin): its own config dir (its device), the
     * server's URL, and KIZUNA_PASSWORD (default userPassword(user)) for `kizuna login USER`.
     * Resolves to {code, stdout, stderr}; with check (the default) a nonzero exit throws.
     */
    srv.kizuna = async (args, { user = 'admin', password, input, env = {}, check = true, timeout } = {}) => {
        const r = await runFile(binary('KIZUNA_PATH'), args, { env: cliEnv(user, password, env), input, timeout });
        if (check && r.code !== 0)
            throw new Error(`kizuna ${args.join(' ')} (as ${user}) exited ${r.code}: ${r.stdout}${r.stderr}`);
        return r;
    };

    /** Starts a long-running `kizuna ARGS...` (e.g. tail) as user; the child is killed at exit. */
    srv.kizunaSpawn = (args, { user = 'admin', password, env = {} } = {}) =>
        spawnTracked([binary('KIZUNA_PATH'), ...args], { env: { ...process.env, ...cliEnv(user, password, env) }, stdio: ['ignore', 'pipe', 'pipe'] });

    await serve(0);
    return srv;
}

// ---- the browser ----

/** A phone's screen (CSS pixels), and a desktop's. */
export const PHONE = { width: 390, height: 844, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
export const DESKTOP = { width: 1280, height: 800, deviceScaleFactor: 1 };

/**
 * Launches Debian's chromium (CHROMIUM_PATH or /usr/bin/chromium), headless, Japanese UI. With
 * {mobile: true} every new page defaults to a phone's screen. Close it with browser.close();
 * if a test does not, it is killed when the process ends.
 */
export async function launchBrowser({ mobile = false } = {}) {
    const args = ['--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check',
        '--disable-background-networking', '--disable-component-update', '--disable-sync', '--lang=ja-JP',
        '--font-render-hinting=none'];
    if (process.getuid?.() === 0)
        args.push('--no-sandbox'); // chromium refuses to run as root with its sandbox
    const browser = await puppeteer.launch({
        executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
        headless: true,
        pipe: true, // chromium exits when we do
        args,
        defaultViewport: mobile ? PHONE : DESKTOP,
        env: { ...process.env, LANG: 'ja_JP.UTF-8', TZ: process.env.TZ || 'Asia/Tokyo' },
        protocolTimeout: 60000,
    });
    browsers.add(browser);
    browser.once('disconnected', () => browsers.delete(browser));
    return browser;
}

/**
 * Closes a BrowserContext made with browser.createBrowserContext() (its pages with it) within
 * CONTEXT_CLOSE_MS. Under load Chromium has taken longer than protocolTimeout to dispose of a
 * context whose service worker was still running (Target.disposeBrowserContext timed out), and
 * closing its pages one by one first can hang for good (puppeteer's page.close() waits for the
 * target to go with no deadline: a fresh-Debian run's web_pwa hung there until ctest's 300 s).
 * What a test checks is done by then, so a context not closed in time is left to
 * browser.close(), which ends the whole browser process, and the wait is logged.
 */
const CONTEXT_CLOSE_MS = 20000;
export async function closeContext(ctx) {
    const closing = ctx.close().then(() => 'closed', (e) => `failed: ${e.message}`);
    let timer;
    const late = new Promise((resolve) => { timer = setTimeout(() => resolve('late'), CONTEXT_CLOSE_MS); });
    const r = await Promise.race([closing, late]);
    clearTimeout(timer);
    if (r !== 'closed')
        console.error(`# closeContext: the browser context was not closed (${r}); browser.close() ends it`);
}

/**
 * A new page in browser (or in a BrowserContext: browser.createBrowserContext() gives a second,
 * separate user with its own storage). {mobile: true} gives it a phone's screen, {mobile: false}
 * a desktop's, else the browser's default. Every page is watched (watchPage): page.problems
 * lists its console errors, uncaught errors, failed requests and CSP violations.
 */
export async function newPage(browserOrContext, { mobile } = {}) {
    const page = await browserOrContext.newPage();
    if (mobile !== undefined)
        await page.setViewport(mobile ? PHONE : DESKTOP);
    page.setDefaultTimeout(15000);
    await watchPage(page);
    return page;
}

/**
 * Records what goes wrong on page into page.problems (strings): console errors, uncaught
 * exceptions, requests that failed or got 4xx/5xx, and CSP violations (a
 * securitypolicyviolation listener installed in every document). newPage calls it.
 */
export async function watchPage(page) {
    if (page.problems)
        return page.problems;
    const problems = [];
    page.problems = problems;
    page.on('console', (m) => {
        if (m.type() === 'error')
            problems.push(`console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
    page.on('response', (r) => {
        if (r.status() >= 400)
            problems.push(`HTTP ${r.status()}: ${r.url()}`);
    });
    await page.exposeFunction('__kzCspViolation', (v) => problems.push(`CSP violation: ${v}`));
    await page.evaluateOnNewDocument(() => {
        document.addEventListener('securitypolicyviolation', (e) => {
            // eslint-disable-next-line no-undef
            window.__kzCspViolation(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} in ${e.sourceFile || e.documentURI}`);
        });
    });
    return problems;
}

/** Waits until the page's visible text contains text (15 s unless timeout says otherwise). */
export async function waitForText(page, text, { timeout = 15000 } = {}) {
    try {
        await page.waitForFunction((t) => document.body && document.body.innerText.includes(t), { timeout, polling: 100 }, text);
    } catch (e) {
        const body = await page.evaluate(() => document.body?.innerText ?? '').catch(() => '(no page)');
        throw new Error(`"${text}" did not appear within ${timeout} ms; the page shows:\n${body.slice(0, 2000)}`);
    }
}

/** Waits until the page's visible text no longer contains text. */
export async function waitForNoText(page, text, { timeout = 15000 } = {}) {
    await page.waitForFunction((t) => !document.body || !document.body.innerText.includes(t), { timeout, polling: 100 }, text);
}

/** Writes a PNG of page to ARTIFACTS_DIR/NAME.png (fullPage by default); returns its path. */
export async function screenshot(page, name, { fullPage = true } = {}) {
    mkdirSync(ARTIFACTS_DIR, { recursive: true });
    const file = path.join(ARTIFACTS_DIR, `${name}.png`);
    await page.screenshot({ path: file, fullPage });
    return file;
}

/**
 * Japanese input through the browser's IME path (CDP): compose(text) shows text as an
 * unconfirmed conversion (compositionstart/compositionupdate, input events with isComposing),
 * commit(text) confirms it (insertText: compositionend, then input), cancel() drops it. Typical
 * use, the "Enter during conversion must not send" check:
 *   const ime = await imeFor(page); await page.focus('textarea');
 *   await ime.compose('けんどう'); await ime.enterWhileComposing(); await ime.commit('県道');
 */
export async function imeFor(page) {
    const cdp = await page.createCDPSession();
    return {
        compose: (text) => cdp.send('Input.imeSetComposition', { text, selectionStart: text.length, selectionEnd: text.length }),
        commit: (text) => cdp.send('Input.insertText', { text }),
        cancel: () => cdp.send('Input.imeSetComposition', { text: '', selectionStart: 0, selectionEnd: 0 }),
        // Enter as an IME sends it while converting: keyCode 229 ("Process"), which pages
        // must ignore (KeyboardEvent.isComposing is true between compositionstart and end).
        enterWhileComposing: async () => {
            await cdp.send('Input.dispatchKeyEvent', { type: 'rawKeyDown', key: 'Enter', code: 'Enter', windowsVirtualKeyCode: 229, nativeVirtualKeyCode: 229 });
            await cdp.send('Input.dispatchKeyEvent', { type: 'keyUp', key: 'Enter', code: 'Enter', windowsVirtualKeyCode: 229, nativeVirtualKeyCode: 229 });
        },
        detach: () => cdp.detach(),
    };
}

/**
 * One HTTP request with node:http (no decompression, no added headers, unlike fetch): resolves
 * to {status, headers (lower-case names), body: Buffer}. 10 s deadline.
 */
export function httpRaw(url, { method = 'GET', headers = {}, body, timeout = 10000 } = {}) {
    return new Promise((resolve, reject) => {
        const req = http.request(url, { method, headers, agent: false, timeout }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
            res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no reply within ${timeout} ms`)));
        req.on('error', reject);
        req.end(body);
    });
}
