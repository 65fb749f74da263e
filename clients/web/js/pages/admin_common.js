// admin_common.js - what the notice and administration pages share: the page header, tables,
// form fields with labels, CSV downloads of the server's own CSV (its UTF-8 BOM kept, so Excel
// reads Japanese names), dates for <input type="date">, and error texts. Draws nothing itself.
import { h } from '../dom.js';
import { t, addStrings } from '../i18n.js';

// The pages' own styles (css/admin.css), linked once from here: app.css stays the shell's.
if (!document.querySelector('link[data-kz="admin-css"]')) {
  document.head.append(h('link', { rel: 'stylesheet', href: new URL('../../css/admin.css', import.meta.url).pathname,
    'data-kz': 'admin-css' }));
}

addStrings({
  ja: {
    'adm.role.admin': '管理者',
    'adm.role.hq': '本部',
    'adm.role.staff': '職員',
    'adm.error': 'エラー: {message}',
    'adm.error_code': '{what}（{message}）',
    'adm.code.bad_request': '入力に誤りがあります',
    'adm.code.unauthorized': 'ログインが必要です',
    'adm.code.forbidden': 'この操作をする権限がありません',
    'adm.code.not_found': '見つかりません',
    'adm.code.conflict': '現在の状態と合わないため、できません',
    'adm.code.too_large': '大きすぎます',
    'adm.code.rate_limited': '混み合っています。しばらくしてからやり直してください',
    'adm.code.internal': 'サーバーでエラーが起きました。何も変更されていません',
    'adm.code.unavailable': 'サーバーが今は書き込めません。何も変更されていません',
    'adm.code.offline': 'サーバーに接続できません',
    'adm.code.timeout': 'サーバーから応答がありません',
    'adm.loading': '読み込み中…',
    'adm.none': 'ありません',
    'adm.download_failed': 'ダウンロードできませんでした: {message}',
    'adm.nav': '管理',
    'adm.tabs': '管理メニュー',
    'adm.tab.users': 'ユーザー',
    'adm.tab.import': 'CSV一括登録',
    'adm.tab.invites': '応援職員の招待',
    'adm.tab.sessions': '端末・ログイン',
    'adm.tab.audit': '監査ログ',
    'adm.tab.fed': '連携・ホットライン',
    'adm.tab.mail': 'メール送信状況',
  },
  en: {
    'adm.role.admin': 'Admin',
    'adm.role.hq': 'HQ',
    'adm.role.staff': 'Staff',
    'adm.error': 'Error: {message}',
    'adm.error_code': '{what} ({message})',
    'adm.code.bad_request': 'Something in the request is wrong',
    'adm.code.unauthorized': 'Please log in',
    'adm.code.forbidden': 'You may not do this',
    'adm.code.not_found': 'Not found',
    'adm.code.conflict': 'Not possible in the current state',
    'adm.code.too_large': 'Too large',
    'adm.code.rate_limited': 'Busy: try again shortly',
    'adm.code.internal': 'The server failed; nothing was changed',
    'adm.code.unavailable': 'The server cannot write now; nothing was changed',
    'adm.code.offline': 'Cannot reach the server',
    'adm.code.timeout': 'The server did not answer',
    'adm.loading': 'Loading…',
    'adm.none': 'None',
    'adm.download_failed': 'Could not download: {message}',
    'adm.nav': 'Admin',
    'adm.tabs': 'Administration',
    'adm.tab.users': 'Users',
    'adm.tab.import': 'CSV import',
    'adm.tab.invites': 'Invitations',
    'adm.tab.sessions': 'Sessions and devices',
    'adm.tab.audit': 'Audit log',
    'adm.tab.fed': 'Federation',
    'adm.tab.mail': 'E-mail',
  },
});

export const ROLES = ['admin', 'hq', 'staff'];

// The administration pages, one navigation entry for all of them (the header's bar stays short
// on a phone) and this bar of tabs at the top of each.
const TABS = [
  ['users', '#/admin/users'], ['import', '#/admin/import'], ['invites', '#/admin/invites'],
  ['sessions', '#/admin/sessions'], ['audit', '#/admin/audit'], ['fed', '#/admin/federation'],
  ['mail', '#/admin/mail'],
];

export function adminTabs(currentTab) {
  return h('nav', { class: 'adm-tabs', 'aria-label': t('adm.tabs') },
    h('ul', {}, ...TABS.map(([k, href]) => h('li', {},
      h('a', { href, class: k === currentTab ? 'active' : null, 'aria-current': k === currentTab ? 'page' : null },
        t('adm.tab.' + k))))));
}

export function roleLabel(role) {
  return ROLES.includes(role) ? t('adm.role.' + role) : role || '';
}

// The text of a refused call (api.call rejects with an Error carrying .code and .message): what
// the code means, in the page's language, then the server's own words.
const CODES = ['bad_request', 'unauthorized', 'forbidden', 'not_found', 'conflict', 'too_large', 'rate_limited',
  'internal', 'unavailable', 'offline', 'timeout'];
export function errorText(e) {
  const message = (e && e.message) || String(e);
  if (e && CODES.includes(e.code)) return t('adm.error_code', { what: t('adm.code.' + e.code), message });
  return t('adm.error', { message });
}

// <header> with an h1 and, after it, the page's actions (buttons, links).
export function pageHeader(title, ...actions) {
  return h('header', { class: 'adm-head' },
    h('h1', { class: 'adm-title', tabindex: '-1' }, title),
    actions.length ? h('div', { class: 'adm-actions' }, ...actions.filter(Boolean)) : null);
}

// A status line that screen readers announce (role=status); returns {el, set(text, kind)}.
export function statusLine() {
  const el = h('p', { class: 'adm-status', role: 'status', 'aria-live': 'polite' });
  return {
    el,
    set(text, kind) {
      el.textContent = text || '';
      el.className = 'adm-status' + (kind ? ' adm-status-' + kind : '');
    },
  };
}

// A table: columns [{label, cell(row) -> Node|string, class?}], rows; caption for screen
// readers. Wrapped in a scrolling box so that wide tables scroll on a phone, not the page.
// keep: stays a grid on a phone too (scrolling sideways), for tables of numbers.
export function table(columns, rows, { caption, rowClass, empty, keep } = {}) {
  const body = rows.map((r) =>
    h('tr', { class: rowClass ? rowClass(r) || '' : '' },
      ...columns.map((c) => {
        const v = c.cell(r);
        return h(c.header ? 'th' : 'td', { class: c.class || null, scope: c.header ? 'row' : null,
          'data-label': c.label }, v == null ? '' : v);
      })));
  return h('div', { class: 'table-wrap adm-table-wrap', tabindex: '0', role: 'region',
    'aria-label': caption || '' },
  h('table', { class: keep ? 'table adm-table adm-keep' : 'table adm-table' },
    caption ? h('caption', { class: 'adm-caption' }, caption) : null,
    h('thead', {}, h('tr', {}, ...columns.map((c) =>
      h('th', { scope: 'col', class: c.class || '' }, c.label)))),
    h('tbody', {}, ...(body.length ? body
      : [h('tr', {}, h('td', { colspan: String(columns.length), class: 'adm-empty' },
        empty || t('adm.none')))]))));
}

let fieldSeq = 0;
// A labelled form field: label text, then the control (input/select/textarea made by the
// caller), and an optional hint tied to it with aria-describedby.
export function field(label, control, hint) {
  const id = control.id || 'adm-f' + ++fieldSeq;
  control.id = id;
  const parts = [h('label', { for: id, class: 'adm-label' }, label), control];
  if (hint) {
    const hid = id + '-hint';
    control.setAttribute('aria-describedby', hid);
    parts.push(h('small', { id: hid, class: 'adm-hint' }, hint));
  }
  return h('div', { class: 'field adm-field' }, ...parts);
}

// A checkbox with its label after it.
export function checkbox(label, attrs = {}) {
  const input = h('input', { type: 'checkbox', ...attrs });
  return { input, el: h('label', { class: 'adm-check' }, input, ' ', label) };
}

export function select(options, attrs = {}) {
  return h('select', attrs, ...options.map(([value, label]) => h('option', { value }, label)));
}

// Saves text the server made as a CSV file. The server's CSV begins with U+FEFF; a Blob made
// from a JS string encodes it as UTF-8, so the file begins with EF BB BF, which is what makes
// Excel read it as UTF-8 rather than Shift_JIS. The name may be Japanese.
export function downloadCsv(csv, filename) {
  const blob = new Blob([csv], { type: 'text/csv;charset=utf-8' });
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: filename, class: 'adm-hidden' });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30000);
}

// A file name part: no characters Windows refuses, at most 40 characters.
export function fileSafe(s) {
  return String(s || '').replace(/[\\/:*?"<>|\u0000-\u001f]+/g, '_').trim().slice(0, 40);
}

// 2026-11-30_1405 in the browser's zone, for file names.
export function stamp(d = new Date()) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}_${p(d.getHours())}${p(d.getMinutes())}`;
}

// <input type="date"> value <-> ms since the epoch (the end of that day is not implied: the
// account ends at the start of the day chosen, in the browser's zone, as the CLI's dates do).
export function dateToMs(value) {
  if (!value) return null;
  const [y, m, d] = value.split('-').map(Number);
  return new Date(y, m - 1, d).getTime();
}

export function msToDate(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

// <input type="datetime-local"> value -> ms.
export function localToMs(value) {
  if (!value) return null;
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? ms : null;
}

// "a;b, c" -> ["a","b","c"]
export function splitList(s) {
  return String(s || '').split(/[;,、，\n]/).map((x) => x.trim()).filter(Boolean);
}

// The bytes of a File, base64 (for user.import's csv_base64).
export async function fileBase64(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000)
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}
