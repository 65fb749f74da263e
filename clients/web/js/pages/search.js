// pages/search.js: Japanese full-text search over my rooms' messages and my notices (the
// `search` op: every word, anywhere, in any order; a full-width space separates words too).

import { api } from '../api.js';
import { h, clear, formatTime } from '../dom.js';
import { t, addStrings } from '../i18n.js';
import { route, navItem, go } from '../router.js';
import { rooms, refreshRooms, roomName } from './rooms.js';

addStrings({
  ja: {
    'search.title': '検索', 'search.label': '検索する言葉（空白で区切ると、すべてを含むもの）', 'search.submit': '検索',
    'search.in_room': 'ルーム「{name}」の中だけ', 'search.all_rooms': 'すべてのルームとお知らせ',
    'search.none': '「{q}」を含むものは見つかりませんでした。', 'search.more': 'さらに表示', 'search.count': '{n} 件表示中',
    'search.notice': 'お知らせ',
  },
  en: {
    'search.title': 'Search', 'search.label': 'Words to find (separated by spaces: all of them)', 'search.submit': 'Search',
    'search.in_room': 'Only in "{name}"', 'search.all_rooms': 'All rooms and notices',
    'search.none': 'Nothing contains "{q}".', 'search.more': 'More', 'search.count': '{n} shown', 'search.notice': 'Notice',
  },
});

navItem({ route: '#/search', label: 'nav.search', order: 20 });

// Marks each word of the query in a result's text, without any HTML.
function marked(text, words) {
  const out = [];
  const lower = text.toLowerCase();
  let i = 0;
  while (i < text.length) {
    let best = -1, len = 0;
    for (const w of words) {
      const j = lower.indexOf(w.toLowerCase(), i);
      if (j >= 0 && (best < 0 || j < best)) { best = j; len = w.length; }
    }
    if (best < 0) { out.push(text.slice(i)); break; }
    if (best > i) out.push(text.slice(i, best));
    out.push(h('mark', null, text.slice(best, best + len)));
    i = best + len;
  }
  return out;
}

route('#/search', async (el, params) => {
  if (!rooms.list) await refreshRooms();
  const q = params.q || '';
  const input = h('input', { id: 'search-q', type: 'search', value: q, required: true, maxlength: 256 });
  const scope = params.room ? h('div', { class: 'check' }, h('input', { type: 'checkbox', id: 'search-room', checked: true }),
    h('label', { for: 'search-room' }, t('search.in_room', { name: roomName(rooms.byId(params.room)) || params.room }))) : null;
  const form = h('form', { class: 'search-form', role: 'search' },
    h('label', { for: 'search-q' }, t('search.label')),
    h('div', { class: 'row' }, input, h('button', { type: 'submit', class: 'btn-primary' }, t('search.submit'))), scope);
  const status = h('p', { class: 'muted', role: 'status', id: 'search-status' });
  const results = h('ol', { class: 'results', id: 'search-results' });
  const more = h('button', { type: 'button', hidden: true, id: 'search-more' }, t('search.more'));
  el.append(h('section', { class: 'page', 'aria-labelledby': 'search-title' },
    h('h1', { id: 'search-title' }, t('search.title')), form, status, results, more));

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = input.value.trim();
    if (!v) return;
    const room = scope && form.querySelector('#search-room').checked ? '&room=' + encodeURIComponent(params.room) : '';
    go('#/search?q=' + encodeURIComponent(v) + room);
  });

  if (!q) { input.focus(); return; }
  const words = q.split(/[\s\u3000]+/).map((w) => w.replace(/^"|"$/g, '')).filter(Boolean);
  let before = null;
  let n = 0;
  async function page() {
    const args = { query: q };
    if (params.room && (!scope || form.querySelector('#search-room').checked)) args.room = params.room;
    if (before) args.before = before;
    let r;
    try { r = await api.call('search', args); } catch (e) { status.textContent = e.message; return; }
    for (const x of r.results) {
      n++;
      const href = x.kind === 'notice' ? '#/notices/' + x.notice : `#/room/${encodeURIComponent(x.room)}?pos=${x.pos}`;
      const where = x.kind === 'notice' ? t('search.notice') + ': ' + (x.title || '') : roomName(rooms.byId(x.room)) || x.room.slice(0, 8);
      results.append(h('li', null, h('a', { href, class: 'result' },
        h('span', { class: 'result-where' }, where),
        h('span', { class: 'result-who' }, (x.sender_name || x.sender || '') + '　' + formatTime(x.ts)),
        h('span', { class: 'result-body' }, marked(x.body || '', words)))));
    }
    before = r.next_before || null;
    more.hidden = !before;
    status.textContent = n ? t('search.count', { n }) : t('search.none', { q });
  }
  more.addEventListener('click', page);
  await page();
});
