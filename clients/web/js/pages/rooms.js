// pages/rooms.js: the room list (unread counts, last message, kept live from the event
// stream), creating a room and opening a one-to-one room (DM). roomList() draws the same list
// into the room view's side column on wide screens.

import { api } from '../api.js';
import { h, clear, formatTime, dialog, confirmDialog, toast, banner } from '../dom.js';
import { t, addStrings } from '../i18n.js';
import { route, navItem, go } from '../router.js';
import * as session from '../session.js';
import { keep, recall } from '../snapshot.js';

addStrings({
  ja: {
    'rooms.title': 'トーク', 'rooms.new': '新しいルーム', 'rooms.dm': '個別トーク',
    'rooms.empty': 'まだルームがありません。「新しいルーム」で作るか、招待を待ってください。',
    'rooms.unread': '未読 {n} 件', 'rooms.nomsg': 'メッセージはまだありません', 'rooms.deleted': '（削除されました）',
    'rooms.direct': '個別', 'rooms.archived': 'アーカイブ済み',
    'rooms.create.title': '新しいルーム', 'rooms.create.name': 'ルーム名', 'rooms.create.topic': '説明（任意）',
    'rooms.create.members': 'メンバーのログインID（空白かカンマ区切り、任意）', 'rooms.create.ok': '作成',
    'rooms.create.dup': '同じ名前のルームがすでにあります。2つ目を作りますか？',
    'rooms.dm.title': '個別トーク', 'rooms.dm.login': '相手のログインID', 'rooms.dm.ok': '開く',
    'rooms.photo': '[写真]',
    'rooms.alert': '第一報（{room}）{from} {name}{seat}: {body}', 'rooms.alert_open': '開く',
    'rooms.unsent': '未送信のメッセージがあります。閉じると送られません。',
    'rooms.as_of': 'オフラインです。{at} 時点の一覧を表示しています',
  },
  en: {
    'rooms.title': 'Talk', 'rooms.new': 'New room', 'rooms.dm': 'Direct message',
    'rooms.empty': 'No rooms yet. Create one with "New room", or wait for an invitation.',
    'rooms.unread': '{n} unread', 'rooms.nomsg': 'No messages yet', 'rooms.deleted': '(deleted)',
    'rooms.direct': 'DM', 'rooms.archived': 'archived',
    'rooms.create.title': 'New room', 'rooms.create.name': 'Room name', 'rooms.create.topic': 'Topic (optional)',
    'rooms.create.members': 'Members\' login IDs (space or comma separated, optional)', 'rooms.create.ok': 'Create',
    'rooms.create.dup': 'You already have a room with this name. Create a second one?',
    'rooms.dm.title': 'Direct message', 'rooms.dm.login': "The other person's login ID", 'rooms.dm.ok': 'Open',
    'rooms.photo': '[photo]',
    'rooms.alert': 'First report ({room}) {from} {name}{seat}: {body}', 'rooms.alert_open': 'Open',
    'rooms.unsent': 'Some messages are not sent yet; closing loses them.',
    'rooms.as_of': 'Offline: the list as of {at}',
  },
});

// ---- the list, shared by every view that shows it ----
export const rooms = {
  list: null,            // room.list's rooms, most recently active first
  asOf: null,            // offline: the list is this browser's snapshot from then (ms)
  open: null,            // the room id shown in the room view (its messages count as read)
  subs: new Set(),
  byId(id) { return this.list?.find((r) => r.room === id) || null; },
  changed() { for (const fn of this.subs) fn(); },
};

// Names of people seen in events (room.list's `last` names its sender by login only).
export const knownNames = new Map();
export function rememberName(login, name) { if (login && name) knownNames.set(login, name); }
api.on('*', (ev) => rememberName(ev.sender, ev.sender_name));

let refreshing = null;
let refreshTimer = 0;
export function refreshRooms() {
  if (!session.loggedIn()) return Promise.resolve();
  if (!refreshing) {
    refreshing = (async () => {
      // Offline: the list as this browser last saw it (js/snapshot.js), at once, marked as of
      // when, until the server answers.
      if (!rooms.list && api.state !== 'online') {
        const snap = await recall('rooms');
        if (snap && !rooms.list) { rooms.list = snap.value; rooms.asOf = snap.at; rooms.changed(); }
      }
      const r = await api.call('room.list');
      rooms.list = r.rooms;
      rooms.asOf = null;
      rooms.changed();
      keep('rooms', r.rooms);
    })().catch(() => {}).finally(() => { refreshing = null; });
  }
  return refreshing;
}
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshRooms, 300);
}

function onMessage(ev) {
  const r = rooms.byId(ev.room);
  if (!r) { refreshSoon(); return; }
  r.last = { pos: ev.pos, sender: ev.sender, sender_name: ev.sender_name,
    body: ev.event === 'msg' ? ev.content?.body : '', photo: ev.event === 'e2ee.photo', deleted: false, ts: ev.ts };
  if (ev.sender !== session.login() && rooms.open !== ev.room) r.unread = (r.unread || 0) + 1;
  rooms.list = [r, ...rooms.list.filter((x) => x !== r)];
  rooms.changed();
}
api.on('msg', onMessage);
api.on('e2ee.photo', onMessage);
api.on('msg.edit', (ev) => {
  const r = rooms.byId(ev.room);
  if (r?.last && r.last.pos === ev.target_pos) { r.last.body = ev.content?.body; rooms.changed(); }
});
api.on('msg.delete', (ev) => {
  const r = rooms.byId(ev.room);
  if (r?.last && r.last.pos === ev.target_pos) { r.last.deleted = true; r.last.body = ''; rooms.changed(); }
});
api.on('read', (ev) => {
  if ((ev.markers || []).some((m) => m.user === session.login())) refreshSoon();
});
for (const type of ['member', 'room.create', 'room.update', 'room.archive', 'member.role']) api.on(type, refreshSoon);
api.on('resumed', refreshSoon);
api.on('session', () => { rooms.list = null; });
api.on('end', () => { rooms.list = null; rooms.open = null; rooms.changed(); });

// A first report (第一報) in a hotline, pushed to this user's on-duty seat ahead of everything:
// a red banner wherever one is, until opened or closed.
api.on('hotline.alert', (ev) => {
  const id = 'hotline-' + ev.event_id;
  banner(id, t('rooms.alert', { room: ev.room_name || '', from: ev.server_name || '', name: ev.sender_name || ev.sender,
    seat: ev.seat ? ` [${ev.seat}]` : '', body: ev.body || '' }), { kind: 'alert', closable: true,
    action: { label: t('rooms.alert_open'), onclick: () => { banner(id, null); go('#/room/' + encodeURIComponent(ev.room)); } } });
});

// Leaving the page with messages still in the outbox loses them: ask first.
window.addEventListener('beforeunload', (e) => {
  if (api.outbox.length && session.loggedIn()) { e.preventDefault(); e.returnValue = t('rooms.unsent'); }
});

// Mark a room read up to pos locally (the room view calls this after `read`).
export function markedRead(roomId) {
  const r = rooms.byId(roomId);
  if (r && r.unread) { r.unread = 0; rooms.changed(); }
}

export function roomName(r) { return r?.name || (r?.with ?? ''); }

function lastLine(r) {
  const l = r.last;
  if (!l) return t('rooms.nomsg');
  const who = l.sender === session.login() ? '' : (l.sender_name || knownNames.get(l.sender) || l.sender) + ': ';
  return who + (l.deleted ? t('rooms.deleted') : l.photo ? t('rooms.photo') : l.body);
}

// Draws the list into el and keeps it current; returns the cleanup.
export function roomList(el, opts = {}) {
  const ul = h('ul', { class: 'room-list', id: opts.id || 'room-list', 'aria-label': t('rooms.title') });
  el.append(ul);
  function draw() {
    clear(ul);
    if (!rooms.list) { ul.append(h('li', { class: 'muted' }, t('common.loading'))); return; }
    if (rooms.asOf) ul.append(h('li', { class: 'snapshot-note', role: 'status' }, t('rooms.as_of', { at: formatTime(rooms.asOf) })));
    if (!rooms.list.length) { ul.append(h('li', { class: 'muted empty' }, t('rooms.empty'))); return; }
    for (const r of rooms.list) {
      const active = r.room === opts.active;
      ul.append(h('li', null, h('a', { href: '#/room/' + encodeURIComponent(r.room), class: ['room-item', active ? 'active' : null, r.unread ? 'has-unread' : null],
        'aria-current': active ? 'page' : null, dataset: { room: r.room } },
      h('span', { class: 'room-line1' },
        h('span', { class: 'room-name' }, roomName(r)),
        r.kind === 'direct' ? h('span', { class: 'tag' }, t('rooms.direct')) : null,
        h('time', { class: 'room-time' }, r.last ? formatTime(r.last.ts) : '')),
      h('span', { class: 'room-line2' },
        h('span', { class: 'room-last' }, lastLine(r)),
        r.unread ? h('span', { class: 'badge', 'aria-label': t('rooms.unread', { n: r.unread }) }, String(r.unread > 999 ? '999+' : r.unread)) : null))));
    }
  }
  rooms.subs.add(draw);
  draw();
  if (!rooms.list) refreshRooms(); else refreshSoon();
  return () => rooms.subs.delete(draw);
}

export async function createRoomDialog() {
  const name = h('input', { id: 'new-room-name', required: true, maxlength: 255 });
  const topic = h('input', { id: 'new-room-topic' });
  const members = h('input', { id: 'new-room-members', autocapitalize: 'none', spellcheck: 'false' });
  const ok = await dialog(t('rooms.create.title'), [
    h('div', { class: 'field' }, h('label', { for: 'new-room-name' }, t('rooms.create.name')), name),
    h('div', { class: 'field' }, h('label', { for: 'new-room-topic' }, t('rooms.create.topic')), topic),
    h('div', { class: 'field' }, h('label', { for: 'new-room-members' }, t('rooms.create.members')), members),
  ], [{ label: t('common.cancel'), value: false }, { label: t('rooms.create.ok'), value: true, kind: 'primary', submit: true }],
  { validate: () => name.value.trim() !== '' });
  if (ok !== true) return;
  const args = { name: name.value.trim() };
  if (topic.value.trim()) args.topic = topic.value.trim();
  const m = members.value.split(/[\s,、，]+/).filter(Boolean);
  if (m.length) args.members = m;
  try {
    let r;
    try { r = await api.call('room.create', args); } catch (e) {
      if (e.code !== 'conflict') throw e;
      if (!await confirmDialog(t('rooms.create.dup'))) return;
      r = await api.call('room.create', { ...args, confirm: true });
    }
    await refreshRooms();
    go('#/room/' + encodeURIComponent(r.room.room));
  } catch (e) { toast(e.message, 'error', 8000); }
}

export async function directDialog() {
  const login = h('input', { id: 'dm-login', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const ok = await dialog(t('rooms.dm.title'), [
    h('div', { class: 'field' }, h('label', { for: 'dm-login' }, t('rooms.dm.login')), login),
  ], [{ label: t('common.cancel'), value: false }, { label: t('rooms.dm.ok'), value: true, kind: 'primary', submit: true }],
  { validate: () => login.value.trim() !== '' });
  if (ok !== true) return;
  try {
    const r = await api.call('room.direct', { user: login.value.trim() });
    await refreshRooms();
    go('#/room/' + encodeURIComponent(r.room.room));
  } catch (e) { toast(e.message, 'error', 8000); }
}

export function roomActions() {
  return h('div', { class: 'actions' },
    h('button', { type: 'button', class: 'btn-primary', id: 'new-room', onclick: createRoomDialog }, t('rooms.new')),
    h('button', { type: 'button', id: 'new-dm', onclick: directDialog }, t('rooms.dm')));
}

navItem({ route: '#/rooms', label: 'nav.rooms', order: 10, match: (hash) => hash.startsWith('#/room/') });

route('#/rooms', (el) => {
  rooms.open = null;
  const sec = h('section', { class: 'page rooms-page', 'aria-labelledby': 'rooms-title' },
    h('div', { class: 'page-head' }, h('h1', { id: 'rooms-title' }, t('rooms.title')), roomActions()));
  el.append(sec);
  return roomList(sec);
});
