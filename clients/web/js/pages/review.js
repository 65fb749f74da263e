// pages/review.js: one review of a room's record (issue 22, items 2 and 5), #/review/:id, for
// its reviewer and for whoever approves it (docs/records.md): what is marked for publication
// (all the room's messages, edits, deletions and photos of the range at once, as `kizuna record
// review mark --all`), each redaction the helper proposed or a person marked, with what it
// covers, accepted or rejected one by one or all proposals at once; approval by someone else
// than the reviewer; then the published version is saved from the room's 記録 dialog. The
// server refuses what a person may not do (approving one's own review: forbidden), and the page
// says so.

import { api } from '../api.js';
import { h, clear, formatTime, toast } from '../dom.js';
import { t, addStrings } from '../i18n.js';
import { route } from '../router.js';
import * as session from '../session.js';

addStrings({
  ja: {
    'review.title': 'レビュー {id}: {title}', 'review.state.open': '作業中', 'review.state.approved': '承認済み',
    'review.meta': '記録: ルーム {room}、レビュー担当 {reviewer}、状態 {state}',
    'review.approved_by': '{by} が {at} に承認',
    'review.marked': '公開対象 {n} 件', 'review.mark_all': '範囲内の発言・編集・削除・写真をすべて公開対象にする',
    'review.redactions': '黒塗り {n} 件（未決定 {open} 件）', 'review.none': '黒塗りの提案はありません。',
    'review.accept': '採用', 'review.reject': '不採用', 'review.accept_all': '未決定の提案をすべて採用',
    'review.kind.phone': '電話番号', 'review.kind.postal': '郵便番号', 'review.kind.address': '住所',
    'review.kind.email': 'メールアドレス', 'review.kind.name': '氏名', 'review.kind.hand': '手作業',
    'review.state.proposed': '未決定', 'review.state.accepted': '採用', 'review.state.rejected': '不採用',
    'review.approve': 'このレビューを承認する', 'review.approve_note': '承認はレビュー担当者以外が行います。承認後は変更できません。',
    'review.publish_note': '公開版は、ルームのメンバー → 記録を書き出す →「承認済みの公開版」で保存します（レビュー番号 {id}）。',
    'review.marked_done': '{n} 件を公開対象にしました', 'review.approved': '承認しました',
  },
  en: {
    'review.title': 'Review {id}: {title}', 'review.state.open': 'open', 'review.state.approved': 'approved',
    'review.meta': 'Record of room {room}, reviewer {reviewer}, {state}',
    'review.approved_by': 'approved by {by} at {at}',
    'review.marked': '{n} events to publish', 'review.mark_all': "Publish every message, edit, deletion and photo of the range",
    'review.redactions': '{n} redactions ({open} undecided)', 'review.none': 'No redactions proposed.',
    'review.accept': 'Accept', 'review.reject': 'Reject', 'review.accept_all': 'Accept every undecided proposal',
    'review.kind.phone': 'phone', 'review.kind.postal': 'postal code', 'review.kind.address': 'address',
    'review.kind.email': 'e-mail', 'review.kind.name': 'name', 'review.kind.hand': 'by hand',
    'review.state.proposed': 'undecided', 'review.state.accepted': 'accepted', 'review.state.rejected': 'rejected',
    'review.approve': 'Approve this review', 'review.approve_note': 'Someone other than the reviewer approves; an approved review changes no more.',
    'review.publish_note': "Save the published version from the room's members → Export the record → an approved published version (review {id}).",
    'review.marked_done': '{n} events marked', 'review.approved': 'Approved',
  },
});

// Every page of the room's JSON Lines record for the review's range: the ids of what a person
// reads (messages, their edits and deletions, photos), as the CLI's mark --all.
async function markable(rv) {
  const ids = [];
  let after;
  for (;;) {
    const r = await api.call('record.export', { room: rv.room, format: 'jsonl', from: rv.from || undefined, to: rv.to || undefined,
      ...(after != null ? { after } : {}) }, { timeout: 60000 });
    for (const line of (r.text || '').split('\n')) {
      if (!line) continue;
      try {
        const o = JSON.parse(line);
        if (o.event_id && typeof o.type === 'string' && (o.type.startsWith('msg') || o.type === 'e2ee.photo') && !o.proof) ids.push(o.event_id);
      } catch { /* the header, or a proof line */ }
    }
    if (!r.more) return ids;
    after = r.next_after;
  }
}

route('#/review/:id', async (el, params) => {
  const id = Number(params.id);
  const main = h('section', { class: 'page review', id: 'review', 'aria-labelledby': 'review-title' });
  el.append(main);
  async function draw() {
    let r;
    try { r = await api.call('record.review.show', { review: id }); } catch (e) {
      clear(main);
      main.append(h('p', { class: 'form-error', role: 'alert' }, e.message));
      return;
    }
    const rv = r.review || r;
    const reds = r.redactions || [];
    const open = reds.filter((x) => x.state === 'proposed').length;
    const editable = rv.state === 'open';
    const mine = rv.reviewer === session.login();
    clear(main);
    main.append(...[h('h1', { id: 'review-title' }, t('review.title', { id, title: rv.title || '' })),
      h('p', { class: 'muted' }, t('review.meta', { room: rv.room_name || rv.room, reviewer: rv.reviewer, state: t('review.state.' + rv.state) })),
      rv.approved_at ? h('p', null, t('review.approved_by', { by: rv.approved_by, at: formatTime(rv.approved_at) })) : null,
      h('h2', null, t('review.marked', { n: (r.passages || []).length })),
      editable && mine ? h('button', { type: 'button', id: 'rv-mark-all', onclick: () => act(async () => {
        const ids = await markable(rv);
        for (let i = 0; i < ids.length; i += 1000) await api.call('record.review.mark', { review: id, events: ids.slice(i, i + 1000) });
        toast(t('review.marked_done', { n: ids.length }));
      }) }, t('review.mark_all')) : null,
      h('h2', null, t('review.redactions', { n: reds.length, open })),
      reds.length ? h('ul', { class: 'rv-list', id: 'rv-list' }, reds.map((x) => h('li', { class: ['rv-item', 'rv-' + x.state], dataset: { redaction: String(x.id), state: x.state } },
        h('span', { class: 'tag' }, t('review.kind.' + (x.by_hand ? 'hand' : x.kind)) || x.kind), ' ',
        h('mark', { class: 'rv-text' }, x.text || ''), ' ',
        h('span', { class: 'muted' }, t('review.state.' + x.state)), ' ',
        editable && mine ? h('span', { class: 'rv-buttons' },
          h('button', { type: 'button', class: 'btn-small', onclick: () => act(() => api.call('record.review.decide', { review: id, redaction: x.id, accept: true })) }, t('review.accept')),
          h('button', { type: 'button', class: 'btn-small btn-quiet', onclick: () => act(() => api.call('record.review.decide', { review: id, redaction: x.id, accept: false })) }, t('review.reject'))) : null)))
        : h('p', { class: 'muted' }, t('review.none')),
      editable && mine && open ? h('button', { type: 'button', id: 'rv-accept-all', onclick: () => act(async () => {
        for (const x of reds.filter((y) => y.state === 'proposed')) await api.call('record.review.decide', { review: id, redaction: x.id, accept: true });
      }) }, t('review.accept_all')) : null,
      // Never one's own review (the server says forbidden too): the reviewer sees only the note.
      editable && mine ? h('p', { class: 'muted', id: 'rv-approve-note' }, t('review.approve_note')) : null,
      editable && !mine ? h('div', { class: 'rv-approve' },
        h('p', { class: 'muted' }, t('review.approve_note')),
        h('button', { type: 'button', class: 'btn-primary', id: 'rv-approve', onclick: () => act(async () => {
          await api.call('record.review.approve', { review: id });
          toast(t('review.approved'));
        }) }, t('review.approve'))) : null,
      h('p', { class: 'muted' }, t('review.publish_note', { id }))].filter(Boolean));
  }
  async function act(fn) {
    try { await fn(); } catch (e) { toast(e.message, 'error', 8000); }
    await draw();
  }
  await draw();
});
