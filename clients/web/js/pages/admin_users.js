// admin_users.js - the admins' user pages: the list (user.list) with filters by department,
// role, expiry and state and a text search, CSV export (the server's CSV, which imports back
// unchanged); adding a user (user.add, its one-time password shown once); editing one
// (user.update), disabling and enabling, a new one-time password (user.reset_password).
import { api } from '../api.js';
import { route, navItem } from '../router.js';
import { t, addStrings } from '../i18n.js';
import { h, formatTime, toast, confirmDialog } from '../dom.js';
import { login as myLogin } from '../session.js';
import {
  adminTabs, ROLES, roleLabel, pageHeader, statusLine, errorText, table, field, select, downloadCsv, stamp,
  dateToMs, msToDate, splitList,
} from './admin_common.js';

addStrings({
  ja: {
    'au.nav': 'ユーザー管理',
    'au.title': 'ユーザー',
    'au.add': 'ユーザーを追加',
    'au.import': 'CSVで一括登録',
    'au.export': 'CSVで書き出す',
    'au.filters': '絞り込み',
    'au.f.search': '検索（ログインID・氏名）',
    'au.f.dept': '部署',
    'au.f.role': '権限',
    'au.f.expiry': '有効期限',
    'au.f.state': '状態',
    'au.f.all': 'すべて',
    'au.f.no_dept': '（部署なし）',
    'au.f.exp_any': '期限あり（派遣職員）',
    'au.f.exp_soon': '7日以内に期限切れ',
    'au.f.exp_past': '期限切れ',
    'au.f.exp_none': '期限なし',
    'au.f.active': '有効',
    'au.f.disabled': '無効',
    'au.f.otp': '一時パスワードのまま',
    'au.count': '{n} 人 / 全 {all} 人',
    'au.more': '残り {n} 人を表示',
    'au.c.login': 'ログインID',
    'au.c.name': '氏名',
    'au.c.role': '権限',
    'au.c.dept': '部署',
    'au.c.groups': 'グループ',
    'au.c.state': '状態',
    'au.c.expires': '有効期限',
    'au.c.edit': '操作',
    'au.edit': '編集',
    'au.edit_of': '{login} を編集',
    'au.s.active': '有効',
    'au.s.disabled': '無効',
    'au.s.expired': '期限切れ',
    'au.s.otp': '一時パスワード',
    'au.back': 'ユーザー一覧へ',
    'au.login': 'ログインID',
    'au.login_hint': '英小文字・数字・. _ -（例: tanaka.hanako）',
    'au.name': '氏名',
    'au.role': '権限',
    'au.dept': '部署',
    'au.groups': 'グループ（; で区切る）',
    'au.email': 'メールアドレス',
    'au.phone': '電話番号',
    'au.expires': '有効期限（派遣職員など）',
    'au.expires_hint': 'この日の 0 時にアカウントが無効になります。空欄は期限なし。',
    'au.save': '保存',
    'au.saved': '{login} を保存しました',
    'au.create': '追加',
    'au.added': '{login} を追加しました',
    'au.otp': '一時パスワード',
    'au.otp_note': 'この画面でしか表示されません。本人に伝えてください。最初のログインで変更が必要です。',
    'au.disable': '無効にする',
    'au.enable': '有効にする',
    'au.disable_confirm': '{login} を無効にしますか？ すべての端末がすぐにログアウトします。',
    'au.disabled_done': '{login} を無効にしました',
    'au.enabled_done': '{login} を有効にしました',
    'au.reset': 'パスワードをリセット',
    'au.reset_confirm': '{login} のパスワードをリセットしますか？ すべての端末がログアウトし、新しい一時パスワードが発行されます。',
    'au.sessions': '端末とログイン',
    'au.created': '登録 {time}',
  },
  en: {
    'au.nav': 'Users',
    'au.title': 'Users',
    'au.add': 'Add a user',
    'au.import': 'Import CSV',
    'au.export': 'Export CSV',
    'au.filters': 'Filters',
    'au.f.search': 'Search (login, name)',
    'au.f.dept': 'Department',
    'au.f.role': 'Role',
    'au.f.expiry': 'Expiry',
    'au.f.state': 'State',
    'au.f.all': 'All',
    'au.f.no_dept': '(none)',
    'au.f.exp_any': 'Has an end date (dispatched)',
    'au.f.exp_soon': 'Ends within 7 days',
    'au.f.exp_past': 'Expired',
    'au.f.exp_none': 'No end date',
    'au.f.active': 'Active',
    'au.f.disabled': 'Disabled',
    'au.f.otp': 'One-time password not changed',
    'au.count': '{n} of {all}',
    'au.more': 'Show {n} more',
    'au.c.login': 'Login',
    'au.c.name': 'Name',
    'au.c.role': 'Role',
    'au.c.dept': 'Department',
    'au.c.groups': 'Groups',
    'au.c.state': 'State',
    'au.c.expires': 'Ends',
    'au.c.edit': 'Actions',
    'au.edit': 'Edit',
    'au.edit_of': 'Edit {login}',
    'au.s.active': 'Active',
    'au.s.disabled': 'Disabled',
    'au.s.expired': 'Expired',
    'au.s.otp': 'One-time password',
    'au.back': 'All users',
    'au.login': 'Login',
    'au.login_hint': 'a-z, 0-9, . _ - (e.g. tanaka.hanako)',
    'au.name': 'Name',
    'au.role': 'Role',
    'au.dept': 'Department',
    'au.groups': 'Groups (separated by ;)',
    'au.email': 'E-mail',
    'au.phone': 'Phone',
    'au.expires': 'Account ends (dispatched staff)',
    'au.expires_hint': 'Disabled at 0:00 that day. Empty: no end.',
    'au.save': 'Save',
    'au.saved': 'Saved {login}',
    'au.create': 'Add',
    'au.added': 'Added {login}',
    'au.otp': 'One-time password',
    'au.otp_note': 'Shown only now. Give it to the person; it must be changed at first login.',
    'au.disable': 'Disable',
    'au.enable': 'Enable',
    'au.disable_confirm': 'Disable {login}? Every device is signed out at once.',
    'au.disabled_done': 'Disabled {login}',
    'au.enabled_done': 'Enabled {login}',
    'au.reset': 'Reset password',
    'au.reset_confirm': "Reset {login}'s password? Every device is signed out and a new one-time password is made.",
    'au.sessions': 'Devices and sessions',
    'au.created': 'added {time}',
  },
});

const DAY = 86400000;
const NO_DEPT = '-none-';

function state(u) {
  if (u.expires_at && u.expires_at <= Date.now()) return 'expired';
  if (u.disabled) return 'disabled';
  if (u.must_change_password) return 'otp';
  return 'active';
}

function stateTag(u) {
  const s = state(u);
  return h('span', { class: 'tag au-state au-state-' + s }, t('au.s.' + s));
}

// The one-time password, shown once, with a button that copies it.
export function otpBox(login, password) {
  const code = h('code', { class: 'au-otp', id: 'au-otp' }, password);
  return h('div', { class: 'au-otp-box', role: 'status' },
    h('p', {}, h('strong', {}, `${t('au.otp')}（${login}）: `), code, ' ',
      h('button', { type: 'button', class: 'btn btn-quiet', onclick: () => navigator.clipboard?.writeText(password).catch(() => {}) }, 'コピー')),
    h('p', { class: 'muted' }, t('au.otp_note')));
}

// ---- the list ----

function list(container) {
  let users = [];
  const status = statusLine();
  const q = h('input', { type: 'search', id: 'au-q', autocomplete: 'off' });
  const dept = select([['', t('au.f.all')]], { id: 'au-dept' });
  const role = select([['', t('au.f.all')], ...ROLES.map((r) => [r, roleLabel(r)])], { id: 'au-role' });
  const expiry = select([['', t('au.f.all')], ['any', t('au.f.exp_any')], ['soon', t('au.f.exp_soon')],
    ['past', t('au.f.exp_past')], ['none', t('au.f.exp_none')]], { id: 'au-expiry' });
  const st = select([['', t('au.f.all')], ['active', t('au.f.active')], ['disabled', t('au.f.disabled')],
    ['otp', t('au.f.otp')]], { id: 'au-state' });
  const count = h('p', { class: 'muted au-count', 'aria-live': 'polite' });
  const tableBox = h('div', { class: 'au-table' });
  const exportBtn = h('button', { type: 'button', class: 'btn', id: 'au-export', onclick: exportCsv }, t('au.export'));

  container.replaceChildren(h('div', { class: 'adm-page au-page' },
    adminTabs('users'),
    pageHeader(t('au.title'),
      h('a', { class: 'btn btn-primary', href: '#/admin/users/new' }, t('au.add')),
      h('a', { class: 'btn', href: '#/admin/import' }, t('au.import')),
      exportBtn),
    h('form', { class: 'adm-filters', role: 'search', 'aria-label': t('au.filters'), onsubmit: (e) => e.preventDefault() },
      field(t('au.f.search'), q), field(t('au.f.dept'), dept), field(t('au.f.role'), role),
      field(t('au.f.expiry'), expiry), field(t('au.f.state'), st)),
    count, status.el, tableBox));

  function matches(u) {
    const text = q.value.trim().toLowerCase();
    if (text && !u.login.toLowerCase().includes(text) && !(u.name || '').toLowerCase().includes(text)) return false;
    if (dept.value === NO_DEPT ? !!u.department : (dept.value && u.department !== dept.value)) return false;
    if (role.value && u.role !== role.value) return false;
    const now = Date.now();
    const e = u.expires_at;
    if (expiry.value === 'any' && !e) return false;
    if (expiry.value === 'none' && e) return false;
    if (expiry.value === 'past' && !(e && e <= now)) return false;
    if (expiry.value === 'soon' && !(e && e > now && e <= now + 7 * DAY)) return false;
    const s = state(u);
    if (st.value === 'active' && (s === 'disabled' || s === 'expired')) return false;
    if (st.value === 'disabled' && !(s === 'disabled' || s === 'expired')) return false;
    if (st.value === 'otp' && !u.must_change_password) return false;
    return true;
  }

  // A town has hundreds of staff, a prefecture thousands: draw the first PAGE rows that match
  // and more on request, so that typing in the search box stays quick.
  const PAGE = 300;
  let shown = PAGE;
  function render() {
    const all = users.filter(matches);
    const rows = all.slice(0, shown);
    count.textContent = t('au.count', { n: all.length, all: users.length });
    tableBox.replaceChildren(table([
      { label: t('au.c.login'), cell: (u) => h('a', { href: '#/admin/user/' + encodeURIComponent(u.login) }, u.login), header: true },
      { label: t('au.c.name'), cell: (u) => u.name },
      { label: t('au.c.role'), cell: (u) => roleLabel(u.role) },
      { label: t('au.c.dept'), cell: (u) => u.department },
      { label: t('au.c.groups'), cell: (u) => (u.groups || []).join('、') },
      { label: t('au.c.state'), cell: stateTag },
      { label: t('au.c.expires'), cell: (u) => (u.expires_at ? formatTime(u.expires_at) : '') },
    ], rows, { caption: t('au.title') }),
    all.length > rows.length ? h('p', {}, h('button', { type: 'button', class: 'btn', id: 'au-more',
      onclick: () => { shown += PAGE * 10; render(); } }, t('au.more', { n: all.length - rows.length }))) : null);
    tableBox.querySelector('table').id = 'au-users';
  }

  for (const el of [q, dept, role, expiry, st]) el.addEventListener('input', () => { shown = PAGE; render(); });

  async function load() {
    try {
      const r = await api.call('user.list');
      users = r.users || [];
      const names = [...new Set(users.map((u) => u.department).filter(Boolean))].sort();
      const keep = dept.value;
      dept.replaceChildren(...[['', t('au.f.all')], [NO_DEPT, t('au.f.no_dept')], ...names.map((n) => [n, n])]
        .map(([v, l]) => h('option', { value: v }, l)));
      dept.value = keep;
      status.set('');
      render();
    } catch (e) {
      status.set(errorText(e), 'error');
    }
  }

  async function exportCsv() {
    exportBtn.disabled = true;
    try {
      const r = await api.call('user.list', { format: 'csv' });
      downloadCsv(r.csv, `ユーザー一覧_${stamp()}.csv`);
    } catch (e) {
      toast(errorText(e), 'error');
    } finally {
      exportBtn.disabled = false;
    }
  }

  status.set(t('adm.loading'));
  load();
}

// ---- add and edit ----

function userForm(container, params) {
  const editing = params.login != null;
  const login = editing ? params.login : null;
  const status = statusLine();
  const result = h('div', { class: 'au-result' });
  const f = {
    login: h('input', { type: 'text', required: true, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false',
      pattern: '[a-z0-9][a-z0-9._\\-]{0,63}' }),
    name: h('input', { type: 'text', maxlength: '100', autocomplete: 'off' }),
    role: select(ROLES.map((r) => [r, roleLabel(r)])),
    department: h('input', { type: 'text', list: 'au-depts', autocomplete: 'off' }),
    groups: h('input', { type: 'text', autocomplete: 'off' }),
    email: h('input', { type: 'email', autocomplete: 'off' }),
    phone: h('input', { type: 'tel', autocomplete: 'off' }),
    expires: h('input', { type: 'date' }),
  };
  f.role.value = 'staff';
  const depts = h('datalist', { id: 'au-depts' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'au-submit' }, editing ? t('au.save') : t('au.create'));
  const extra = h('div', { class: 'adm-buttons au-extra' });
  const meta = h('p', { class: 'muted' });
  let original = null;

  const form = h('form', { class: 'adm-form', novalidate: true },
    editing ? null : field(t('au.login'), f.login, t('au.login_hint')),
    field(t('au.name'), f.name), field(t('au.role'), f.role), field(t('au.dept'), f.department), depts,
    field(t('au.groups'), f.groups), field(t('au.email'), f.email), field(t('au.phone'), f.phone),
    field(t('au.expires'), f.expires, t('au.expires_hint')),
    status.el, h('div', { class: 'adm-buttons' }, submit));

  container.replaceChildren(h('div', { class: 'adm-page au-form-page' },
    adminTabs('users'),
    h('p', { class: 'adm-back' }, h('a', { href: '#/admin/users' }, '← ' + t('au.back'))),
    pageHeader(editing ? t('au.edit_of', { login }) : t('au.add')), meta, result, form, extra));

  api.call('dept.list').then((r) => depts.replaceChildren(...(r.departments || []).map((d) => h('option', { value: d.name })))).catch(() => {});

  // Editing: nothing can be typed until the user's data is in the form (else it would
  // overwrite what was typed).
  const lock = (on) => { for (const el of [...Object.values(f), submit]) el.disabled = on; };
  if (editing) lock(true);

  function fill(u) {
    original = u;
    lock(false);
    f.name.value = u.name || '';
    f.role.value = u.role;
    f.department.value = u.department || '';
    f.groups.value = (u.groups || []).join(';');
    f.email.value = u.email || '';
    f.phone.value = u.phone || '';
    f.expires.value = msToDate(u.expires_at);
    meta.replaceChildren(stateTag(u), ' ', t('au.created', { time: formatTime(u.created_at, { full: true }) }));
    const self = u.login === myLogin();
    extra.replaceChildren(
      h('a', { class: 'btn', href: '#/admin/sessions/' + encodeURIComponent(u.login) }, t('au.sessions')),
      h('button', { type: 'button', class: 'btn', id: 'au-reset', onclick: reset }, t('au.reset')),
      self ? null : u.disabled
        ? h('button', { type: 'button', class: 'btn', id: 'au-enable', onclick: () => toggle(false) }, t('au.enable'))
        : h('button', { type: 'button', class: 'btn btn-danger', id: 'au-disable', onclick: () => toggle(true) }, t('au.disable')));
  }

  async function load() {
    try {
      const r = await api.call('user.list');
      const u = (r.users || []).find((x) => x.login === login);
      if (!u) { status.set(errorText({ message: 'not found: ' + login }), 'error'); return; }
      fill(u);
      f.name.focus();
    } catch (e) {
      status.set(errorText(e), 'error');
    }
  }

  async function toggle(disable) {
    if (disable && !await confirmDialog(t('au.disable_confirm', { login }), { danger: true, ok: t('au.disable') })) return;
    try {
      const r = await api.call(disable ? 'user.disable' : 'user.enable', { login });
      toast(t(disable ? 'au.disabled_done' : 'au.enabled_done', { login }));
      fill({ ...original, ...r.user, groups: original.groups });
    } catch (e) {
      toast(errorText(e), 'error');
    }
  }

  async function reset() {
    if (!await confirmDialog(t('au.reset_confirm', { login }), { danger: true, ok: t('au.reset') })) return;
    try {
      const r = await api.call('user.reset_password', { login });
      result.replaceChildren(otpBox(login, r.password));
      fill({ ...original, ...r.user, groups: original.groups });
      result.querySelector('code')?.scrollIntoView({ block: 'nearest' });
    } catch (e) {
      toast(errorText(e), 'error');
    }
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    status.set('');
    const args = {};
    const groups = splitList(f.groups.value);
    const exp = dateToMs(f.expires.value);
    if (editing) {
      args.login = login;
      if (f.name.value !== (original?.name || '')) args.name = f.name.value;
      if (f.role.value !== original?.role) args.role = f.role.value;
      if (f.department.value.trim() !== (original?.department || '')) args.department = f.department.value.trim();
      if (groups.join(';') !== (original?.groups || []).join(';')) args.groups = groups;
      if (f.email.value.trim() !== (original?.email || '')) args.email = f.email.value.trim();
      if (f.phone.value.trim() !== (original?.phone || '')) args.phone = f.phone.value.trim();
      if (f.expires.value !== msToDate(original?.expires_at)) args.expires_at = exp || 0;
    } else {
      args.login = f.login.value.trim();
      if (f.name.value.trim()) args.name = f.name.value.trim();
      args.role = f.role.value;
      if (f.department.value.trim()) args.department = f.department.value.trim();
      if (groups.length) args.groups = groups;
      if (f.email.value.trim()) args.email = f.email.value.trim();
      if (f.phone.value.trim()) args.phone = f.phone.value.trim();
      if (exp) args.expires_at = exp;
    }
    submit.disabled = true;
    try {
      const r = await api.call(editing ? 'user.update' : 'user.add', args);
      if (editing) {
        toast(t('au.saved', { login }));
        fill(r.user);
      } else {
        toast(t('au.added', { login: r.user.login }));
        form.reset();
        f.role.value = 'staff';
        result.replaceChildren(
          h('p', {}, h('a', { href: '#/admin/user/' + encodeURIComponent(r.user.login) }, t('au.added', { login: r.user.login }))),
          r.password ? otpBox(r.user.login, r.password) : '');
      }
    } catch (e) {
      status.set(errorText(e), 'error');
    } finally {
      submit.disabled = false;
    }
  });

  if (editing) load();
  if (!editing) f.login.focus();
}

navItem({ route: '#/admin/users', label: 'adm.nav', roles: ['admin'], order: 60,
  match: (hash) => hash.startsWith('#/admin/') });
route('#/admin/users', list);
route('#/admin/users/new', userForm);
route('#/admin/user/:login', userForm);
