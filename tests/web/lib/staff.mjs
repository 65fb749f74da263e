// staff.mjs - what the notice and administration browser tests share on top of harness.mjs:
// staff accounts made with the real CLI, logging a page in through the login form, and files
// the browser downloads (CDP download behaviour into a fresh directory, waited for with a
// deadline).
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { userPassword, waitForText, screenshot, PHONE, DESKTOP } from './harness.mjs';

/**
 * Logs the CLI in as admin once, then adds each user ({login, name, dept, role, groups}) with
 * the password userPassword(login), so no one-time password change is asked.
 */
export async function addStaff(srv, people) {
    await srv.kizuna(['login', 'admin']);
    for (const p of people) {
        const args = ['admin', 'user', 'add', p.login, '--name', p.name, '--password-stdin'];
        if (p.dept) args.push('--dept', p.dept);
        if (p.role) args.push('--role', p.role);
        if (p.groups) args.push('--groups', p.groups);
        await srv.kizuna(args, { input: userPassword(p.login) + '\n' });
    }
}

/** Opens the login page, logs in as login, and waits until the page has left #/login. */
export async function loginAs(page, srv, login, { next } = {}) {
    await page.goto(srv.url + '/#/login' + (next ? '?next=' + encodeURIComponent(next) : ''));
    await page.waitForSelector('#login-id');
    await page.type('#login-id', login);
    await page.type('#login-password', userPassword(login));
    await page.click('#login-submit');
    await page.waitForFunction(() => !location.hash.startsWith('#/login'));
}

/**
 * Makes page's downloads go into a new directory, which it returns, and records the name each
 * download link asks for (its download attribute) in the page, for downloadNames(page).
 * Chromium saves a file under that name only when its locale can encode it: with LANG set to a
 * locale the machine lacks (ja_JP.UTF-8 without the locales package), a Japanese name becomes
 * "download", so tests check the name the page asked for and the bytes of the saved file.
 */
export async function downloadsInto(page) {
    await page.evaluate(() => {
        if (window.__kzDownloads) return;
        window.__kzDownloads = [];
        const click = HTMLAnchorElement.prototype.click;
        HTMLAnchorElement.prototype.click = function () {
            if (this.hasAttribute('download')) window.__kzDownloads.push(this.getAttribute('download'));
            return click.call(this);
        };
    });
    const dir = mkdtempSync(path.join(tmpdir(), 'kizuna-dl-'));
    // Browser-wide, for the page's own context (a context made by createBrowserContext has its
    // own download settings).
    const cdp = await page.browser().target().createCDPSession();
    const ctx = page.browserContext().id;
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: dir, eventsEnabled: true,
        ...(ctx ? { browserContextId: ctx } : {}) });
    return dir;
}

/**
 * Waits (15 s) for a finished download in dir whose name matches re; returns {name, bytes}.
 * Chromium writes NAME.crdownload first and renames it when done.
 */
export async function waitForDownload(dir, re = /./, { timeout = 15000 } = {}) {
    const end = Date.now() + timeout;
    for (;;) {
        const done = readdirSync(dir).filter((n) => !n.endsWith('.crdownload') && re.test(n));
        if (done.length) {
            const name = done[0];
            const file = path.join(dir, name);
            // a file renamed into place is whole; read it once its size holds still
            const size = statSync(file).size;
            await new Promise((r) => setTimeout(r, 50));
            if (statSync(file).size === size)
                return { name, bytes: readFileSync(file) };
        }
        if (Date.now() > end)
            throw new Error(`no download matching ${re} in ${dir} within ${timeout} ms (has: ${readdirSync(dir).join(', ')})`);
        await new Promise((r) => setTimeout(r, 100));
    }
}

/** The names the page's download links asked for, oldest first (see downloadsInto). */
export async function downloadNames(page) {
    return page.evaluate(() => window.__kzDownloads || []);
}

/** Clicks the OK (submit) button of the modal dialog dom.js's confirmDialog opened. */
export async function confirmOk(page) {
    await page.waitForSelector('dialog[open] .dialog-buttons button[type="submit"]');
    await page.click('dialog[open] .dialog-buttons button[type="submit"]');
    await page.waitForFunction(() => !document.querySelector('dialog[open]'));
}

/** Removes the toasts now showing, so that a screenshot shows the page under them. */
export async function clearToasts(page) {
    await page.evaluate(() => document.querySelectorAll('#toasts .toast').forEach((e) => e.remove()));
}

/**
 * Opens the CSV import page, gives it file and asks for the dry run (確認); returns the file
 * input, for another file to be tried on the same page.
 */
export async function checkImport(page, srv, file) {
    await page.goto(srv.url + '/#/admin/import');
    const input = await page.waitForSelector('#ai-file');
    await input.uploadFile(file);
    await page.click('#ai-check');
    return input;
}

/** After an import is applied: the one-time passwords the page shows, {login: password}. */
export async function importedPasswords(page) {
    await page.waitForSelector('.ai-passwords tbody tr');
    return Object.fromEntries(await page.$$eval('.ai-passwords tbody tr',
        (trs) => trs.map((tr) => [tr.children[0].innerText.trim(), tr.children[1].innerText.trim()])));
}

/**
 * Screenshots name (desktop-sized, toasts cleared) and name-phone (phone-sized), then goes back
 * to the desktop size; a change of isMobile reloads the page, so each waits for selector.
 */
export async function screenshotBoth(page, name, selector) {
    await clearToasts(page);
    await screenshot(page, name);
    await page.setViewport(PHONE);
    await page.waitForSelector(selector);
    await screenshot(page, name + '-phone');
    await page.setViewport(DESKTOP);
    await page.waitForSelector(selector);
}

export { waitForText };

/**
 * Clicks the first element matching selector once it exists, in the page itself: the room list
 * redraws when the server's answer comes, and a handle taken a moment before can be detached
 * by then (puppeteer's page.click fails with "Node is detached from document").
 */
export async function clickFresh(page, selector) {
    await page.waitForSelector(selector);
    await page.$eval(selector, (e) => e.click());
}
