// record.js: the room's record (記録, issue 22) from the room's menu: its chronology as a file
// (record.export: HTML to print, CSV for Excel, JSON Lines for `kizunad verify-record`), of the
// whole room or a range of days, or the published version of an approved review
// (record.publish), each fetched page by page and saved as one file; or a review started or
// opened (its page, js/pages/review.js: marks, redactions, approval). Photos appear as
// the server has them (their blob ids): the browser does not fill in captions here, as the
// CLI's export does from its own device.

import { api } from './api.js';
import { h, dialog, toast } from './dom.js';
import { t, addStrings } from './i18n.js';
import { go } from './router.js';

addStrings({
  ja: {
    'record.title': '記録を書き出す（時系列）',
    'record.kind': '書き出すもの', 'record.kind.export': 'このルームの記録（内部用）', 'record.kind.publish': '承認済みの公開版',
    'record.kind.review_new': '公開のためのレビューを始める（レビュー担当者）', 'record.kind.review_open': 'レビューを開く',
    'record.review_title': 'レビューの題名（任意）',
    'record.format': '形式', 'record.format.html': 'HTML（印刷・PDF 用）', 'record.format.csv': 'CSV（Excel 用）',
    'record.format.jsonl': 'JSON Lines（検証用: kizunad verify-record）',
    'record.from': '開始日（任意）', 'record.to': '終了日（任意、その日を含む）', 'record.review': 'レビュー番号',
    'record.ok': '書き出す', 'record.busy': '書き出しています… {rows} 行', 'record.done': '{file} を保存しました（{rows} 行）',
    'record.note': '写真はサーバーが読めないため、ID のみが入ります（説明付きは CLI の kizuna record export で）。',
    'record.bad_review': 'レビュー番号を入力してください',
  },
  en: {
    'record.title': 'Export the record (chronology)',
    'record.kind': 'What', 'record.kind.export': "this room's record (internal)", 'record.kind.publish': 'an approved published version',
    'record.kind.review_new': 'start a review for publication (reviewers)', 'record.kind.review_open': 'open a review',
    'record.review_title': "The review's title (optional)",
    'record.format': 'Format', 'record.format.html': 'HTML (to print, PDF)', 'record.format.csv': 'CSV (Excel)',
    'record.format.jsonl': 'JSON Lines (to verify: kizunad verify-record)',
    'record.from': 'From (optional)', 'record.to': 'To (optional, inclusive)', 'record.review': 'Review number',
    'record.ok': 'Export', 'record.busy': 'Exporting… {rows} rows', 'record.done': 'Saved {file} ({rows} rows)',
    'record.note': 'Photos appear by their ids only: the server cannot read them (the CLI\'s kizuna record export adds captions).',
    'record.bad_review': 'Give the review number',
  },
});

const TYPES = { html: 'text/html;charset=utf-8', csv: 'text/csv;charset=utf-8', jsonl: 'application/jsonl;charset=utf-8' };

// Midnight of a yyyy-mm-dd in the browser's zone, in ms (the day after for an inclusive end).
function dayStart(v, next) {
  if (!v) return undefined;
  const [y, m, d] = v.split('-').map(Number);
  return new Date(y, m - 1, d + (next ? 1 : 0)).getTime();
}

// Every page of op's answer joined: the file's text. progress(rows) after each page.
async function pages(op, args, progress) {
  const parts = [];
  let rows = 0, after;
  for (;;) {
    const r = await api.call(op, { ...args, ...(after != null ? { after } : {}) }, { timeout: 60000 });
    parts.push(r.text || '');
    rows += r.rows || 0;
    progress(rows);
    if (!r.more) return { text: parts.join(''), rows };
    after = r.next_after;
  }
}

function save(text, name, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** The dialog; roomId the room, name its name (for the file's name). */
export async function recordDialog(roomId, name) {
  const kind = h('select', { id: 'rec-kind' }, ['export', 'publish', 'review_new', 'review_open'].map((k) =>
    h('option', { value: k }, t('record.kind.' + k))));
  const title = h('input', { id: 'rec-title', maxlength: '200' });
  const titleField = h('div', { class: 'field', hidden: true }, h('label', { for: 'rec-title' }, t('record.review_title')), title);
  const format = h('select', { id: 'rec-format' }, ['html', 'csv', 'jsonl'].map((f) => h('option', { value: f }, t('record.format.' + f))));
  const from = h('input', { type: 'date', id: 'rec-from' });
  const to = h('input', { type: 'date', id: 'rec-to' });
  const review = h('input', { type: 'number', id: 'rec-review', min: '1', inputmode: 'numeric' });
  const range = h('div', null,
    h('div', { class: 'field' }, h('label', { for: 'rec-from' }, t('record.from')), from),
    h('div', { class: 'field' }, h('label', { for: 'rec-to' }, t('record.to')), to));
  const reviewField = h('div', { class: 'field', hidden: true }, h('label', { for: 'rec-review' }, t('record.review')), review);
  const formatField = h('div', { class: 'field' }, h('label', { for: 'rec-format' }, t('record.format')), format);
  kind.addEventListener('change', () => {
    const k = kind.value;
    range.hidden = k !== 'export' && k !== 'review_new';
    reviewField.hidden = k !== 'publish' && k !== 'review_open';
    formatField.hidden = k !== 'export' && k !== 'publish';
    titleField.hidden = k !== 'review_new';
  });
  const v = await dialog(t('record.title'), [
    h('div', { class: 'field' }, h('label', { for: 'rec-kind' }, t('record.kind')), kind),
    formatField, titleField, range, reviewField, h('p', { class: 'muted' }, t('record.note')),
  ], [{ label: t('common.cancel'), value: null }, { label: t('record.ok'), value: 'ok', submit: true, kind: 'primary' }],
  { validate: () => ['export', 'review_new'].includes(kind.value) || Number(review.value) > 0 || (toast(t('record.bad_review'), 'error'), false) });
  if (v !== 'ok') return;
  if (kind.value === 'review_open') { go('#/review/' + Number(review.value)); return; }
  if (kind.value === 'review_new') {
    try {
      const r = await api.call('record.review.create', { room: roomId, title: title.value.trim() || undefined,
        from: dayStart(from.value), to: dayStart(to.value, true) }, { timeout: 60000 });
      go('#/review/' + r.review);
    } catch (e) { toast(e.message, 'error', 8000); }
    return;
  }
  const f = format.value;
  const busy = toast(t('record.busy', { rows: 0 }), 'info', 600000);
  const progress = (rows) => { if (busy) busy.textContent = t('record.busy', { rows }); };
  try {
    const r = kind.value === 'export'
      ? await pages('record.export', { room: roomId, format: f, from: dayStart(from.value), to: dayStart(to.value, true) }, progress)
      : await pages('record.publish', { review: Number(review.value), format: f }, progress);
    const stamp = new Date().toISOString().slice(0, 10);
    const file = `${kind.value === 'export' ? '記録' : '公開版'}_${(name || roomId).replace(/[\\/:*?"<>|]/g, '_')}_${stamp}.${f}`;
    save(r.text, file, TYPES[f]);
    toast(t('record.done', { file, rows: r.rows }));
  } catch (e) {
    toast(e.message, 'error', 8000);
  } finally {
    busy?.remove?.();
  }
}
