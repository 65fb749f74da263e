// admin_mail.js - メール送信状況: the e-mail outbox as mail.status reports it (issue 24): whether
// a mail relay is set, how many messages wait for it, how many failed for good, and the newest
// failures with the person, the address, the subject and the relay's own words, so that a wrong
// address on file is found and corrected (the user's page, one click away). Read only; the
// same as `kizuna admin mail` (docs/notifications.md).
import { api } from '../api.js';
import { route } from '../router.js';
import { t, addStrings } from '../i18n.js';
import { h, formatTime } from '../dom.js';
import { adminTabs, pageHeader, statusLine, errorText, table } from './admin_common.js';

addStrings({
  ja: {
    'am.title': 'メール送信状況',
    'am.intro': '至急のお知らせ・安否確認・リマインド・毎日のまとめのメールです。失敗したメールは、宛先のメールアドレスが誤っていないかユーザーの画面で確認してください。',
    'am.refresh': '更新',
    'am.relay': 'メール送信',
    'am.on': '有効（smtp_host 設定済み）',
    'am.off': '無効（smtp_host が未設定のため、メールは送られません）',
    'am.pending': '送信待ち',
    'am.failed': '送信失敗',
    'am.n': '{n} 通',
    'am.failures': '送信に失敗したメール（新しい順）',
    'am.c.at': '作成',
    'am.c.login': 'ユーザー',
    'am.c.to': '宛先',
    'am.c.subject': '件名',
    'am.c.tries': '試行',
    'am.c.error': 'メールサーバーの応答',
    'am.none': '失敗したメールはありません',
    'am.more': 'ほかに古い失敗が {n} 通あります',
  },
  en: {
    'am.title': 'E-mail delivery',
    'am.intro': 'Mail of urgent notices, roll-calls, reminders and daily digests. For a failed message, check the address on the user\'s page.',
    'am.refresh': 'Refresh',
    'am.relay': 'E-mail',
    'am.on': 'on (smtp_host set)',
    'am.off': 'off: smtp_host is not set, no mail is sent',
    'am.pending': 'Waiting',
    'am.failed': 'Failed',
    'am.n': '{n}',
    'am.failures': 'Failed messages (newest first)',
    'am.c.at': 'Queued',
    'am.c.login': 'User',
    'am.c.to': 'Address',
    'am.c.subject': 'Subject',
    'am.c.tries': 'Tries',
    'am.c.error': 'The relay\'s reply',
    'am.none': 'No failed messages',
    'am.more': '{n} older failures not shown',
  },
});

function page(container) {
  const status = statusLine();
  const summary = h('dl', { class: 'am-summary', id: 'am-summary' });
  const failures = h('div', { id: 'am-failures' });
  const more = h('p', { class: 'muted' });
  container.replaceChildren(h('div', { class: 'adm-page am-page' },
    adminTabs('mail'),
    pageHeader(t('am.title'), h('button', { type: 'button', class: 'btn', onclick: () => load() }, t('am.refresh'))),
    h('p', { class: 'muted' }, t('am.intro')), status.el, summary,
    h('section', { 'aria-labelledby': 'am-h-failures' }, h('h2', { id: 'am-h-failures' }, t('am.failures')),
      failures, more)));

  async function load() {
    let r;
    try {
      r = await api.call('mail.status');
    } catch (e) {
      status.set(errorText(e), 'error');
      return;
    }
    status.set('');
    const failed = r.failed_total || 0;
    summary.replaceChildren(
      h('div', { class: 'am-item' }, h('dt', {}, t('am.relay')),
        h('dd', {}, h('span', { class: r.enabled ? 'tag am-on' : 'tag am-off' }, t(r.enabled ? 'am.on' : 'am.off')))),
      h('div', { class: 'am-item' }, h('dt', {}, t('am.pending')), h('dd', { id: 'am-pending' }, t('am.n', { n: r.pending || 0 }))),
      h('div', { class: 'am-item' + (failed ? ' am-bad' : '') }, h('dt', {}, t('am.failed')),
        h('dd', { id: 'am-failed' }, t('am.n', { n: failed }))));
    const rows = r.failed || [];
    failures.replaceChildren(table([
      { label: t('am.c.at'), class: 'aa-at', cell: (f) => formatTime(f.created_at) },
      { label: t('am.c.login'), header: true,
        cell: (f) => h('a', { href: '#/admin/user/' + encodeURIComponent(f.login) }, f.login) },
      { label: t('am.c.to'), cell: (f) => f.to },
      { label: t('am.c.subject'), cell: (f) => f.subject },
      { label: t('am.c.tries'), cell: (f) => String(f.tries) },
      { label: t('am.c.error'), cell: (f) => h('span', { class: 'am-error' }, f.error) },
    ], rows, { caption: t('am.failures'), empty: t('am.none') }));
    more.textContent = failed > rows.length ? t('am.more', { n: failed - rows.length }) : '';
  }

  status.set(t('adm.loading'));
  load();
}

route('#/admin/mail', page);
