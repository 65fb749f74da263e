// notices.js - the notice board (お知らせ): urgent and must-read notices pinned on top, read,
// acknowledge (確認しました) and answer a roll-call (安否確認) in one tap; one notice's page;
// HQ's form to post a notice or a roll-call; and, anywhere in the app, the alert banner that a
// pushed urgent notice (notice.alert) or a reminder (notice.remind) raises. The report page is
// notice_report.js.
import { api } from '../api.js';
import { route, navItem, go } from '../router.js';
import { t, addStrings } from '../i18n.js';
import { h, formatTime, toast, banner } from '../dom.js';
import { user } from '../session.js';
import { pageHeader, statusLine, errorText, field, checkbox, splitList, localToMs } from './admin_common.js';

addStrings({
  ja: {
    'nt.nav': 'お知らせ',
    'nt.board': 'お知らせ',
    'nt.push_offer': 'Kizuna を閉じていても、緊急のお知らせ・安否確認をこの端末に通知します。',
    'nt.push_on': 'この端末は緊急のお知らせ・安否確認の通知を受け取ります。',
    'nt.push_denied': 'このブラウザーでは通知が拒否されています（ブラウザーのサイト設定で許可できます）。',
    'nt.push_enable': '通知を受け取る', 'nt.push_disable': '通知を止める',
    'nt.post': 'お知らせを投稿',
    'nt.post_rollcall': '安否確認を送る',
    'nt.important': '重要・要対応',
    'nt.others': 'その他のお知らせ',
    'nt.posted': '自分が送ったお知らせ（集計）',
    'nt.empty': 'お知らせはありません',
    'nt.urgent': '緊急',
    'nt.unread': '未読',
    'nt.pinned': '固定',
    'nt.withdrawn': '取消',
    'nt.rollcall': '安否確認',
    'nt.ask_ack': '要確認',
    'nt.acked': '確認済み',
    'nt.ack': '確認しました',
    'nt.answered': '回答済み: {choice}',
    'nt.answer_prompt': '回答してください（1回押すと送信されます）',
    'nt.answer_change': '回答を変更できます',
    'nt.answer_sent': '回答しました: {choice}',
    'nt.ack_sent': '確認しました',
    'nt.open': '開く',
    'nt.by': '{author}・{time}',
    'nt.report': '集計を見る',
    'nt.back': 'お知らせ一覧へ',
    'nt.revision': '第{n}版',
    'nt.expires': '回答期限 {time}',
    'nt.closed': '受付終了',
    'nt.comment': 'コメント（任意）',
    'nt.comment_send': 'コメントを送る',
    'nt.comment_sent': 'コメントを送りました',
    'nt.urgent_banner': '緊急のお知らせ: {title}',
    'nt.remind_banner': '再通知: {title}（まだ対応していません）',
    'nt.unread_urgent': '未読の緊急のお知らせが {n} 件あります',
    'nt.new_arrived': '新しいお知らせ: {title}',
    'nt.form.kind': '種類',
    'nt.form.kind_notice': 'お知らせ',
    'nt.form.kind_rollcall': '安否確認（回答を集計）',
    'nt.form.title': '件名',
    'nt.form.body': '本文',
    'nt.form.to': '宛先',
    'nt.form.to_all': '全職員',
    'nt.form.depts': '部署',
    'nt.form.groups': 'グループ',
    'nt.form.users': '個人（ログインID、カンマ区切り）',
    'nt.form.urgent': '緊急（全員の画面に警告を表示）',
    'nt.form.ask_ack': '「確認しました」を求める',
    'nt.form.pinned': '一覧の上部に固定',
    'nt.form.choices': '回答の選択肢（1行に1つ、2〜20個）',
    'nt.form.expires': '回答期限（任意）',
    'nt.form.submit': '送信',
    'nt.form.no_audience': '宛先を選んでください',
    'nt.form.posted': '{n} 人に送信しました',
    'nt.rollcall_title': '安否確認',
    'nt.rollcall_body': '地震が発生しました。自身の安否と出勤の可否を回答してください。',
    'nt.default_choices': '無事・出勤可\n無事・出勤不可\n負傷\nその他',
  },
  en: {
    'nt.nav': 'Notices',
    'nt.board': 'Notices',
    'nt.push_offer': 'Get urgent notices and roll-calls on this device, even while Kizuna is closed.',
    'nt.push_on': 'This device gets urgent notices and roll-calls as notifications.',
    'nt.push_denied': "Notifications are blocked in this browser (allow them in the site's settings).",
    'nt.push_enable': 'Turn on notifications', 'nt.push_disable': 'Turn off',
    'nt.post': 'Post a notice',
    'nt.post_rollcall': 'Send a roll-call',
    'nt.important': 'Important: action needed',
    'nt.others': 'Other notices',
    'nt.posted': 'Notices you sent (reports)',
    'nt.empty': 'No notices',
    'nt.urgent': 'Urgent',
    'nt.unread': 'Unread',
    'nt.pinned': 'Pinned',
    'nt.withdrawn': 'Withdrawn',
    'nt.rollcall': 'Roll-call',
    'nt.ask_ack': 'Please acknowledge',
    'nt.acked': 'Acknowledged',
    'nt.ack': 'Acknowledge',
    'nt.answered': 'Answered: {choice}',
    'nt.answer_prompt': 'Answer (one tap sends it)',
    'nt.answer_change': 'You can change your answer',
    'nt.answer_sent': 'Answered: {choice}',
    'nt.ack_sent': 'Acknowledged',
    'nt.open': 'Open',
    'nt.by': '{author} · {time}',
    'nt.report': 'Report',
    'nt.back': 'All notices',
    'nt.revision': 'revision {n}',
    'nt.expires': 'answer by {time}',
    'nt.closed': 'closed',
    'nt.comment': 'Comment (optional)',
    'nt.comment_send': 'Send comment',
    'nt.comment_sent': 'Comment sent',
    'nt.urgent_banner': 'Urgent notice: {title}',
    'nt.remind_banner': 'Reminder: {title} (not done yet)',
    'nt.unread_urgent': '{n} unread urgent notice(s)',
    'nt.new_arrived': 'New notice: {title}',
    'nt.form.kind': 'Kind',
    'nt.form.kind_notice': 'Notice',
    'nt.form.kind_rollcall': 'Roll-call (answers counted)',
    'nt.form.title': 'Title',
    'nt.form.body': 'Text',
    'nt.form.to': 'To',
    'nt.form.to_all': 'All staff',
    'nt.form.depts': 'Departments',
    'nt.form.groups': 'Groups',
    'nt.form.users': 'People (login ids, comma separated)',
    'nt.form.urgent': 'Urgent (alert on every screen)',
    'nt.form.ask_ack': 'Ask to acknowledge',
    'nt.form.pinned': 'Pin to the top',
    'nt.form.choices': 'Choices (one per line, 2-20)',
    'nt.form.expires': 'Answer by (optional)',
    'nt.form.submit': 'Send',
    'nt.form.no_audience': 'Choose who receives it',
    'nt.form.posted': 'Sent to {n} people',
    'nt.rollcall_title': 'Roll-call',
    'nt.rollcall_body': 'An earthquake occurred. Tell us whether you are safe and can come in.',
    'nt.default_choices': 'Safe, can come in\nSafe, cannot come in\nInjured\nOther',
  },
});

const me = () => user() || {};
export const isHQ = () => ['hq', 'admin'].includes(me().role);

// Does the notice still ask the current user for something?
function pending(n) {
  if (!n.me || n.withdrawn_at || closed(n)) return false;
  if (n.choices?.length && !n.me.response) return true;
  if (n.ask_ack && !n.me.acked_at) return true;
  return false;
}
const closed = (n) => !!n.withdrawn_at || (n.expires_at != null && n.expires_at <= Date.now());
const urgent = (n) => n.priority === 'urgent';
// Pinned on top: urgent or pinned notices not withdrawn, and any that still asks something.
const important = (n) => !n.withdrawn_at && (urgent(n) || n.pinned || pending(n));

function badges(n) {
  const b = [];
  const add = (cls, key) => b.push(h('span', { class: 'nt-badge nt-badge-' + cls }, t(key)));
  if (n.withdrawn_at) add('withdrawn', 'nt.withdrawn');
  if (urgent(n)) add('urgent', 'nt.urgent');
  if (n.choices?.length) add('rollcall', 'nt.rollcall');
  if (n.ask_ack) add(n.me?.acked_at ? 'done' : 'ack', n.me?.acked_at ? 'nt.acked' : 'nt.ask_ack');
  if (n.pinned) add('pinned', 'nt.pinned');
  if (n.me && !n.me.read_at) add('unread', 'nt.unread');
  return h('span', { class: 'nt-badges' }, ...b);
}

// After a redraw, the keyboard focus goes back to the same control of the same notice (which
// may have moved to another section of the board).
function refocus(n, selector) {
  const el = document.querySelector(`[data-notice="${n.id}"] ${selector}`);
  if (el) el.focus({ preventScroll: false });
}

// The one-tap actions of a notice: its choices as buttons (the current answer pressed), and
// 確認しました. onDone(n) gets the notice as the server now has it.
function actions(n, onDone) {
  const box = h('div', { class: 'nt-actions' });
  if (!n.me) return box;
  const off = closed(n);
  if (n.choices?.length) {
    const current = n.me.response ? n.me.response.choice : -1;
    const group = h('div', { class: 'nt-choices', role: 'group',
      'aria-label': n.me.response ? t('nt.answer_change') : t('nt.answer_prompt') },
    ...n.choices.map((c, i) => h('button', {
      type: 'button',
      class: 'nt-choice' + (i === current ? ' nt-choice-on' : ''),
      'aria-pressed': i === current ? 'true' : 'false',
      'data-choice': String(i + 1),
      disabled: off ? '' : null,
      onclick: async (ev) => {
        const btn = ev.currentTarget;
        for (const b of group.querySelectorAll('button')) b.disabled = true;
        try {
          const args = { notice: n.id, choice: String(i + 1) };
          const keep = n.me.response?.comment;
          if (keep) args.comment = keep;
          const r = await api.call('notice.respond', args);
          toast(t('nt.answer_sent', { choice: r.text }));
          n.me.response = { choice: r.choice, text: r.text, comment: args.comment || '', at: Date.now() };
          banner('nt-' + n.id, null);
          n.me.read_at = n.me.read_at || Date.now();
          onDone(n);
          refocus(n, `button[data-choice="${i + 1}"]`);
        } catch (e) {
          toast(errorText(e), 'error');
          for (const b of group.querySelectorAll('button')) b.disabled = off;
          btn.focus();
        }
      },
    }, c)));
    box.append(h('p', { class: 'nt-prompt' }, n.me.response
      ? t('nt.answered', { choice: n.me.response.text }) : t('nt.answer_prompt')), group);
    // A comment after the answer (the latest answer counts, so it is the same choice again
    // with the comment): the answer itself stays one tap.
    if (!off && n.me.response) {
      const comment = h('input', { type: 'text', class: 'nt-comment', maxlength: '300', enterkeyhint: 'send',
        'aria-label': t('nt.comment'), placeholder: t('nt.comment'), value: n.me.response.comment || '' });
      const send = h('button', { type: 'submit', class: 'btn' }, t('nt.comment_send'));
      const form = h('form', { class: 'nt-comment-form' }, comment, send);
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        send.disabled = true;
        try {
          const text = comment.value.trim();
          const r = await api.call('notice.respond', { notice: n.id, choice: String(n.me.response.choice + 1), comment: text });
          n.me.response = { ...n.me.response, choice: r.choice, text: r.text, comment: text };
          toast(t('nt.comment_sent'));
        } catch (e) {
          toast(errorText(e), 'error');
        } finally {
          send.disabled = false;
        }
      });
      box.append(form);
    }
  }
  if (n.ask_ack) {
    const done = !!n.me.acked_at;
    box.append(h('button', {
      type: 'button', class: 'nt-ack' + (done ? ' nt-ack-done' : ''),
      disabled: done || off ? '' : null,
      onclick: async () => {
        try {
          await api.call('notice.ack', { notice: n.id });
          toast(t('nt.ack_sent'));
          n.me.acked_at = Date.now();
          n.me.read_at = n.me.read_at || Date.now();
          banner('nt-' + n.id, null);
          onDone(n);
          refocus(n, '.nt-ack');
        } catch (e) {
          toast(errorText(e), 'error');
        }
      },
    }, done ? '✓ ' + t('nt.acked') : t('nt.ack')));
  }
  return box;
}

function meta(n) {
  const parts = [t('nt.by', { author: n.author_name || n.author, time: formatTime(n.created_at) })];
  if (n.revision > 1) parts.push(t('nt.revision', { n: n.revision }));
  if (n.expires_at) parts.push(closed(n) ? t('nt.closed') : t('nt.expires', { time: formatTime(n.expires_at) }));
  return h('p', { class: 'nt-meta' }, parts.join('　'));
}

function card(n, rerender) {
  const cls = ['nt-card'];
  if (urgent(n) && !n.withdrawn_at) cls.push('nt-card-urgent');
  if (n.me && !n.me.read_at) cls.push('nt-card-unread');
  if (n.withdrawn_at) cls.push('nt-card-withdrawn');
  const titleId = 'nt-title-' + n.id;
  return h('article', { class: cls.join(' '), 'aria-labelledby': titleId, 'data-notice': String(n.id) },
    h('h3', { class: 'nt-card-title', id: titleId },
      h('a', { href: '#/notices/' + n.id }, n.title), ' ', badges(n)),
    meta(n),
    h('p', { class: 'nt-excerpt' }, n.body),
    actions(n, rerender),
    (n.author === me().login || me().role === 'admin')
      ? h('p', { class: 'nt-links' }, h('a', { href: `#/notices/${n.id}/report` }, t('nt.report')))
      : null);
}

// ---- the board ----

// Push notifications for this device (issue 24, js/push.js): offered with the user's consent on
// a personal device (a shared PC is no one's to wake), never asked for without a click.
// Beside it, always, the link to what reaches this person by push and e-mail (#/notify).
async function drawPush(box) {
  const settings = h('a', { href: '#/notify', class: 'ns-link', id: 'notify-settings' }, t('ns.link'));
  const linkOnly = () => { box.hidden = false; box.replaceChildren(settings); };
  if (api.session?.shared) return linkOnly();
  const push = await import('../push.js');
  if (!push.pushSupported()) return linkOnly();
  const state = await push.pushState().catch(() => 'unsupported');
  if (state === 'unsupported') return linkOnly();
  const act = (fn) => async () => {
    try { await fn(); } catch (e) { if (e.code !== 'denied') toast(e.message, 'error', 8000); }
    drawPush(box);
  };
  box.hidden = false;
  box.dataset.push = state;
  box.replaceChildren(...[
    h('span', null, t(state === 'on' ? 'nt.push_on' : state === 'denied' ? 'nt.push_denied' : 'nt.push_offer')), ' ',
    state === 'off' ? h('button', { type: 'button', class: 'btn', id: 'push-toggle', onclick: act(push.enablePush) }, t('nt.push_enable')) : null,
    state === 'on' ? h('button', { type: 'button', class: 'btn btn-quiet', id: 'push-toggle', onclick: act(push.disablePush) }, t('nt.push_disable')) : null,
    settings,
  ].filter(Boolean));
}

function board(container) {
  let notices = [];
  const status = statusLine();
  const alertBox = h('div', { class: 'nt-alert', role: 'alert', hidden: '' });
  const importantSec = h('section', { class: 'nt-section', 'aria-labelledby': 'nt-h-imp' });
  const otherSec = h('section', { class: 'nt-section', 'aria-labelledby': 'nt-h-oth' });
  const postedSec = h('section', { class: 'nt-section', 'aria-labelledby': 'nt-h-posted', hidden: true });
  let posted = [];
  const head = pageHeader(t('nt.board'),
    isHQ() ? h('a', { class: 'btn btn-primary', href: '#/notices/new?rollcall=1' }, t('nt.post_rollcall')) : null,
    isHQ() ? h('a', { class: 'btn', href: '#/notices/new' }, t('nt.post')) : null);
  const pushBox = h('div', { class: 'nt-push', id: 'push-box', hidden: true });
  container.replaceChildren(h('div', { class: 'adm-page nt-board' }, head, alertBox, pushBox, status.el, importantSec, otherSec, postedSec));
  drawPush(pushBox);

  function render() {
    const imp = notices.filter(important);
    const rest = notices.filter((n) => !important(n));
    const sort = (a, b) => (urgent(b) - urgent(a)) || (pending(b) - pending(a)) || (b.created_at - a.created_at);
    imp.sort(sort);
    importantSec.replaceChildren(h('h2', { id: 'nt-h-imp', class: 'nt-h' }, t('nt.important')),
      ...(imp.length ? imp.map((n) => card(n, render)) : [h('p', { class: 'adm-empty' }, t('nt.empty'))]));
    otherSec.replaceChildren(h('h2', { id: 'nt-h-oth', class: 'nt-h' }, t('nt.others')),
      ...(rest.length ? rest.map((n) => card(n, render)) : [h('p', { class: 'adm-empty' }, t('nt.empty'))]));
    postedSec.hidden = !posted.length;
    postedSec.replaceChildren(h('h2', { id: 'nt-h-posted', class: 'nt-h' }, t('nt.posted')),
      h('ul', { class: 'nt-posted' }, ...posted.map((n) => h('li', { 'data-notice': String(n.id) },
        h('a', { href: `#/notices/${n.id}/report` }, n.title), ' ', badges(n),
        h('span', { class: 'muted' }, ' ' + formatTime(n.created_at))))));
    const unreadUrgent = notices.filter((n) => urgent(n) && !n.withdrawn_at && n.me && !n.me.read_at);
    if (unreadUrgent.length) {
      alertBox.hidden = false;
      alertBox.replaceChildren(h('strong', {}, t('nt.unread_urgent', { n: unreadUrgent.length })), ' ',
        ...unreadUrgent.slice(0, 3).map((n) => h('a', { href: '#/notices/' + n.id, class: 'nt-alert-link' }, n.title)));
    } else {
      alertBox.hidden = true;
      alertBox.replaceChildren();
    }
  }

  let seq = 0; // only the latest load draws
  async function load() {
    const my = ++seq;
    try {
      const [r, p] = await Promise.all([api.call('notice.list', { limit: 100 }),
        api.call('notice.list', { posted: true, limit: 20 }).catch(() => ({ notices: [] }))]);
      if (my !== seq) return;
      notices = r.notices || [];
      posted = p.notices || [];
      status.set('');
      render();
    } catch (e) {
      status.set(errorText(e), 'error');
    }
  }

  let timer = 0;
  // A redraw would drop a comment being typed: wait until the field is left.
  const typing = () => document.activeElement?.classList.contains('nt-comment') && document.activeElement.value;
  const soon = () => { clearTimeout(timer); timer = setTimeout(() => (typing() ? soon() : load()), typing() ? 1000 : 150); };
  const evs = ['notice.post', 'notice.edit', 'notice.withdraw', 'notice.remind', 'notice.alert', 'resumed'];
  for (const e of evs) api.on(e, soon);
  status.set(t('adm.loading'));
  load();
  return () => {
    clearTimeout(timer);
    for (const e of evs) api.off(e, soon);
  };
}

// ---- one notice ----

function detail(container, params) {
  const id = Number(params.id);
  const status = statusLine();
  const body = h('div', { class: 'nt-detail' });
  container.replaceChildren(h('div', { class: 'adm-page' },
    h('p', { class: 'adm-back' }, h('a', { href: '#/notices' }, '← ' + t('nt.back'))), status.el, body));

  function render(n) {
    const mine = n.author === me().login || me().role === 'admin';
    body.replaceChildren(
      h('article', { class: 'nt-card nt-card-full' + (urgent(n) && !n.withdrawn_at ? ' nt-card-urgent' : ''),
        'data-notice': String(n.id) },
      h('h1', { class: 'nt-card-title adm-title', tabindex: '-1' }, n.title, ' ', badges(n)),
      meta(n),
      h('div', { class: 'nt-body' }, n.body),
      actions(n, render),
      mine ? h('p', { class: 'nt-links' }, h('a', { class: 'btn', href: `#/notices/${n.id}/report` }, t('nt.report'))) : null));
  }

  async function load() {
    try {
      const r = await api.call('notice.show', { notice: id });
      banner('nt-' + id, null);
      status.set('');
      render(r.notice);
    } catch (e) {
      status.set(errorText(e), 'error');
    }
  }
  const onEv = (ev) => { if (ev.notice === id) load(); };
  api.on('notice.edit', onEv);
  api.on('notice.withdraw', onEv);
  load();
  return () => { api.off('notice.edit', onEv); api.off('notice.withdraw', onEv); };
}

// ---- posting (HQ) ----

function postForm(container, params) {
  const rollcall = params.rollcall === '1';
  const status = statusLine();
  const kindNotice = h('input', { type: 'radio', name: 'nt-kind', value: 'notice', checked: !rollcall });
  const kindRoll = h('input', { type: 'radio', name: 'nt-kind', value: 'rollcall', checked: rollcall });
  const title = h('input', { type: 'text', required: '', maxlength: '200', autocomplete: 'off',
    value: rollcall ? t('nt.rollcall_title') : '' });
  const bodyIn = h('textarea', { required: '', rows: '6' }, rollcall ? t('nt.rollcall_body') : '');
  const toAll = checkbox(t('nt.form.to_all'), { checked: true });
  const deptBox = h('div', { class: 'nt-multi', role: 'group', 'aria-label': t('nt.form.depts') });
  const groupBox = h('div', { class: 'nt-multi', role: 'group', 'aria-label': t('nt.form.groups') });
  const users = h('input', { type: 'text', autocomplete: 'off' });
  const urgentC = checkbox(t('nt.form.urgent'), { checked: rollcall });
  const ackC = checkbox(t('nt.form.ask_ack'));
  const pinC = checkbox(t('nt.form.pinned'));
  const choices = h('textarea', { rows: '5' }, t('nt.default_choices'));
  const choicesField = field(t('nt.form.choices'), choices);
  const expires = h('input', { type: 'datetime-local' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, t('nt.form.submit'));
  const sync = () => {
    choicesField.hidden = !kindRoll.checked;
    const audience = !toAll.input.checked;
    deptBox.parentElement && (deptBox.parentElement.hidden = !audience);
    groupBox.parentElement && (groupBox.parentElement.hidden = !audience);
    users.parentElement.hidden = !audience;
  };
  kindNotice.addEventListener('change', sync);
  kindRoll.addEventListener('change', sync);
  toAll.input.addEventListener('change', sync);

  const form = h('form', { class: 'adm-form nt-form', novalidate: '' },
    h('fieldset', { class: 'adm-fieldset' }, h('legend', {}, t('nt.form.kind')),
      h('label', { class: 'adm-check' }, kindNotice, ' ', t('nt.form.kind_notice')),
      h('label', { class: 'adm-check' }, kindRoll, ' ', t('nt.form.kind_rollcall'))),
    field(t('nt.form.title'), title),
    field(t('nt.form.body'), bodyIn),
    h('fieldset', { class: 'adm-fieldset' }, h('legend', {}, t('nt.form.to')),
      toAll.el,
      h('div', { class: 'adm-field' }, h('span', { class: 'adm-label' }, t('nt.form.depts')), deptBox),
      h('div', { class: 'adm-field' }, h('span', { class: 'adm-label' }, t('nt.form.groups')), groupBox),
      field(t('nt.form.users'), users)),
    choicesField,
    urgentC.el, ackC.el, pinC.el,
    field(t('nt.form.expires'), expires),
    status.el,
    h('div', { class: 'adm-buttons' }, submit));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const to = [];
    if (toAll.input.checked) to.push('all');
    else {
      for (const c of deptBox.querySelectorAll('input:checked')) to.push('dept:' + c.value);
      for (const c of groupBox.querySelectorAll('input:checked')) to.push('group:' + c.value);
      for (const u of splitList(users.value)) to.push('user:' + u);
    }
    if (!to.length) { status.set(t('nt.form.no_audience'), 'error'); return; }
    const args = { title: title.value.trim(), body: bodyIn.value, to };
    if (urgentC.input.checked) args.priority = 'urgent';
    if (ackC.input.checked) args.ask_ack = true;
    if (pinC.input.checked) args.pinned = true;
    if (kindRoll.checked) args.choices = choices.value.split('\n').map((s) => s.trim()).filter(Boolean);
    const exp = localToMs(expires.value);
    if (exp) args.expires_at = exp;
    submit.disabled = true;
    status.set('');
    try {
      const r = await api.call('notice.post', args);
      toast(t('nt.form.posted', { n: r.recipients }));
      go(`#/notices/${r.notice.id}/report`);
    } catch (e) {
      status.set(errorText(e), 'error');
      submit.disabled = false;
    }
  });

  container.replaceChildren(h('div', { class: 'adm-page' },
    h('p', { class: 'adm-back' }, h('a', { href: '#/notices' }, '← ' + t('nt.back'))),
    pageHeader(rollcall ? t('nt.post_rollcall') : t('nt.post')), form));
  sync();
  title.focus();

  const fill = (box, items, prefix) => box.replaceChildren(...items.map((d) =>
    h('label', { class: 'adm-check' }, h('input', { type: 'checkbox', value: d.name, name: prefix }),
      ' ', `${d.name}（${d.members}）`)));
  api.call('dept.list').then((r) => fill(deptBox, r.departments || [], 'dept')).catch(() => {});
  api.call('group.list').then((r) => fill(groupBox, r.groups || [], 'group')).catch(() => {});
}

// ---- the alert banner, anywhere in the app ----

// One banner per notice (id nt-ID): a second alert for the same notice replaces the first.
function alertBanner(ev, key, kind) {
  const id = 'nt-' + ev.notice;
  banner(id, t(key, { title: ev.title }), {
    kind, closable: true,
    action: { label: t('nt.open'), onclick: () => { banner(id, null); go('#/notices/' + ev.notice); } },
  });
}
api.on('notice.alert', (ev) => alertBanner(ev, 'nt.urgent_banner', 'alert'));
api.on('notice.remind', (ev) => alertBanner(ev, 'nt.remind_banner', 'warn'));

navItem({ route: '#/notices', label: 'nt.nav', order: 15 });
route('#/notices', board);
route('#/notices/new', postForm);
route('#/notices/:id', detail);
