// gallery.js: a room's photos for HQ (issue 21, item 4), #/room/:id/photos. Newest first, each
// decrypted in this browser by js/photos.js exactly as in the room's timeline (thumbnail,
// caption, capture time, geo: link, the full image on a tap; a photo that cannot be shown says
// why). Filterable by day: the day a photo was taken (its capture time, known once decrypted),
// else the day it was sent, in the server's time zone. History is read backwards
// a page of 100 events at a time, up to PAGES pages per "older" step, e2ee.keys events handed to
// photos.js on the way so that keys found before their photos are known.

import { api } from '../api.js';
import { h, clear, formatTime } from '../dom.js';
import { t, addStrings } from '../i18n.js';
import { route } from '../router.js';
import { rooms, roomName } from './rooms.js';

addStrings({
  ja: {
    'gallery.title': '写真一覧（{room}）', 'gallery.back': 'ルームに戻る', 'gallery.link': '写真一覧',
    'gallery.date': '撮影日', 'gallery.all': 'すべての日', 'gallery.older': 'さらに古い写真を読み込む',
    'gallery.none': '写真はありません。', 'gallery.none_day': 'この日の写真はありません。',
    'gallery.count': '{n} 枚', 'gallery.loading': '読み込み中…', 'gallery.sent': '送信 {at}（{who}）',
  },
  en: {
    'gallery.title': 'Photos ({room})', 'gallery.back': 'Back to the room', 'gallery.link': 'Photos',
    'gallery.date': 'Taken on', 'gallery.all': 'All days', 'gallery.older': 'Load older photos',
    'gallery.none': 'No photos.', 'gallery.none_day': 'No photos on this day.',
    'gallery.count': '{n} photos', 'gallery.loading': 'Loading…', 'gallery.sent': 'Sent {at} ({who})',
  },
});

const PAGE = 100;
const PAGES = 10;

// YYYY-MM-DD of ms in the server's zone (the browser's when the name is unknown).
function dayOf(ms) {
  const tz = api.session?.time_zone;
  let f;
  try { f = new Intl.DateTimeFormat('en-CA', { timeZone: tz || undefined, year: 'numeric', month: '2-digit', day: '2-digit' }); }
  catch { f = new Intl.DateTimeFormat('en-CA', { year: 'numeric', month: '2-digit', day: '2-digit' }); }
  return f.format(new Date(ms));
}

route('#/room/:id/photos', async (el, params) => {
  const roomId = params.id;
  const name = roomName(rooms.byId(roomId)) || roomId;
  const photos = await import('../photos.js');
  let alive = true;
  let before = null;
  let more = true;
  const seen = new Set();

  const date = h('input', { type: 'date', id: 'gallery-date', onchange: () => filter() });
  const allBtn = h('button', { type: 'button', class: 'btn-quiet', id: 'gallery-all', onclick: () => { date.value = ''; filter(); } }, t('gallery.all'));
  const count = h('p', { class: 'muted', id: 'gallery-count', role: 'status' }, t('gallery.loading'));
  const grid = h('ol', { class: 'gallery', id: 'gallery' });
  const empty = h('p', { class: 'muted', id: 'gallery-empty', hidden: true });
  const olderBtn = h('button', { type: 'button', class: 'load-more', id: 'gallery-older', hidden: true, onclick: () => load() }, t('gallery.older'));
  el.append(h('section', { class: 'gallery-page', 'aria-labelledby': 'gallery-title' },
    h('header', { class: 'room-head' },
      h('a', { href: '#/room/' + encodeURIComponent(roomId), class: 'back', 'aria-label': t('gallery.back') }, '‹'),
      h('h1', { id: 'gallery-title', class: 'room-title' }, t('gallery.title', { room: name }))),
    h('div', { class: 'gallery-filter' }, h('label', { for: 'gallery-date' }, t('gallery.date')), date, allBtn),
    count, grid, empty, olderBtn));

  function filter() {
    const d = date.value;
    let n = 0;
    for (const li of grid.children) {
      const show = !d || li.dataset.day === d;
      li.hidden = !show;
      if (show) n++;
    }
    count.textContent = t('gallery.count', { n });
    empty.hidden = n > 0;
    empty.textContent = d ? t('gallery.none_day') : t('gallery.none');
  }

  // One photo, appended at the end (older than every one shown).
  function add(ev) {
    const body = h('div', { class: 'msg-body' });
    const who = ev.sender_name || ev.sender;
    grid.append(h('li', { class: 'gallery-item', 'data-pos': String(ev.pos), 'data-day': dayOf(ev.ts) },
      body, h('p', { class: 'muted gallery-sent' },
        h('time', { datetime: new Date(ev.ts).toISOString() }, t('gallery.sent', { at: formatTime(ev.ts, { full: true }), who })))));
    const li = grid.lastElementChild;
    // Filtered by the day it was taken (the capture time from its EXIF, inside the encryption,
    // known once decrypted), else the day it was sent.
    photos.photoBody(roomId, ev, body).then((p) => {
      const m = /^(\d{4}-\d{2}-\d{2})/.exec(p?.captured_at || '');
      if (m) { li.dataset.day = m[1]; filter(); }
    }).catch(() => {});
  }

  async function load() {
    olderBtn.disabled = true;
    try {
      for (let i = 0; i < PAGES && more && alive; i++) {
        const r = await api.call('history', { room: roomId, limit: PAGE, ...(before != null ? { before } : {}) });
        const evs = r.events || [];
        if (!evs.length) { more = false; break; }
        before = evs[0].pos;
        more = !!r.more;
        for (const ev of evs) if (ev.event === 'e2ee.keys') photos.noteEvent(roomId, ev);
        for (const ev of evs.slice().reverse()) {
          if (ev.event !== 'e2ee.photo' || seen.has(ev.pos)) continue;
          seen.add(ev.pos);
          add(ev);
        }
      }
    } finally { olderBtn.disabled = false; }
    if (!alive) return;
    olderBtn.hidden = !more;
    filter();
  }

  // A photo that arrives while the page is open goes first.
  const onMsg = (ev) => {
    if (ev.room !== roomId) return;
    if (ev.event === 'e2ee.keys') photos.noteEvent(roomId, ev);
    if (ev.event !== 'e2ee.photo' || seen.has(ev.pos)) return;
    seen.add(ev.pos);
    add(ev);
    grid.prepend(grid.lastElementChild);
    filter();
  };
  api.on('*', onMsg);
  await load();
  return () => { alive = false; api.off('*', onMsg); };
});
