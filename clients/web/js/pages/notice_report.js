// notice_report.js - HQ's report of one notice (notice.report): totals, each answer's count,
// the table by department, the people who have not read / acknowledged / answered, the button
// that reminds exactly those (notice.remind), withdrawal, and the CSV download (the server's
// CSV as it is, BOM first, so Excel opens it in Japanese). Refreshes itself every 10 s while
// shown, since answers arrive as other people's writes and are not pushed to the author.
import { api } from '../api.js';
import { route } from '../router.js';
import { t, addStrings } from '../i18n.js';
import { h, formatTime, toast, confirmDialog, dialog } from '../dom.js';
import { statusLine, errorText, table, downloadCsv, fileSafe, stamp } from './admin_common.js';

addStrings({
  ja: {
    'rp.title': '集計: {title}',
    'rp.back': 'お知らせへ戻る',
    'rp.refresh': '更新',
    'rp.csv': 'CSVをダウンロード',
    'rp.remind': '未対応の人に再通知',
    'rp.remind_confirm': 'まだ{what}いない {n} 人に再通知しますか？',
    'rp.reminded': '{n} 人に再通知しました',
    'rp.remind_wait': '再通知したばかりです。約{m}分後にもう一度送れます',
    'rp.withdraw': 'お知らせを取り消す',
    'rp.edit': '訂正',
    'rp.edit_title': 'お知らせを訂正',
    'rp.edit_save': '訂正を送信',
    'rp.edited': '訂正しました（第{n}版）',
    'rp.withdraw_confirm': 'このお知らせを取り消しますか？ 以後の確認や回答は受け付けません。',
    'rp.withdrawn': '取り消しました',
    'rp.updated': '{time} 時点',
    'rp.recipients': '対象者',
    'rp.read': '既読',
    'rp.acked': '確認済み',
    'rp.responded': '回答済み',
    'rp.not_responded_n': '未回答',
    'rp.responses': '回答の内訳',
    'rp.by_dept': '部署別',
    'rp.dept': '部署',
    'rp.no_dept': '（部署なし）',
    'rp.total': '合計',
    'rp.missing': '未対応の人',
    'rp.not_read': '未読',
    'rp.not_acked': '未確認',
    'rp.not_responded': '未回答',
    'rp.login': 'ログインID',
    'rp.name': '氏名',
    'rp.more': 'ほか {n} 人（CSVに全員が入っています）',
    'rp.nobody': '全員が対応済みです',
    'rp.what.response': '回答して',
    'rp.what.ack': '確認して',
    'rp.what.read': '読んで',
    'rp.percent': '{n}%',
    'rp.csv_name': '{title}_集計_{stamp}.csv',
    'rp.reach': '届き方',
    'rp.reach_push': 'プッシュ通知',
    'rp.reach_email': 'メール',
    'rp.reach_app': '既読',
    'rp.reach_none': 'どれでも届いていない',
    'rp.reach_each': '一人ずつの届き方（{n}人）',
    'rp.answered_by': '回答',
    'rp.by.push': '通知のボタン',
    'rp.by.email': 'メールのリンク',
    'rp.by.app': 'アプリ',
    'rp.by.none': '—',
    'rp.unreached': 'どれでも届いていない人',
    'rp.nobody.unreached': '全員に届いています',
  },
  en: {
    'rp.title': 'Report: {title}',
    'rp.back': 'Back to the notice',
    'rp.refresh': 'Refresh',
    'rp.csv': 'Download CSV',
    'rp.remind': 'Remind those missing',
    'rp.remind_confirm': 'Remind the {n} people who have not {what} yet?',
    'rp.reminded': 'Reminded {n} people',
    'rp.remind_wait': 'Reminded just now: you can remind again in about {m} min',
    'rp.withdraw': 'Withdraw the notice',
    'rp.edit': 'Correct',
    'rp.edit_title': 'Correct the notice',
    'rp.edit_save': 'Send the correction',
    'rp.edited': 'Corrected (revision {n})',
    'rp.withdraw_confirm': 'Withdraw this notice? It will take no more acknowledgements or answers.',
    'rp.withdrawn': 'Withdrawn',
    'rp.updated': 'as of {time}',
    'rp.recipients': 'Recipients',
    'rp.read': 'Read',
    'rp.acked': 'Acknowledged',
    'rp.responded': 'Answered',
    'rp.not_responded_n': 'Not answered',
    'rp.responses': 'Answers',
    'rp.by_dept': 'By department',
    'rp.dept': 'Department',
    'rp.no_dept': '(none)',
    'rp.total': 'Total',
    'rp.missing': 'Missing',
    'rp.not_read': 'Not read',
    'rp.not_acked': 'Not acknowledged',
    'rp.not_responded': 'Not answered',
    'rp.login': 'Login',
    'rp.name': 'Name',
    'rp.more': '{n} more (the CSV has everyone)',
    'rp.nobody': 'Everyone has done it',
    'rp.what.response': 'answered',
    'rp.what.ack': 'acknowledged',
    'rp.what.read': 'read it',
    'rp.percent': '{n}%',
    'rp.csv_name': '{title}_report_{stamp}.csv',
    'rp.reach': 'How they were reached',
    'rp.reach_push': 'Push',
    'rp.reach_email': 'E-mail',
    'rp.reach_app': 'Read',
    'rp.reach_none': 'Reached by nothing',
    'rp.reach_each': 'Each person ({n})',
    'rp.answered_by': 'Answer',
    'rp.by.push': 'notification button',
    'rp.by.email': 'e-mail link',
    'rp.by.app': 'app',
    'rp.by.none': '—',
    'rp.unreached': 'Reached by nothing',
    'rp.nobody.unreached': 'Everyone was reached',
  },
});

const pct = (n, d) => (d ? Math.round((n * 100) / d) : 0);

// One figure: label, count, "of N" as a meter (no inline styles under the CSP).
function stat(label, n, of, cls, bad) {
  return h('div', { class: 'rp-stat ' + (cls || '') },
    h('span', { class: 'rp-stat-label' }, label),
    h('span', { class: 'rp-stat-num' }, String(n)),
    of != null ? h('span', { class: 'rp-stat-of' }, `/ ${of}（${t('rp.percent', { n: pct(n, of) })}）`) : null,
    of != null ? h('meter', { min: '0', max: String(of || 1), value: String(n), 'aria-hidden': 'true',
      // the missing: fewer is better (the bar turns amber, then red)
      ...(bad ? { optimum: '0', low: String(of * 0.05), high: String(of * 0.25) } : {}) }) : null);
}

function report(container, params) {
  const id = Number(params.id);
  const status = statusLine();
  const body = h('div', { class: 'rp-body' });
  const when = h('span', { class: 'rp-when muted' });
  let data = null;
  let busy = false;

  const refreshBtn = h('button', { type: 'button', class: 'btn', id: 'rp-refresh', onclick: () => load() }, t('rp.refresh'));
  const csvBtn = h('button', { type: 'button', class: 'btn', id: 'rp-csv', onclick: csv }, t('rp.csv'));
  const remindBtn = h('button', { type: 'button', class: 'btn btn-primary', id: 'rp-remind', onclick: remind }, t('rp.remind'));
  const withdrawBtn = h('button', { type: 'button', class: 'btn btn-danger', onclick: withdraw }, t('rp.withdraw'));
  const editBtn = h('button', { type: 'button', class: 'btn', id: 'rp-edit', onclick: edit }, t('rp.edit'));
  const title = h('h1', { class: 'adm-title', tabindex: '-1' }, t('rp.title', { title: '…' }));

  container.replaceChildren(h('div', { class: 'adm-page rp-page' },
    h('p', { class: 'adm-back' }, h('a', { href: '#/notices/' + id }, '← ' + t('rp.back'))),
    h('header', { class: 'adm-head' }, title,
      h('div', { class: 'adm-actions' }, remindBtn, csvBtn, refreshBtn, editBtn, withdrawBtn)),
    when, status.el, body));

  function forWhat(n) {
    return n.choices?.length ? 'response' : n.ask_ack ? 'ack' : 'read';
  }

  function render(r) {
    const n = r.notice;
    const tot = r.totals;
    title.textContent = t('rp.title', { title: n.title });
    document.title = `${t('rp.title', { title: n.title })} - Kizuna`;
    when.textContent = t('rp.updated', { time: formatTime(Date.now(), { full: true }) });
    remindBtn.disabled = !!n.withdrawn_at;
    withdrawBtn.hidden = !!n.withdrawn_at;
    editBtn.hidden = !!n.withdrawn_at;
    const choices = n.choices || [];

    const stats = h('div', { class: 'rp-stats', id: 'rp-totals' },
      stat(t('rp.recipients'), tot.recipients, null, 'rp-stat-total'),
      stat(t('rp.read'), tot.read, tot.recipients),
      n.ask_ack ? stat(t('rp.acked'), tot.acked, tot.recipients) : null,
      choices.length ? stat(t('rp.responded'), tot.responded, tot.recipients) : null,
      choices.length ? stat(t('rp.not_responded_n'), tot.recipients - tot.responded, tot.recipients, 'rp-stat-missing', true) : null);

    const answers = choices.length ? h('section', { class: 'rp-section', 'aria-labelledby': 'rp-h-ans' },
      h('h2', { id: 'rp-h-ans' }, t('rp.responses')),
      h('ul', { class: 'rp-answers', id: 'rp-answers' }, ...(tot.responses || []).map((x, i) =>
        h('li', { class: 'rp-answer rp-answer-' + (i % 6), 'data-choice': x.choice },
          h('span', { class: 'rp-answer-label' }, x.choice),
          h('meter', { min: '0', max: String(tot.recipients || 1), value: String(x.count), 'aria-hidden': 'true' }),
          h('span', { class: 'rp-answer-count' }, `${x.count}（${pct(x.count, tot.recipients)}%）`))))) : null;

    const cols = [
      { label: t('rp.dept'), cell: (d) => d.department || t('rp.no_dept'), header: true },
      { label: t('rp.recipients'), cell: (d) => String(d.recipients), class: 'num' },
      { label: t('rp.read'), cell: (d) => String(d.read), class: 'num' },
    ];
    if (n.ask_ack) cols.push({ label: t('rp.acked'), cell: (d) => String(d.acked), class: 'num' });
    if (choices.length) {
      cols.push({ label: t('rp.responded'), cell: (d) => String(d.responded), class: 'num' });
      choices.forEach((c, i) => cols.push({ label: c, class: 'num',
        cell: (d) => String((d.responses || [])[i]?.count ?? 0) }));
      cols.push({ label: t('rp.not_responded_n'), class: 'num rp-missing-col',
        cell: (d) => String(d.recipients - d.responded) });
    }
    const rows = [...(r.by_department || []), { ...tot, department: t('rp.total'), total: true }];
    const depts = h('section', { class: 'rp-section', 'aria-labelledby': 'rp-h-dept' },
      h('h2', { id: 'rp-h-dept' }, t('rp.by_dept')),
      table(cols, rows, { caption: t('rp.by_dept'), keep: true, rowClass: (d) => (d.total ? 'rp-total-row' : '') }));
    depts.querySelector('table').id = 'rp-depts';

    // How each was reached outside the app (push, e-mail) or in it, and how they answered.
    const rc = r.reach;
    const at = (ms) => (ms ? formatTime(ms) : '—');
    const people = rc?.people || [];
    const reach = rc ? h('section', { class: 'rp-section', 'aria-labelledby': 'rp-h-reach', id: 'rp-reach' },
      h('h2', { id: 'rp-h-reach' }, t('rp.reach')),
      h('div', { class: 'rp-stats' },
        stat(t('rp.reach_push'), rc.push, tot.recipients),
        stat(t('rp.reach_email'), rc.email, tot.recipients),
        stat(t('rp.reach_app'), rc.app, tot.recipients),
        stat(t('rp.reach_none'), rc.none, tot.recipients, 'rp-stat-missing', true)),
      people.length ? h('details', { class: 'rp-reach-each', open: people.length <= 50 ? '' : null },
        h('summary', {}, t('rp.reach_each', { n: people.length })),
        table([
          { label: t('rp.dept'), cell: (p) => p.department || t('rp.no_dept') },
          { label: t('rp.name'), cell: (p) => p.name, header: true },
          { label: t('rp.reach_push'), cell: (p) => at(p.push_at) },
          { label: t('rp.reach_email'), cell: (p) => at(p.email_at) },
          { label: t('rp.reach_app'), cell: (p) => at(p.read_at) },
          { label: t('rp.answered_by'), cell: (p) => t('rp.by.' + (p.answered_by || 'none')) },
        ], people, { caption: t('rp.reach_each', { n: people.length }),
          rowClass: (p) => (!p.push_at && !p.email_at && !p.read_at ? 'rp-unreached-row' : '') })) : null) : null;
    reach?.querySelector('table')?.setAttribute('id', 'rp-reach-people');

    const m = r.missing || {};
    const lists = [['not_responded', 'rp.not_responded'], ['not_acked', 'rp.not_acked'], ['not_read', 'rp.not_read'],
      ['unreached', 'rp.unreached']]
      .filter(([k]) => Array.isArray(m[k]))
      .map(([k, label]) => {
        const more = m[k + '_more'] || 0;
        const people = m[k];
        return h('div', { class: 'rp-missing', id: 'rp-' + k },
          h('h3', {}, `${t(label)}（${people.length + more}）`),
          people.length ? table([
            { label: t('rp.dept'), cell: (p) => p.department || t('rp.no_dept') },
            { label: t('rp.name'), cell: (p) => p.name, header: true },
            { label: t('rp.login'), cell: (p) => p.login },
          ], people, { caption: t(label) }) : h('p', { class: 'adm-empty' }, t(k === 'unreached' ? 'rp.nobody.unreached' : 'rp.nobody')),
          more ? h('p', { class: 'muted' }, t('rp.more', { n: more })) : null);
      });
    const missing = h('section', { class: 'rp-section', 'aria-labelledby': 'rp-h-miss' },
      h('h2', { id: 'rp-h-miss' }, t('rp.missing')), h('div', { class: 'rp-missing-lists' }, ...lists));

    body.replaceChildren(stats, answers || '', reach || '', depts, missing);
  }

  async function load() {
    if (busy) return;
    busy = true;
    try {
      data = await api.call('notice.report', { notice: id, limit: 500 });
      status.set('');
      render(data);
    } catch (e) {
      status.set(errorText(e), 'error');
    } finally {
      busy = false;
    }
  }

  async function csv() {
    csvBtn.disabled = true;
    try {
      const r = await api.call('notice.report', { notice: id, format: 'csv' });
      const name = t('rp.csv_name', { title: fileSafe(data?.notice?.title || 'notice-' + id), stamp: stamp() });
      downloadCsv(r.csv, name);
    } catch (e) {
      toast(errorText(e), 'error');
    } finally {
      csvBtn.disabled = false;
    }
  }

  async function remind() {
    if (!data) return;
    const n = data.notice;
    const what = forWhat(n);
    const tot = data.totals;
    const missingN = what === 'response' ? tot.recipients - tot.responded
      : what === 'ack' ? tot.recipients - tot.acked : tot.recipients - tot.read;
    if (!await confirmDialog(t('rp.remind_confirm', { n: missingN, what: t('rp.what.' + what) }),
      { ok: t('rp.remind') })) return;
    remindBtn.disabled = true;
    try {
      const r = await api.call('notice.remind', { notice: id });
      toast(t('rp.reminded', { n: r.reminded }));
      status.set(t('rp.reminded', { n: r.reminded }), 'ok');
      load();
    } catch (e) {
      // Reminders ring phones: the server allows one every notice_remind_min_interval_s, and
      // says how long is left ("... remind again after N s").
      const wait = e.code === 'rate_limited' && /after (\d+) s/.exec(e.message || '');
      const text = wait ? t('rp.remind_wait', { m: Math.ceil(Number(wait[1]) / 60) }) : errorText(e);
      toast(text, 'error');
      status.set(text, 'error');
    } finally {
      remindBtn.disabled = false;
    }
  }

  // A correction (notice.edit): the previous text is kept as a revision; recipients get the
  // notice.edit event and see 第N版.
  async function edit() {
    if (!data) return;
    const n = data.notice;
    const title = h('input', { type: 'text', id: 'rp-edit-title', value: n.title, required: true, maxlength: '200' });
    const body = h('textarea', { id: 'rp-edit-body', rows: '8', required: true });
    body.value = n.body;
    const ok = await dialog(t('rp.edit_title'), [
      h('div', { class: 'field' }, h('label', { for: 'rp-edit-title' }, t('nt.form.title')), title),
      h('div', { class: 'field' }, h('label', { for: 'rp-edit-body' }, t('nt.form.body')), body),
    ], [
      { label: t('common.cancel'), value: false },
      { label: t('rp.edit_save'), value: true, kind: 'primary', submit: true },
    ], { wide: true });
    if (ok !== true) return;
    const args = { notice: id };
    if (title.value.trim() && title.value.trim() !== n.title) args.title = title.value.trim();
    if (body.value !== n.body) args.body = body.value;
    if (!args.title && args.body == null) return;
    try {
      const r = await api.call('notice.edit', args);
      toast(t('rp.edited', { n: r.revision }));
      load();
    } catch (e) {
      toast(errorText(e), 'error');
    }
  }

  async function withdraw() {
    if (!await confirmDialog(t('rp.withdraw_confirm'), { danger: true, ok: t('rp.withdraw') })) return;
    try {
      await api.call('notice.withdraw', { notice: id });
      toast(t('rp.withdrawn'));
      load();
    } catch (e) {
      toast(errorText(e), 'error');
    }
  }

  status.set(t('adm.loading'));
  load();
  const timer = setInterval(() => { if (!document.hidden) load(); }, 10000);
  return () => clearInterval(timer);
}

route('#/notices/:id/report', report);
