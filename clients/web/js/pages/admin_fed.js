// admin_fed.js - other municipalities' servers, read-only: this server's id and fingerprint
// and every pinned peer with its link and replication (peer.list), and the counterpart hotline
// groups with each municipality's role (hotline.list). Pairing, admitting and roles stay in the
// CLI (docs/federation.md, docs/hotline.md), where the fingerprint is read aloud and checked.
import { api } from '../api.js';
import { route } from '../router.js';
import { t, addStrings } from '../i18n.js';
import { h, formatTime } from '../dom.js';
import { adminTabs, pageHeader, statusLine, errorText, table } from './admin_common.js';

addStrings({
  ja: {
    'af.nav': '連携・ホットライン',
    'af.title': '他の自治体との連携',
    'af.intro': '閲覧のみです。相互接続（ペア登録）やホットラインの作成・役割の変更は kizuna コマンドで行います（docs/federation.md、docs/hotline.md）。',
    'af.refresh': '更新',
    'af.self': 'このサーバー',
    'af.server_id': 'サーバーID',
    'af.fingerprint': 'フィンガープリント（ペア登録のとき電話で読み合わせる60桁）',
    'af.peers': '接続先サーバー',
    'af.hotlines': '対口支援ホットライン',
    'af.c.server': 'サーバーID',
    'af.c.name': '自治体',
    'af.c.link': '接続',
    'af.c.since': 'から',
    'af.c.last': '最終通信',
    'af.c.behind': '未送信',
    'af.c.error': '最後のエラー',
    'af.c.role': '役割',
    'af.c.admitted': '参加',
    'af.c.room': 'ルーム',
    'af.c.members': '構成',
    'af.state.connected': '接続中',
    'af.state.connecting': '接続を試行中',
    'af.state.handshake': '認証中',
    'af.state.disconnected': '切断',
    'af.state.off': '連携は無効',
    'af.behind': '{events} 件（{age}）',
    'af.skew': '時計のずれ {s} 秒',
    'af.forks': '分岐 {n}（隔離中）',
    'af.yes': '参加済み',
    'af.no': '未参加',
    'af.none_peers': '接続先はありません',
    'af.none_hotlines': 'ホットラインはありません',
  },
  en: {
    'af.nav': 'Federation',
    'af.title': "Other municipalities' servers",
    'af.intro': 'Read only. Pairing, hotlines and roles are managed with the kizuna command (docs/federation.md, docs/hotline.md).',
    'af.refresh': 'Refresh',
    'af.self': 'This server',
    'af.server_id': 'Server id',
    'af.fingerprint': 'Fingerprint (the 60 digits read aloud when pairing)',
    'af.peers': 'Peers',
    'af.hotlines': 'Counterpart hotlines',
    'af.c.server': 'Server id',
    'af.c.name': 'Municipality',
    'af.c.link': 'Link',
    'af.c.since': 'since',
    'af.c.last': 'Last contact',
    'af.c.behind': 'Not yet delivered',
    'af.c.error': 'Last error',
    'af.c.role': 'Role',
    'af.c.admitted': 'Admitted',
    'af.c.room': 'Room',
    'af.c.members': 'Members',
    'af.state.connected': 'connected',
    'af.state.connecting': 'connecting',
    'af.state.handshake': 'handshake',
    'af.state.disconnected': 'disconnected',
    'af.state.off': 'federation off',
    'af.behind': '{events} events ({age})',
    'af.skew': 'clock skew {s} s',
    'af.forks': '{n} forks (quarantined)',
    'af.yes': 'admitted',
    'af.no': 'not admitted',
    'af.none_peers': 'No peers',
    'af.none_hotlines': 'No hotlines',
  },
});

function age(ms) {
  if (!ms) return '0';
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}

function page(container) {
  const status = statusLine();
  const selfBox = h('div', { class: 'af-self' });
  const peersBox = h('div', {});
  const hotBox = h('div', {});
  container.replaceChildren(h('div', { class: 'adm-page af-page' },
    adminTabs('fed'),
    pageHeader(t('af.title'), h('button', { type: 'button', class: 'btn', onclick: () => load() }, t('af.refresh'))),
    h('p', { class: 'muted' }, t('af.intro')), status.el,
    h('section', { 'aria-labelledby': 'af-h-self' }, h('h2', { id: 'af-h-self' }, t('af.self')), selfBox),
    h('section', { 'aria-labelledby': 'af-h-peers' }, h('h2', { id: 'af-h-peers' }, t('af.peers')), peersBox),
    h('section', { 'aria-labelledby': 'af-h-hot' }, h('h2', { id: 'af-h-hot' }, t('af.hotlines')), hotBox)));

  async function load() {
    const [p, hl] = await Promise.all([
      api.call('peer.list').catch((e) => ({ error: e })),
      api.call('hotline.list').catch((e) => ({ error: e })),
    ]);
    status.set(p.error ? errorText(p.error) : hl.error ? errorText(hl.error) : '', p.error || hl.error ? 'error' : '');
    if (!p.error) {
      const names = new Map((p.peers || []).map((x) => [x.server, x.name]));
      selfBox.replaceChildren(h('dl', { class: 'af-dl' },
        h('dt', {}, t('af.server_id')), h('dd', {}, h('code', {}, p.self?.server || '')),
        h('dt', {}, t('af.fingerprint')), h('dd', {}, h('code', { class: 'af-fp' }, p.self?.fingerprint || ''))));
      peersBox.replaceChildren(table([
        { label: t('af.c.server'), header: true, cell: (x) => h('code', {}, x.server) },
        { label: t('af.c.name'), cell: (x) => x.name },
        { label: t('af.c.link'), cell: (x) => {
          const st = x.link?.state || 'disconnected';
          return [h('span', { class: 'tag af-link af-link-' + st }, t('af.state.' + st)),
            x.link?.since ? ` ${formatTime(x.link.since)} ${t('af.c.since')}` : '',
            x.link?.skew_alarm ? h('span', { class: 'tag af-alarm' }, t('af.skew', { s: Math.round((x.link.skew_ms || 0) / 1000) })) : null];
        } },
        { label: t('af.c.last'), cell: (x) => (x.link?.last_contact ? formatTime(x.link.last_contact) : '') },
        { label: t('af.c.behind'), cell: (x) => [
          t('af.behind', { events: x.replication?.events_behind ?? 0, age: age(x.replication?.oldest_undelivered_age_ms) }),
          x.replication?.forks ? h('span', { class: 'tag af-alarm' }, t('af.forks', { n: x.replication.forks })) : null] },
        { label: t('af.c.error'), cell: (x) => x.link?.last_error || '' },
      ], p.peers || [], { caption: t('af.peers'), empty: t('af.none_peers') }));
      renderHotlines(hl, names);
    }
  }

  function renderHotlines(hl, names) {
    if (hl.error) return;
    const groups = hl.hotlines || [];
    hotBox.replaceChildren(...(groups.length ? groups.map((g) => h('div', { class: 'af-hotline' },
      h('h3', {}, g.name, ' ', h('code', { class: 'muted' }, g.room.slice(0, 8))),
      table([
        { label: t('af.c.name'), header: true, cell: (s) => s.name || names.get(s.server) || s.server },
        { label: t('af.c.server'), cell: (s) => h('code', {}, s.server) },
        { label: t('af.c.role'), cell: (s) => h('span', { class: 'tag af-role-' + s.role }, s.role_label || s.role) },
        { label: t('af.c.admitted'), cell: (s) => (s.admitted ? t('af.yes') : t('af.no')) },
      ], g.servers || [], { caption: g.name }))) : [h('p', { class: 'adm-empty' }, t('af.none_hotlines'))]));
  }

  status.set(t('adm.loading'));
  load();
}

route('#/admin/federation', page);
