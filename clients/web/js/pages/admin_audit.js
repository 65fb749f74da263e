// admin_audit.js - the audit log (audit.list), newest first, with filters (action, actor,
// target, since a date), paging back with next_before, and the CSV the server makes for the
// filtered entries (recorded itself as audit.export).
import { api } from '../api.js';
import { route } from '../router.js';
import { t, addStrings } from '../i18n.js';
import { h, formatTime, toast } from '../dom.js';
import { adminTabs, pageHeader, statusLine, errorText, table, field, downloadCsv, stamp, dateToMs } from './admin_common.js';

// The actions protocol.md lists, in the order an admin looks for them.
const ACTIONS = [
  'login', 'login.failed', 'login.locked', 'passwd', 'user.add', 'user.update', 'user.import', 'user.disable',
  'user.enable', 'user.reset_password', 'user.expire', 'user.export', 'session.revoke', 'session.idle_end',
  'invite.create', 'invite.revoke', 'invite.use', 'join.failed', 'notice.post', 'notice.edit',
  'notice.withdraw', 'notice.remind', 'notice.export', 'room.create', 'room.update', 'room.invite',
  'room.remove', 'room.leave', 'room.admin', 'room.archive', 'room.unarchive', 'room.export', 'msg.remove',
  'audit.export', 'peer.add', 'peer.remove', 'hotline.seat', 'device.register', 'device.sign', 'device.revoke',
  'server.id_adopt',
];

addStrings({
  ja: {
    'aa.nav': '監査ログ',
    'aa.title': '監査ログ',
    'aa.action': '操作',
    'aa.actor': '実行者（ログインID）',
    'aa.target': '対象（ログインID、notice:ID、room:ID）',
    'aa.since': 'この日以降',
    'aa.all': 'すべて',
    'aa.search': '絞り込む',
    'aa.csv': 'CSVで書き出す',
    'aa.more': 'さらに古いものを表示',
    'aa.c.at': '日時',
    'aa.c.actor': '実行者',
    'aa.c.action': '操作',
    'aa.c.target': '対象',
    'aa.c.address': 'アドレス',
    'aa.c.details': '内容',
    'aa.count': '{n} 件表示中',
  },
  en: {
    'aa.nav': 'Audit log',
    'aa.title': 'Audit log',
    'aa.action': 'Action',
    'aa.actor': 'Actor (login)',
    'aa.target': 'Target (login, notice:ID, room:ID)',
    'aa.since': 'Since',
    'aa.all': 'All',
    'aa.search': 'Filter',
    'aa.csv': 'Export CSV',
    'aa.more': 'Older entries',
    'aa.c.at': 'Time',
    'aa.c.actor': 'Actor',
    'aa.c.action': 'Action',
    'aa.c.target': 'Target',
    'aa.c.address': 'Address',
    'aa.c.details': 'Details',
    'aa.count': '{n} shown',
  },
});

// details as "key: value" lines (values JSON only when they are not text or numbers).
function details(d) {
  if (!d || typeof d !== 'object') return '';
  const keys = Object.keys(d);
  if (!keys.length) return '';
  return h('dl', { class: 'aa-details' }, ...keys.flatMap((k) => {
    const v = d[k];
    return [h('dt', {}, k), h('dd', {}, typeof v === 'string' || typeof v === 'number' ? String(v) : JSON.stringify(v))];
  }));
}

function page(container, params) {
  const status = statusLine();
  // Free text with suggestions: the server may record actions this list does not know yet.
  const action = h('input', { type: 'text', id: 'aa-action', list: 'aa-actions', autocomplete: 'off',
    autocapitalize: 'none', spellcheck: 'false', placeholder: t('aa.all') });
  const actionList = h('datalist', { id: 'aa-actions' }, ...ACTIONS.map((a) => h('option', { value: a })));
  const actor = h('input', { type: 'text', id: 'aa-actor', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false' });
  const target = h('input', { type: 'text', id: 'aa-target', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false' });
  const since = h('input', { type: 'date', id: 'aa-since' });
  const count = h('p', { class: 'muted', 'aria-live': 'polite' });
  const listBox = h('div', { class: 'aa-list' });
  const moreBtn = h('button', { type: 'button', class: 'btn', hidden: true }, t('aa.more'));
  const csvBtn = h('button', { type: 'button', class: 'btn', id: 'aa-csv' }, t('aa.csv'));
  if (params.action) action.value = params.action;
  if (params.target) target.value = params.target;
  if (params.actor) actor.value = params.actor;

  const form = h('form', { class: 'adm-filters', role: 'search', 'aria-label': t('aa.search') },
    field(t('aa.action'), action), actionList, field(t('aa.actor'), actor), field(t('aa.target'), target), field(t('aa.since'), since),
    h('div', { class: 'adm-buttons' }, h('button', { type: 'submit', class: 'btn btn-primary' }, t('aa.search'))));

  container.replaceChildren(h('div', { class: 'adm-page aa-page' },
    adminTabs('audit'),
    pageHeader(t('aa.title'), csvBtn), form, count, status.el, listBox, h('p', {}, moreBtn)));

  let entries = [];
  let next = null;

  function filters() {
    const a = {};
    if (action.value.trim()) a.action = action.value.trim();
    if (actor.value.trim()) a.actor = actor.value.trim();
    if (target.value.trim()) a.target = target.value.trim();
    const s = dateToMs(since.value);
    if (s) a.since = s;
    return a;
  }

  function render() {
    count.textContent = t('aa.count', { n: entries.length });
    listBox.replaceChildren(table([
      { label: t('aa.c.at'), cell: (e) => formatTime(e.at, { full: true }), header: true, class: 'aa-at' },
      { label: t('aa.c.actor'), cell: (e) => e.actor },
      { label: t('aa.c.action'), cell: (e) => h('code', {}, e.action) },
      { label: t('aa.c.target'), cell: (e) => e.target },
      { label: t('aa.c.address'), cell: (e) => e.address },
      { label: t('aa.c.details'), cell: (e) => details(e.details) },
    ], entries, { caption: t('aa.title') }));
    listBox.querySelector('table').id = 'aa-entries';
    moreBtn.hidden = next == null;
  }

  let seq = 0; // only the latest request draws (a filter sent while the first page loads)
  async function load(more) {
    const args = { ...filters(), limit: 100 };
    if (more && next != null) args.before = next;
    const my = ++seq;
    try {
      const r = await api.call('audit.list', args);
      if (my !== seq) return;
      entries = more ? entries.concat(r.entries || []) : r.entries || [];
      next = r.next_before ?? null;
      if (!(r.entries || []).length) next = null;
      status.set('');
      render();
    } catch (e) {
      status.set(errorText(e), 'error');
    }
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); load(false); });
  moreBtn.addEventListener('click', () => load(true));
  csvBtn.addEventListener('click', async () => {
    csvBtn.disabled = true;
    try {
      const r = await api.call('audit.list', { ...filters(), limit: 10000, format: 'csv' });
      downloadCsv(r.csv, `監査ログ_${stamp()}.csv`);
    } catch (e) {
      toast(errorText(e), 'error');
    } finally {
      csvBtn.disabled = false;
    }
  });
  status.set(t('adm.loading'));
  load(false);
}

route('#/admin/audit', page);
