// admin_invites.js - invitations for dispatched staff (invite.create/list/revoke): a new
// code is shown once, with its join link drawn as a QR code on the page (the vendored
// qrcode-generator, onto a canvas: no data: URLs, no eval, nothing the CSP refuses), so that a
// phone's camera opens this web client's join page, #/join/CODE (the `join` op, as `kizuna
// join` does), where the person picks a login id and a password and is logged in.
import { api, deviceLabel } from '../api.js';
import { route, go } from '../router.js';
import { t, addStrings } from '../i18n.js';
import { h, formatTime, toast, confirmDialog } from '../dom.js';
import {
  adminTabs, roleLabel, pageHeader, statusLine, errorText, table, field, select, checkbox, splitList, dateToMs, localToMs,
} from './admin_common.js';

addStrings({
  ja: {
    'iv.nav': '招待',
    'iv.title': '応援職員の招待',
    'iv.intro': '招待コードを作ると、応援に来た職員が自分のスマートフォンでQRコードを読み取り、自分でアカウントを作れます。アカウントは指定した日に自動で無効になります。',
    'iv.new': '新しい招待',
    'iv.role': '権限',
    'iv.dept': '部署',
    'iv.groups': 'グループ（; で区切る）',
    'iv.uses': '使える人数',
    'iv.expires': 'コードの有効期限',
    'iv.expires_hint': '空欄は72時間後。',
    'iv.account_expires': 'アカウントの終了日（応援期間の終わり）',
    'iv.note': 'メモ（例: 仙台市からの応援職員）',
    'iv.create': '招待コードを作る',
    'iv.created': '招待コードを作りました',
    'iv.code': '招待コード',
    'iv.link': '参加用リンク',
    'iv.qr_label': '参加用リンクのQRコード: {link}',
    'iv.once': 'コードはこの画面でしか表示されません。QRコードを読み取ってもらうか、リンクを送ってください。',
    'iv.copy': 'リンクをコピー',
    'iv.copied': 'コピーしました',
    'iv.print': '印刷',
    'iv.loopback': 'この画面は {host} で開かれているため、リンクとQRコードはスマートフォンからは開けません。スマートフォンから届くサーバーのアドレス（例: http://192.168.1.10:8080）でこの画面を開き直してから招待を作ってください。',
    'iv.list': '招待の一覧',
    'iv.c.id': '番号',
    'iv.c.state': '状態',
    'iv.c.role': '権限',
    'iv.c.dept': '部署',
    'iv.c.uses': '使用',
    'iv.c.expires': 'コード期限',
    'iv.c.account': 'アカウント終了',
    'iv.c.note': 'メモ',
    'iv.c.by': '作成',
    'iv.revoke': '無効にする',
    'iv.revoke_confirm': '招待 {id} を無効にしますか？ 作成済みのアカウントはそのまま残ります。',
    'iv.revoked': '招待 {id} を無効にしました',
    'iv.s.active': '有効',
    'iv.s.used': '使用済み',
    'iv.s.expired': '期限切れ',
    'iv.s.revoked': '無効',
    'jn.title': 'Kizuna に参加',
    'jn.intro': '招待を受けた応援職員の方は、ログインIDとパスワードを決めて参加してください。',
    'jn.code': '招待コード',
    'jn.login': 'ログインID（英小文字・数字・. _ -）',
    'jn.name': '氏名（例: 佐藤 太郎（仙台市））',
    'jn.password': 'パスワード（10文字以上）',
    'jn.again': 'パスワード（確認）',
    'jn.shared': '共用の端末（この端末に何も残しません）',
    'jn.submit': '参加する',
    'jn.busy': '参加しています…',
    'jn.mismatch': 'パスワードが一致しません。',
    'jn.failed': '参加できません: {message}',
    'jn.done': 'ようこそ、{name} さん',
    'jn.e.code': '招待コードが違います。入力し直してください',
    'jn.e.expired': 'この招待コードは有効期限を過ぎています。管理者に新しいコードを依頼してください',
    'jn.e.used': 'この招待コードは使える人数に達しました。管理者に依頼してください',
    'jn.e.revoked': 'この招待コードは無効にされました。管理者に依頼してください',
    'jn.e.taken': 'このログインIDはすでに使われています。別のIDにしてください',
    'jn.e.rate': '失敗が続いたため、しばらく試せません',
  },
  en: {
    'iv.nav': 'Invitations',
    'iv.title': 'Invite dispatched staff',
    'iv.intro': 'Dispatched staff scan the QR code with their phone and make their own account, which is disabled on the date you set.',
    'iv.new': 'New invitation',
    'iv.role': 'Role',
    'iv.dept': 'Department',
    'iv.groups': 'Groups (separated by ;)',
    'iv.uses': 'How many people',
    'iv.expires': 'Code valid until',
    'iv.expires_hint': 'Empty: 72 hours.',
    'iv.account_expires': 'Accounts end on',
    'iv.note': 'Note (e.g. staff from Sendai)',
    'iv.create': 'Make a code',
    'iv.created': 'Invitation made',
    'iv.code': 'Code',
    'iv.link': 'Join link',
    'iv.qr_label': 'QR code of the join link: {link}',
    'iv.once': 'The code is shown only now. Let them scan the QR code, or send the link.',
    'iv.copy': 'Copy link',
    'iv.copied': 'Copied',
    'iv.print': 'Print',
    'iv.loopback': 'This page was opened at {host}, which a phone cannot reach: open it at the address phones use (e.g. http://192.168.1.10:8080) before making the invitation.',
    'iv.list': 'Invitations',
    'iv.c.id': 'No.',
    'iv.c.state': 'State',
    'iv.c.role': 'Role',
    'iv.c.dept': 'Department',
    'iv.c.uses': 'Used',
    'iv.c.expires': 'Code ends',
    'iv.c.account': 'Accounts end',
    'iv.c.note': 'Note',
    'iv.c.by': 'Made',
    'iv.revoke': 'Revoke',
    'iv.revoke_confirm': 'Revoke invitation {id}? Accounts already made stay.',
    'iv.revoked': 'Invitation {id} revoked',
    'iv.s.active': 'active',
    'iv.s.used': 'used up',
    'iv.s.expired': 'expired',
    'iv.s.revoked': 'revoked',
    'jn.title': 'Join Kizuna',
    'jn.intro': 'Invited to help? Choose a login id and a password to join.',
    'jn.code': 'Invitation code',
    'jn.login': 'Login id (a-z, 0-9, . _ -)',
    'jn.name': 'Your name',
    'jn.password': 'Password (10 characters or more)',
    'jn.again': 'Password again',
    'jn.shared': 'Shared device (keep nothing on it)',
    'jn.submit': 'Join',
    'jn.busy': 'Joining…',
    'jn.mismatch': 'The passwords differ.',
    'jn.failed': 'Cannot join: {message}',
    'jn.done': 'Welcome, {name}',
    'jn.e.code': 'No such invitation code: check it',
    'jn.e.expired': 'This invitation code has expired: ask for a new one',
    'jn.e.used': 'This invitation code has been used up: ask an administrator',
    'jn.e.revoked': 'This invitation code was revoked: ask an administrator',
    'jn.e.taken': 'This login id is taken: choose another',
    'jn.e.rate': 'Too many failures: wait a while',
  },
});

// The link a phone opens: this web client's join page, on the address the admin is using.
export function joinLink(code) {
  return `${location.origin}/#/join/${encodeURIComponent(code)}`;
}

// Draws text as a QR code on a canvas: dark modules on white, a quiet zone of 4 modules, each
// module a whole number of pixels (sharp for a camera). Error correction M, as the CLI's. The
// encoder (52 KB) is loaded the first time, not with the app.
export async function qrCanvas(text, label, px = 6) {
  const { default: qrcode } = await import('../../vendor/qrcode-generator/qrcode.js');
  const qr = qrcode(0, 'M');
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount();
  const quiet = 4;
  const size = (n + quiet * 2) * px;
  const c = h('canvas', { width: String(size), height: String(size), class: 'iv-qr', role: 'img',
    'aria-label': label, 'data-modules': String(n) });
  const g = c.getContext('2d');
  g.fillStyle = '#fff';
  g.fillRect(0, 0, size, size);
  g.fillStyle = '#000';
  for (let y = 0; y < n; y++)
    for (let x = 0; x < n; x++)
      if (qr.isDark(y, x)) g.fillRect((x + quiet) * px, (y + quiet) * px, px, px);
  return c;
}

function invitesPage(container) {
  const status = statusLine();
  const role = select([['staff', roleLabel('staff')], ['hq', roleLabel('hq')]], { id: 'iv-role' });
  const dept = h('input', { type: 'text', id: 'iv-dept', value: '応援職員', autocomplete: 'off' });
  const groups = h('input', { type: 'text', id: 'iv-groups', autocomplete: 'off' });
  const uses = h('input', { type: 'number', id: 'iv-uses', min: '1', max: '1000', value: '5', inputmode: 'numeric' });
  const expires = h('input', { type: 'datetime-local', id: 'iv-expires' });
  const accountExpires = h('input', { type: 'date', id: 'iv-account-expires' });
  const note = h('input', { type: 'text', id: 'iv-note', maxlength: '120', autocomplete: 'off' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'iv-create' }, t('iv.create'));
  const result = h('section', { class: 'iv-result', id: 'iv-result', 'aria-live': 'polite' });
  const listBox = h('div', { class: 'iv-list' });

  const form = h('form', { class: 'adm-form iv-form', novalidate: true },
    h('h2', {}, t('iv.new')),
    field(t('iv.role'), role), field(t('iv.dept'), dept), field(t('iv.groups'), groups),
    field(t('iv.uses'), uses), field(t('iv.account_expires'), accountExpires),
    field(t('iv.expires'), expires, t('iv.expires_hint')), field(t('iv.note'), note),
    status.el, h('div', { class: 'adm-buttons' }, submit));

  container.replaceChildren(h('div', { class: 'adm-page iv-page' },
    adminTabs('invites'),
    pageHeader(t('iv.title')), h('p', { class: 'muted' }, t('iv.intro')),
    h('div', { class: 'iv-grid' }, form, result),
    h('section', { class: 'rp-section', 'aria-labelledby': 'iv-h-list' }, h('h2', { id: 'iv-h-list' }, t('iv.list')), listBox)));

  async function showCode(code, inv) {
    const link = joinLink(code);
    const canvas = await qrCanvas(link, t('iv.qr_label', { link }));
    result.replaceChildren(
      h('h2', { tabindex: '-1' }, t('iv.created')),
      h('figure', { class: 'iv-figure' }, canvas,
        h('figcaption', {}, h('span', { class: 'iv-code-label' }, t('iv.code')), ' ',
          h('code', { class: 'iv-code', id: 'iv-code' }, code))),
      h('p', { class: 'iv-link-line' }, h('span', { class: 'adm-label' }, t('iv.link')), ' ',
        h('a', { href: link, id: 'iv-link', class: 'iv-link' }, link)),
      h('p', { class: 'adm-buttons' },
        h('button', { type: 'button', class: 'btn', onclick: () => navigator.clipboard?.writeText(link).then(() => toast(t('iv.copied'))).catch(() => {}) }, t('iv.copy')),
        h('button', { type: 'button', class: 'btn', onclick: () => window.print() }, t('iv.print'))),
      h('p', { class: 'muted' }, `${roleLabel(inv.role)}・${inv.department || ''}・${inv.uses_max}人・${formatTime(inv.expires_at, { full: true })}まで`),
      h('p', { class: 'iv-once' }, t('iv.once')),
      // A phone cannot open the loopback address this page was opened on.
      /^(localhost|127\.|\[::1\])/.test(location.host)
        ? h('p', { class: 'iv-warn', role: 'note' }, t('iv.loopback', { host: location.host })) : null);
    result.querySelector('h2').focus();
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const args = { role: role.value };
    if (dept.value.trim()) args.department = dept.value.trim();
    const g = splitList(groups.value);
    if (g.length) args.groups = g;
    const n = parseInt(uses.value, 10);
    if (n > 0) args.uses = n;
    const e = localToMs(expires.value);
    if (e) args.expires_at = e;
    const ae = dateToMs(accountExpires.value);
    if (ae) args.account_expires_at = ae;
    if (note.value.trim()) args.note = note.value.trim();
    submit.disabled = true;
    status.set('');
    try {
      const r = await api.call('invite.create', args);
      await showCode(r.code, r.invite);
      load();
    } catch (err) {
      status.set(errorText(err), 'error');
    } finally {
      submit.disabled = false;
    }
  });

  async function revoke(inv) {
    if (!await confirmDialog(t('iv.revoke_confirm', { id: inv.id }), { danger: true, ok: t('iv.revoke') })) return;
    try {
      await api.call('invite.revoke', { invite: inv.id });
      toast(t('iv.revoked', { id: inv.id }));
      load();
    } catch (e) {
      toast(errorText(e), 'error');
    }
  }

  async function load() {
    try {
      const r = await api.call('invite.list');
      listBox.replaceChildren(table([
        { label: t('iv.c.id'), cell: (i) => String(i.id), class: 'num', header: true },
        { label: t('iv.c.state'), cell: (i) => h('span', { class: 'tag iv-state-' + i.state }, t('iv.s.' + i.state)) },
        { label: t('iv.c.role'), cell: (i) => roleLabel(i.role) },
        { label: t('iv.c.dept'), cell: (i) => [i.department, ...(i.groups || [])].filter(Boolean).join('・') },
        { label: t('iv.c.uses'), cell: (i) => `${i.uses}/${i.uses_max}`, class: 'num' },
        { label: t('iv.c.expires'), cell: (i) => formatTime(i.expires_at) },
        { label: t('iv.c.account'), cell: (i) => (i.account_expires_at ? formatTime(i.account_expires_at) : '') },
        { label: t('iv.c.note'), cell: (i) => i.note },
        { label: t('iv.c.by'), cell: (i) => `${i.created_by}・${formatTime(i.created_at)}` },
        { label: t('iv.revoke'), cell: (i) => (i.state === 'active'
          ? h('button', { type: 'button', class: 'btn btn-danger', 'aria-label': `${t('iv.revoke')}: ${i.id}`, onclick: () => revoke(i) }, t('iv.revoke'))
          : '') },
      ], r.invites || [], { caption: t('iv.list') }));
    } catch (e) {
      listBox.replaceChildren(h('p', { class: 'form-error' }, errorText(e)));
    }
  }
  load();
}

// ---- the join page (public) ----

// `join` goes over HTTP and the browser then logs in with the password just chosen (api.js
// binds a session only through its own login), and the join's own session is ended at once,
// so the new user has one session, not two.
async function joinHttp(args) {
  const res = await fetch('/api/v1/join', { method: 'POST', body: JSON.stringify(args),
    headers: { 'Content-Type': 'application/json' }, credentials: 'omit', cache: 'no-store' });
  const r = await res.json().catch(() => ({ ok: false, error: { code: 'internal', message: 'HTTP ' + res.status } }));
  if (!r.ok) {
    const e = new Error(r.error?.message || 'HTTP ' + res.status);
    e.code = r.error?.code;
    throw e;
  }
  return r;
}

// join's refusals in the page's words (protocol.md, "join"); the server's text after them.
function joinError(e) {
  const m = e.message || '';
  const key = /no such invitation code/.test(m) ? 'jn.e.code'
    : /expired/.test(m) ? 'jn.e.expired' : /used up/.test(m) ? 'jn.e.used' : /revoked/.test(m) ? 'jn.e.revoked'
      : e.code === 'conflict' ? 'jn.e.taken' : e.code === 'rate_limited' ? 'jn.e.rate' : null;
  return key ? `${t(key)}（${m}）` : m;
}

function joinPage(container, params) {
  const err = h('p', { class: 'form-error', role: 'alert', id: 'jn-error' });
  const code = h('input', { type: 'text', id: 'jn-code', required: true, autocomplete: 'off',
    autocapitalize: 'characters', spellcheck: 'false', value: params.code || '' });
  const login = h('input', { type: 'text', id: 'jn-login', required: true, autocomplete: 'username',
    autocapitalize: 'none', spellcheck: 'false' });
  const name = h('input', { type: 'text', id: 'jn-name', autocomplete: 'name' });
  const pw = h('input', { type: 'password', id: 'jn-password', required: true, minlength: '10', autocomplete: 'new-password' });
  const pw2 = h('input', { type: 'password', id: 'jn-again', required: true, autocomplete: 'new-password' });
  const shared = checkbox(t('jn.shared'), { id: 'jn-shared' });
  const btn = h('button', { type: 'submit', class: 'btn-primary', id: 'jn-submit' }, t('jn.submit'));
  const form = h('form', { class: 'card login jn-form', 'aria-labelledby': 'jn-title', novalidate: true },
    h('h1', { id: 'jn-title' }, t('jn.title')),
    h('p', { class: 'muted' }, t('jn.intro')),
    field(t('jn.code'), code), field(t('jn.login'), login), field(t('jn.name'), name),
    field(t('jn.password'), pw), field(t('jn.again'), pw2), shared.el, err, btn);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    if (!code.value.trim() || !login.value.trim() || !pw.value) { err.textContent = t('jn.failed', { message: t('jn.login') }); return; }
    if (pw.value !== pw2.value) { err.textContent = t('jn.mismatch'); pw2.focus(); return; }
    btn.disabled = true;
    btn.textContent = t('jn.busy');
    const args = { code: code.value.trim(), login: login.value.trim(), password: pw.value, device: deviceLabel() };
    if (name.value.trim()) args.name = name.value.trim();
    if (shared.input.checked) args.shared = true;
    try {
      const r = await joinHttp(args);
      await api.login(args.login, args.password, { shared: !!args.shared });
      fetch('/api/v1/logout', { method: 'POST', body: '{}', headers: { Authorization: 'Bearer ' + r.token },
        credentials: 'omit' }).catch(() => {});
      toast(t('jn.done', { name: r.user.name || r.user.login }));
      go('#/notices');
    } catch (ex) {
      err.textContent = t('jn.failed', { message: joinError(ex) });
      btn.disabled = false;
      btn.textContent = t('jn.submit');
    }
  });
  container.append(h('div', { class: 'center' }, form));
  (params.code ? login : code).focus();
}

route('#/admin/invites', invitesPage);
route('#/join/:code', joinPage, { public: true });
route('#/join', joinPage, { public: true });
