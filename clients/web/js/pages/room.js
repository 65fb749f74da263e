// pages/room.js: one room. Live messages, 既読 counts updating live and who read (by
// municipality in shared rooms, with their seats), history paging in both directions with a
// capped DOM (at most CAP messages are in the page whatever the room's length: older pages come
// in at the top and the newest leave at the bottom, and the other way), edit, delete,
// membership, and the composer, which never sends on the Enter that confirms an IME conversion.
// Sends go through api.send's outbox: typed while offline, they go out once, in order, later.

import { api } from '../api.js';
import { h, clear, formatTime, dialog, confirmDialog, promptDialog, toast } from '../dom.js';
import { t, addStrings } from '../i18n.js';
import { route, go } from '../router.js';
import * as session from '../session.js';
import { rooms, roomList, roomName, refreshRooms, markedRead, roomActions, rememberName } from './rooms.js';
import { keep, recall } from '../snapshot.js';

addStrings({
  ja: {
    'room.back': 'ルーム一覧へ', 'room.members': 'メンバー {n}人', 'room.search': 'このルームを検索',
    'room.timeline': 'メッセージ', 'room.older': '以前のメッセージを読み込む', 'room.newer': '新しいメッセージを読み込む',
    'room.latest': '最新へ', 'room.new_below': '新着メッセージ ↓', 'room.start': 'ルームの始まりです',
    'room.composer': 'メッセージを入力', 'room.camera_label': '撮影', 'room.camera': '写真を撮る・選ぶ（入力中の文は説明として暗号化して送ります）', 'room.send': '送信', 'room.hint': 'Enter で送信、Shift+Enter で改行',
    'room.sending': '送信中…', 'room.queued': '未送信（接続を待っています）', 'room.failed': '送信できませんでした: {message}',
    'room.read': '既読 {n}', 'room.edited': '（編集済み）', 'room.deleted': 'このメッセージは削除されました',
    'room.deleted_admin': 'ルーム管理者 {by} がこのメッセージを削除しました', 'room.late': '遅れて到着 {at}',
    'room.actions': 'メッセージの操作', 'room.readers': '既読者を見る', 'room.edit': '編集', 'room.delete': '削除',
    'room.edit.title': 'メッセージの編集', 'room.edit.label': '本文', 'room.delete.confirm': 'このメッセージを削除しますか？',
    'room.readers.title': '既読 {read} 人・未読 {unread} 人', 'room.readers.read': '既読', 'room.readers.unread': '未読',
    'room.readers.none': 'なし', 'room.readers.server': '{name}　既読 {read}/{members}',
    'room.photo': '[写真]',
    'room.as_of': 'オフラインです。{at} 時点の内容を表示しています',
    'room.not_found': 'このルームは見つかりません（退出したか、招待されていません）。',
    'room.archived': 'このルームはアーカイブ済みで、読み取り専用です。',
    'room.new_msg': '{name}: {body}',
    'room.ev.join': '{user} が参加しました', 'room.ev.leave': '{user} が退出しました', 'room.ev.remove': '{user} が退出させられました',
    'room.ev.create': '{user} がルーム「{name}」を作成しました', 'room.ev.rename': 'ルーム名が「{name}」になりました',
    'room.ev.topic': '説明が「{topic}」になりました', 'room.ev.archive': 'ルームがアーカイブされました',
    'room.ev.unarchive': 'ルームのアーカイブが解除されました', 'room.ev.role': '{user} の役割: {role}',
    'room.ev.seat': '{seat}（{server}）: {user}{duty}', 'room.ev.seat_vacant': '{seat}（{server}）: 空席',
    'room.ev.on_duty': '（第一報を受ける）', 'room.ev.server_in': '{server} が参加しました', 'room.ev.server_out': '{server} が外されました',
    'room.ev.notice': 'お知らせ', 'room.you_left': 'このルームから退出しました。',
    'members.title': 'メンバー', 'members.invite': '招待するログインID', 'members.invite_btn': '招待',
    'members.remove': '外す', 'members.remove_confirm': '{name} をこのルームから外しますか？',
    'members.leave': 'このルームから退出', 'members.leave_confirm': 'このルームから退出しますか？',
    'members.admin': '管理者', 'members.rename': 'ルーム名を変更', 'members.record': '記録を書き出す', 'members.invited': '{user} を招待しました。',
    'members.servers': '参加自治体', 'members.seats': '席',
    'room.keys': '↑↓ でメッセージを移動、Enter でメッセージの操作、Esc で入力欄へ', 'room.unread_here': 'ここから未読', 'room.this_server': 'このサーバー', 'room.on_duty': '（第一報を受ける）', 'room.urgent': '第一報', 'room.photos': '写真',
  },
  en: {
    'room.back': 'All rooms', 'room.members': '{n} members', 'room.search': 'Search this room',
    'room.timeline': 'Messages', 'room.older': 'Load older messages', 'room.newer': 'Load newer messages',
    'room.latest': 'Latest', 'room.new_below': 'New messages ↓', 'room.start': 'This is the start of the room',
    'room.composer': 'Type a message', 'room.camera_label': 'Camera', 'room.camera': 'Take or choose photos (the text typed goes with them as their caption, encrypted)', 'room.send': 'Send', 'room.hint': 'Enter sends, Shift+Enter adds a line',
    'room.sending': 'Sending…', 'room.queued': 'Not sent yet (waiting for the connection)', 'room.failed': 'Could not send: {message}',
    'room.read': 'Read {n}', 'room.edited': '(edited)', 'room.deleted': 'This message was deleted',
    'room.deleted_admin': 'Room admin {by} removed this message', 'room.late': 'arrived late {at}',
    'room.actions': 'Message actions', 'room.readers': 'Who read it', 'room.edit': 'Edit', 'room.delete': 'Delete',
    'room.edit.title': 'Edit message', 'room.edit.label': 'Text', 'room.delete.confirm': 'Delete this message?',
    'room.readers.title': '{read} read · {unread} not yet', 'room.readers.read': 'Read', 'room.readers.unread': 'Not yet',
    'room.readers.none': 'nobody', 'room.readers.server': '{name}  read {read}/{members}',
    'room.photo': '[photo]',
    'room.as_of': 'Offline: as of {at}',
    'room.not_found': 'This room was not found (you left it, or were not invited).',
    'room.archived': 'This room is archived and read-only.',
    'room.new_msg': '{name}: {body}',
    'room.ev.join': '{user} joined', 'room.ev.leave': '{user} left', 'room.ev.remove': '{user} was removed',
    'room.ev.create': '{user} created the room "{name}"', 'room.ev.rename': 'The room is now called "{name}"',
    'room.ev.topic': 'Topic: "{topic}"', 'room.ev.archive': 'The room was archived',
    'room.ev.unarchive': 'The room was unarchived', 'room.ev.role': '{user} is now {role}',
    'room.ev.seat': '{seat} ({server}): {user}{duty}', 'room.ev.seat_vacant': '{seat} ({server}): vacant',
    'room.ev.on_duty': ', on duty', 'room.ev.server_in': '{server} joined', 'room.ev.server_out': '{server} was removed',
    'room.ev.notice': 'Notice', 'room.you_left': 'You left this room.',
    'members.title': 'Members', 'members.invite': 'Login ID to invite', 'members.invite_btn': 'Invite',
    'members.remove': 'Remove', 'members.remove_confirm': 'Remove {name} from this room?',
    'members.leave': 'Leave this room', 'members.leave_confirm': 'Leave this room?',
    'members.admin': 'admin', 'members.rename': 'Rename room', 'members.record': 'Export the record', 'members.invited': 'Invited {user}.',
    'members.servers': 'Municipalities', 'members.seats': 'Seats',
    'room.keys': 'Up and down move between messages, Enter opens a message\'s actions, Esc goes to the text field', 'room.unread_here': 'Unread from here', 'room.this_server': 'this server', 'room.on_duty': ' (receives first reports)', 'room.urgent': 'First report', 'room.photos': 'Photos',
  },
});

export const CAP = 300;    // messages kept in the page at most
// Encrypted photos (issue 21): loaded with the first photo or key event, not with the app.
const photos = () => import('../photos.js');
const PAGE = 50;           // events per history page
const SNAPSHOT_EVENTS = 50; // events of a room kept for opening it offline (js/snapshot.js)
const UNREAD_START_MAX = 200; // up to this many unread: open at the first of them (as kizuna tail)
const HIDDEN = new Set(['device', 'device.list', 'room.read', 'e2ee.keys', 'e2ee.key_request',
  'e2ee.withheld', 'msg.edit', 'msg.delete']);

const coarse = () => matchMedia('(pointer: coarse)').matches;

route('#/room/:id', async (el, params) => {
  const roomId = params.id;
  rooms.open = roomId;
  const me = session.login();
  const offs = [];
  let alive = true;

  // ---- layout ----
  const side = h('aside', { class: 'room-side', 'aria-label': t('nav.rooms') }, roomActions());
  offs.push(roomList(side, { active: roomId, id: 'side-room-list' }));
  const title = h('h1', { id: 'room-title', class: 'room-title' }, roomName(rooms.byId(roomId)) || '…');
  const topic = h('p', { class: 'room-topic muted' });
  const serversLine = h('p', { class: 'room-servers muted' });
  const membersBtn = h('button', { type: 'button', class: 'btn-quiet', id: 'room-members', onclick: () => membersDialog() }, t('room.members', { n: '…' }));
  const head = h('header', { class: 'room-head' },
    h('a', { href: '#/rooms', class: 'back', 'aria-label': t('room.back') }, '‹'),
    h('div', { class: 'room-head-text' }, title, topic, serversLine),
    h('a', { class: 'btn btn-quiet', href: '#/search?room=' + encodeURIComponent(roomId), 'aria-label': t('room.search') }, '検索'),
    h('a', { class: 'btn btn-quiet', id: 'room-photos', href: '#/room/' + encodeURIComponent(roomId) + '/photos' }, t('room.photos')),
    membersBtn);
  const olderBtn = h('button', { type: 'button', class: 'load-more', id: 'load-older', onclick: () => loadOlder() }, t('room.older'));
  const startNote = h('p', { class: 'muted timeline-start', hidden: true }, t('room.start'));
  const newerBtn = h('button', { type: 'button', class: 'load-more', id: 'load-newer', hidden: true, onclick: () => loadNewer() }, t('room.newer'));
  const list = h('ol', { class: 'msgs', id: 'msgs' });
  const timeline = h('div', { class: 'timeline', id: 'timeline', tabindex: '0', role: 'region', 'aria-label': t('room.timeline'),
    'aria-describedby': 'timeline-hint' }, h('p', { id: 'timeline-hint', class: 'sr-only' }, t('room.keys')),
    startNote, olderBtn, list, newerBtn);
  const jump = h('button', { type: 'button', class: 'jump', id: 'jump-latest', hidden: true, onclick: () => jumpLatest() }, t('room.new_below'));
  const live = h('div', { class: 'sr-only', 'aria-live': 'polite', id: 'room-live' });
  const input = h('textarea', { id: 'composer', rows: '1', 'aria-describedby': 'composer-hint', maxlength: 16384, enterkeyhint: 'send' });
  const sendBtn = h('button', { type: 'submit', class: 'btn-primary', id: 'send' }, t('room.send'));
  // In a hotline, a first report (第一報) goes to every municipality's on-duty seats as an alert.
  const urgent = h('input', { type: 'checkbox', id: 'urgent' });
  const urgentBox = h('div', { class: 'check urgent', hidden: true }, urgent, h('label', { for: 'urgent' }, t('room.urgent')));
  const archivedNote = h('p', { class: 'archived-note', hidden: true }, t('room.archived'));
  // Issue 21: photos from the camera, encrypted here and uploaded resumably (js/photo_send.js);
  // the composer's text, if any, goes with them as their caption, inside the encryption.
  const cameraInput = h('input', { type: 'file', accept: 'image/*', capture: 'environment', multiple: true, id: 'camera-input', class: 'sr-only', tabindex: '-1' });
  const cameraBtn = h('button', { type: 'button', class: 'btn-quiet camera', id: 'camera', 'aria-label': t('room.camera'), onclick: () => cameraInput.click() }, t('room.camera_label'));
  const sendList = h('ul', { class: 'send-list', id: 'send-list', 'aria-live': 'polite' });
  cameraInput.addEventListener('change', () => {
    const files = [...cameraInput.files];
    cameraInput.value = '';
    if (!files.length) return;
    const caption = input.value.trim();
    input.value = '';
    import('../photo_send.js').then((m) => m.sendPhotos(roomId, files, caption, sendList));
  });
  const composer = h('form', { class: 'composer', id: 'composer-form' },
    h('label', { for: 'composer', class: 'sr-only' }, t('room.composer')),
    urgentBox, input, cameraInput, cameraBtn, sendBtn, h('p', { id: 'composer-hint', class: 'sr-only' }, t('room.hint')));
  const mainCol = h('div', { class: 'room-main' }, head, timeline, jump, archivedNote, sendList, composer, live);
  import('../photo_send.js').then((m) => m.resumePending(roomId, sendList)).catch(() => {}); // staged before a reload
  el.append(h('section', { class: 'room-page', 'aria-labelledby': 'room-title' }, side, mainCol));

  // ---- state ----
  const items = new Map();  // pos -> {ev, el}
  let hasOlder = true;
  let atLatest = false;      // the newest events are in the page
  let loading = false;
  let buffered = [];         // live events that arrived during a load
  let readSent = 0;
  let info = rooms.byId(roomId);
  let servers = null;        // room.servers' reply (shared rooms: names, seats)
  const seatOf = new Map();  // holder login -> [seat names]
  const pendings = new Map(); // client_id -> li
  const names = new Map();    // login -> name, for membership lines

  function firstPos() { for (const li of list.children) if (li.dataset.pos) return +li.dataset.pos; return 0; }
  function lastPos() {
    for (let li = list.lastElementChild; li; li = li.previousElementSibling) if (li.dataset.pos) return +li.dataset.pos;
    return 0;
  }
  function nearBottom() { return timeline.scrollHeight - timeline.scrollTop - timeline.clientHeight < 80; }
  function toBottom() { timeline.scrollTop = timeline.scrollHeight; }

  // ---- drawing one event ----
  function senderLabel(ev) {
    const name = ev.sender_name || ev.sender || '';
    const seat = ev.content?.seat || (seatOf.get(ev.sender) || [])[0];
    return [name, seat ? ` [${seat}]` : '', ev.server_name ? `（${ev.server_name}）` : ''].join('');
  }

  function systemText(ev) {
    const c = ev.content || {};
    const who = (u) => (u === ev.sender && ev.sender_name) || names.get(u) || u;
    switch (ev.event) {
      case 'member': return t('room.ev.' + (c.membership || 'join'), { user: who(c.user) });
      case 'room.create': return t('room.ev.create', { user: ev.sender_name || ev.sender, name: c.name || '' });
      case 'room.update': return (c.changed || ['name']).includes('name') ? t('room.ev.rename', { name: c.name }) : t('room.ev.topic', { topic: c.topic });
      case 'room.archive': return t(c.archived ? 'room.ev.archive' : 'room.ev.unarchive');
      case 'member.role': return t('room.ev.role', { user: c.user, role: c.role });
      case 'hotline.seat': return c.user ? t('room.ev.seat', { seat: c.seat, server: ev.server_name || c.server || '', user: c.name || c.user, duty: c.on_duty ? t('room.ev.on_duty') : '' })
        : t('room.ev.seat_vacant', { seat: c.seat, server: ev.server_name || '' });
      case 'room.server': return t(c.admitted === false ? 'room.ev.server_out' : 'room.ev.server_in', { server: c.server });
      case 'notice.post': return t('room.ev.notice') + ': ' + (c.title || '');
      default: return ev.event;
    }
  }

  function footFor(ev, li) {
    const foot = li.querySelector('.msg-foot');
    clear(foot);
    if (ev.deleted) return;
    if (ev.edited) foot.append(h('span', { class: 'edited' }, t('room.edited')));
    if (ev.sender === me && (ev.event === 'msg' || ev.event === 'e2ee.photo') && ev.read_count > 0) {
      foot.append(h('button', { type: 'button', class: 'read-count', tabindex: '-1', onclick: () => readersDialog(ev) },
        t('room.read', { n: ev.read_count })));
    }
  }

  function bodyFor(ev, li) {
    const body = li.querySelector('.msg-body');
    li.classList.toggle('deleted', !!ev.deleted);
    if (ev.deleted) {
      body.textContent = ev.deleted_by_admin ? t('room.deleted_admin', { by: ev.deleted_by || '' }) : t('room.deleted');
    } else if (ev.event === 'e2ee.photo') {
      body.textContent = t('room.photo');
      photos().then((m) => m.photoBody(roomId, ev, body)); // issue 21: decrypted in the browser
    } else {
      body.textContent = ev.content?.body ?? '';
    }
  }

  function draw(ev) {
    if (ev.event === 'msg' || ev.event === 'e2ee.photo') {
      const mine = ev.sender === me;
      const li = h('li', { class: ['msg', mine ? 'mine' : null, ev.late ? 'late' : null], dataset: { pos: ev.pos }, tabindex: '-1' },
        h('div', { class: 'msg-meta' },
          h('span', { class: 'msg-sender' }, mine ? '' : senderLabel(ev)),
          h('time', { class: 'msg-time', datetime: new Date(ev.ts).toISOString(), title: formatTime(ev.ts, { full: true }) }, formatTime(ev.ts)),
          ev.late ? h('span', { class: 'tag' }, t('room.late', { at: formatTime(ev.received_at) })) : null,
          h('button', { type: 'button', class: 'msg-menu', tabindex: '-1', 'aria-label': t('room.actions'), 'aria-haspopup': 'dialog', onclick: () => actions(ev) }, '…')),
        h('div', { class: 'msg-body' }),
        h('div', { class: 'msg-foot' }));
      bodyFor(ev, li);
      footFor(ev, li);
      return li;
    }
    return h('li', { class: 'sys', dataset: { pos: ev.pos } }, h('span', null, systemText(ev)), ' ',
      h('time', { class: 'msg-time' }, formatTime(ev.ts)));
  }

  function shown(ev) { return ev.pos && !HIDDEN.has(ev.event); }

  function add(ev, where) {
    if (ev.event === 'e2ee.keys') photos().then((m) => m.noteEvent(roomId, ev)); // issue 21: keys for photos
    if (!shown(ev) || items.has(ev.pos)) return null;
    const li = draw(ev);
    items.set(ev.pos, { ev, el: li });
    if (where === 'top') list.insertBefore(li, list.firstChild);
    else {
      // keep position order even if something arrives out of order; unsent ones stay last
      let after = list.lastElementChild;
      while (after && (!after.dataset.pos || +after.dataset.pos > ev.pos)) after = after.previousElementSibling;
      if (!after) list.insertBefore(li, list.firstChild);
      else after.after(li);
      for (const p of [...list.querySelectorAll('li.pending')]) list.appendChild(p);
    }
    return li;
  }

  function removeLi(li) {
    if (li.dataset.pos) items.delete(+li.dataset.pos);
    li.remove();
  }

  // Keep at most CAP messages: trim the end away from where the reader is going.
  function trim(fromTop) {
    let n = items.size;
    if (n <= CAP) return;
    if (fromTop) {
      const before = timeline.scrollHeight;
      while (n-- > CAP) { const li = list.querySelector('li[data-pos]'); if (!li) break; removeLi(li); }
      timeline.scrollTop -= before - timeline.scrollHeight;
      hasOlder = true;
    } else {
      while (n-- > CAP) {
        const all = list.querySelectorAll('li[data-pos]');
        if (!all.length) break;
        removeLi(all[all.length - 1]);
      }
      atLatest = false;
    }
    updateButtons();
  }

  function updateButtons() {
    olderBtn.hidden = !hasOlder;
    startNote.hidden = hasOlder;
    newerBtn.hidden = atLatest;
  }

  // ---- loading ----
  async function history(args) {
    return api.call('history', { room: roomId, limit: PAGE, ...args });
  }

  async function loadLatest() {
    loading = true;
    try {
      const r = await history({});
      // Cleared only now: until the server answers, an offline snapshot may be showing.
      clear(list);
      items.clear();
      snapshotShown = false;
      for (const ev of r.events) add(ev);
      hasOlder = !!r.more;
      atLatest = true;
    } finally { loading = false; }
    drawPendings();
    updateButtons();
    flushBuffered();
    toBottom();
    markRead();
    saveSnapshot();
  }

  // Opening a room with unread messages: from a few read ones, a ここから未読 line, then the
  // unread ones (as many pages as it takes to reach the newest, by scrolling down).
  async function loadUnread(readPos) {
    loading = true;
    try {
      const a = await history({ before: readPos + 1, limit: 5 });
      const b = await history({ after: readPos });
      clear(list);
      items.clear();
      snapshotShown = false;
      for (const ev of a.events) add(ev);
      hasOlder = !!a.more;
      for (const ev of b.events) add(ev);
      atLatest = !b.more;
    } finally { loading = false; }
    if (atLatest) drawPendings();
    updateButtons();
    flushBuffered();
    const first = [...list.querySelectorAll('li.msg[data-pos]:not(.mine)')].find((li) => +li.dataset.pos > readPos);
    if (first) {
      list.insertBefore(h('li', { class: 'unread-mark', id: 'unread-mark' }, t('room.unread_here')), first);
      timeline.scrollTop = first.offsetTop - timeline.offsetTop - 48;
    } else toBottom();
    markRead();
    saveSnapshot();
  }

  // ---- offline (issue 21, item 5): the newest events as this browser last saw them ----
  let snapshotShown = false, snapTimer = 0;
  // At once after a load; a second after the last of a burst of live events.
  function saveSnapshot(later) {
    clearTimeout(snapTimer);
    const save = () => {
      if (!alive || !atLatest || snapshotShown) return;
      keep('room/' + roomId, [...items.values()].map((x) => x.ev).sort((a, b) => a.pos - b.pos).slice(-SNAPSHOT_EVENTS));
    };
    if (later) snapTimer = setTimeout(save, 1000);
    else save();
  }
  async function showSnapshot() {
    const snap = await recall('room/' + roomId);
    if (!snap || !alive || items.size) return;
    for (const ev of snap.value) add(ev);
    list.prepend(h('li', { class: 'snapshot-note', role: 'status', id: 'room-snapshot' }, t('room.as_of', { at: formatTime(snap.at) })));
    snapshotShown = true;
    toBottom();
  }

  async function loadAround(pos) {
    loading = true;
    clear(list);
    items.clear();
    try {
      const a = await history({ before: pos + 1, limit: 25 });
      for (const ev of a.events) add(ev);
      hasOlder = !!a.more;
      const b = await history({ after: pos, limit: 25 });
      for (const ev of b.events) add(ev);
      atLatest = !b.more;
    } finally { loading = false; }
    if (atLatest) drawPendings();
    updateButtons();
    flushBuffered();
    const target = items.get(pos)?.el;
    if (target) {
      target.classList.add('highlight');
      target.setAttribute('tabindex', '-1');
      target.scrollIntoView({ block: 'center' });
      target.focus({ preventScroll: true });
    }
  }

  async function loadOlder() {
    if (loading || !hasOlder) return;
    loading = true;
    try {
      const r = await history({ before: firstPos() || undefined });
      if (!alive) return;
      const before = timeline.scrollHeight;
      const top = timeline.scrollTop;
      for (let i = r.events.length - 1; i >= 0; i--) add(r.events[i], 'top');
      timeline.scrollTop = top + (timeline.scrollHeight - before);
      hasOlder = !!r.more;
      trim(false);
    } catch (e) { toast(e.message, 'error'); } finally { loading = false; }
    updateButtons();
    requestAnimationFrame(edges); // a scroll made while this page loaded
  }

  async function loadNewer() {
    if (loading || atLatest) return;
    loading = true;
    try {
      const r = await history({ after: lastPos() });
      if (!alive) return;
      for (const ev of r.events) add(ev);
      if (!r.more) { atLatest = true; drawPendings(); }
      trim(true);
    } catch (e) { toast(e.message, 'error'); } finally { loading = false; }
    updateButtons();
    flushBuffered();
    markRead();
    requestAnimationFrame(edges);
  }

  async function jumpLatest() {
    jump.hidden = true;
    if (!atLatest) await loadLatest();
    toBottom();
    markRead();
    input.focus();
  }

  // ---- read markers ----
  function newestInView() {
    const bottom = timeline.getBoundingClientRect().bottom + 1;
    for (let li = list.lastElementChild; li; li = li.previousElementSibling) {
      if (!li.dataset.pos) continue;
      if (li.getBoundingClientRect().bottom <= bottom) return +li.dataset.pos;
    }
    return 0;
  }

  let readTimer = 0;
  function markRead() {
    clearTimeout(readTimer);
    readTimer = setTimeout(async () => {
      // What has been on the screen is read: up to the newest message wholly in view (so never
      // past one that was not shown).
      if (!alive || document.visibilityState !== 'visible') return;
      const newest = newestInView();
      const all = atLatest && newest === lastPos(); // everything up to the newest is read
      if (!newest || newest <= readSent) { if (all) markedRead(roomId); return; }
      readSent = newest;
      try {
        await api.call('read', { room: roomId, pos: newest });
        if (all) markedRead(roomId);
      } catch { readSent = 0; }
    }, 250);
  }

  // ---- live ----
  function onEvent(ev) {
    if (ev.room !== roomId) return;
    if (loading && ev.pos) { buffered.push(ev); return; }
    apply(ev);
  }

  function flushBuffered() {
    const b = buffered;
    buffered = [];
    for (const ev of b) apply(ev);
  }

  function apply(ev) {
    if (ev.event === 'read') { applyRead(ev); return; }
    if (ev.event === 'e2ee.keys') photos().then((m) => m.noteEvent(roomId, ev)); // issue 21: a key that came live
    if (ev.event === 'e2ee.key_request') import('../photo_send.js').then((m) => m.answerKeyRequests(roomId)).catch(() => {}); // as the CLI's tail
    if (ev.event === 'msg.edit' || ev.event === 'msg.delete') {
      const it = items.get(ev.target_pos);
      if (it) {
        if (ev.event === 'msg.edit') { it.ev.content = { ...it.ev.content, body: ev.content?.body }; it.ev.edited = true; }
        else { it.ev.deleted = true; it.ev.deleted_by = ev.sender; it.ev.deleted_by_admin = !!ev.content?.by_admin; }
        bodyFor(it.ev, it.el);
        footFor(it.ev, it.el);
      }
      return;
    }
    if (ev.event === 'member' && ev.content?.user === me && ev.content.membership !== 'join') {
      toast(t('room.you_left'));
      refreshRooms();
      go('#/rooms');
      return;
    }
    if (ev.event === 'room.update' || ev.event === 'room.archive' || ev.event === 'member') setTimeout(loadInfo, 100);
    if (ev.event === 'member' && ev.content?.membership === 'join' && !names.has(ev.content.user)) loadNames();
    if (!shown(ev)) return;
    if (!atLatest) {
      if (ev.sender !== me) jump.hidden = false;
      return;
    }
    const stick = nearBottom() || ev.sender === me;
    // my own message whose reply already placed it
    const li = add(ev);
    if (!li) return;
    saveSnapshot(true);
    if (ev.sender === me) {
      // the push of something I sent: the pending copy is replaced when its reply comes
      for (const [cid, p] of pendings) if (+p.dataset.sentPos === ev.pos) { p.remove(); pendings.delete(cid); }
    }
    trim(true);
    if (stick) toBottom();
    else if (ev.sender !== me) jump.hidden = false;
    if ((ev.event === 'msg' || ev.event === 'e2ee.photo') && ev.sender !== me) {
      live.textContent = t('room.new_msg', { name: senderLabel(ev), body: ev.event === 'msg' ? ev.content?.body : t('room.photo') });
    }
    markRead();
  }

  function applyRead(ev) {
    for (const [pos, n] of ev.counts || []) {
      const it = items.get(pos);
      if (it && it.ev.read_count !== n) { it.ev.read_count = n; footFor(it.ev, it.el); }
    }
    for (const [pos, groups] of ev.counts_by_server || []) {
      const it = items.get(pos);
      if (it) it.ev.read_by_server = groups.map(([server, read, members]) => ({ server, read, members }));
    }
  }

  // ---- sending ----
  function pendingLi(o) {
    const li = h('li', { class: ['msg', 'mine', 'pending'], dataset: { clientId: o.client_id } },
      h('div', { class: 'msg-meta' }, h('span', { class: 'msg-state' }, api.state === 'online' ? t('room.sending') : t('room.queued'))),
      h('div', { class: 'msg-body' }, o.body));
    pendings.set(o.client_id, li);
    o.done.then((r) => {
      if (!alive) return;
      li.dataset.sentPos = r.pos;
      if (items.has(r.pos)) { li.remove(); pendings.delete(o.client_id); return; }
      // the reply came before the push: show it as sent now
      const ev = { event: 'msg', room: roomId, pos: r.pos, event_id: r.event_id, ts: r.ts, sender: me,
        sender_name: session.user()?.name, read_count: 0, content: { body: o.body } };
      li.remove();
      pendings.delete(o.client_id);
      if (atLatest) { add(ev); if (nearBottom()) toBottom(); }
    }, (e) => {
      if (!alive) return;
      li.classList.add('failed');
      li.querySelector('.msg-state').textContent = t('room.failed', { message: e.message });
    });
    return li;
  }

  function drawPendings() {
    for (const o of api.outbox) if (o.room === roomId) list.appendChild(pendings.get(o.client_id) || pendingLi(o));
  }

  function updatePendingStates() {
    for (const li of pendings.values()) {
      const s = li.querySelector('.msg-state');
      if (s && !li.classList.contains('failed')) s.textContent = api.state === 'online' ? t('room.sending') : t('room.queued');
    }
  }
  offs.push(api.on('state', updatePendingStates));
  offs.push(api.on('outbox', () => { if (atLatest && !loading) drawPendings(); }));

  function send() {
    const body = input.value;
    if (!body.trim()) return;
    input.value = '';
    api.send(roomId, body, urgent.checked ? { urgent: true } : {}); // its 'outbox' event draws it as pending
    urgent.checked = false;
    if (atLatest) { drawPendings(); toBottom(); } else jumpLatest();
    input.focus();
  }

  // Japanese input: the Enter that confirms a conversion must not send. Chromium and Firefox
  // mark that keydown with isComposing (and keyCode 229); Safari sends compositionend first and
  // then a keydown with keyCode 229. A plain Enter after compositionend sends.
  let composing = false;
  input.addEventListener('compositionstart', () => { composing = true; });
  input.addEventListener('compositionend', () => { composing = false; });
  input.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter') return;
    if (e.isComposing || e.keyCode === 229 || composing) return;
    if (e.shiftKey || e.altKey) return;
    if (coarse() && !(e.ctrlKey || e.metaKey)) return; // phones: Enter is a new line, the button sends
    e.preventDefault();
    send();
  });
  composer.addEventListener('submit', (e) => { e.preventDefault(); send(); });

  // ---- dialogs ----
  async function actions(ev) {
    const mine = ev.sender === me;
    const admin = info?.role === 'admin';
    const buttons = [{ label: t('common.close'), value: null }];
    if (!ev.deleted && (ev.event === 'msg' || ev.event === 'e2ee.photo')) buttons.push({ label: t('room.readers'), value: 'readers' });
    if (mine && !ev.deleted && ev.event === 'msg') buttons.push({ label: t('room.edit'), value: 'edit' });
    if ((mine || admin) && !ev.deleted) buttons.push({ label: t('room.delete'), value: 'delete', kind: 'danger' });
    const preview = h('p', { class: 'quote' }, ev.event === 'msg' ? (ev.content?.body || '') : t('room.photo'));
    const v = await dialog(senderLabel(ev) + '　' + formatTime(ev.ts), preview, buttons);
    if (v === 'readers') readersDialog(ev);
    else if (v === 'edit') {
      const body = await promptDialog(t('room.edit.title'), t('room.edit.label'), ev.content?.body || '', { multiline: true, ok: t('common.save') });
      if (body == null || body === ev.content?.body) return;
      try { await api.call('msg.edit', { room: roomId, pos: ev.pos, body }); } catch (e) { toast(e.message, 'error'); }
    } else if (v === 'delete') {
      if (!await confirmDialog(t('room.delete.confirm'), { danger: true, ok: t('room.delete') })) return;
      try { await api.call('msg.delete', { room: roomId, pos: ev.pos }); } catch (e) { toast(e.message, 'error'); }
    }
  }

  function personLine(p) {
    const seats = seatOf.get(p.login) || [];
    return h('li', null, h('span', null, p.name || p.login), ' ', h('span', { class: 'muted' }, p.login),
      seats.map((s) => h('span', { class: 'tag seat' }, s)),
      p.at ? h('time', { class: 'muted' }, ' ' + formatTime(p.at)) : null);
  }

  async function readersDialog(ev) {
    let r;
    try { r = await api.call('readers', { room: roomId, pos: ev.pos }); } catch (e) { toast(e.message, 'error'); return; }
    const body = [];
    if (r.by_server) {
      const names = new Map((servers?.servers || []).map((s) => [s.server, s.name]));
      for (const g of r.by_server) {
        const self = g.server === session.serverId();
        const name = self ? `${t('room.this_server')}（${g.server}）` : g.name || names.get(g.server) || g.server;
        const mine = (arr) => arr.filter((p) => (p.server || '') === g.server);
        body.push(h('section', { class: 'readers-group', dataset: { server: g.server } },
          h('h3', null, t('room.readers.server', { name, read: g.read, members: g.members })),
          h('h4', null, t('room.readers.read')), list2(mine(r.read)),
          h('h4', null, t('room.readers.unread')), list2(mine(r.unread))));
      }
    } else {
      body.push(h('h3', null, t('room.readers.read')), list2(r.read), h('h3', null, t('room.readers.unread')), list2(r.unread));
    }
    function list2(arr) {
      return arr.length ? h('ul', { class: 'people' }, arr.map(personLine)) : h('p', { class: 'muted' }, t('room.readers.none'));
    }
    await dialog(t('room.readers.title', { read: r.read.length, unread: r.unread.length }), h('div', { id: 'readers' }, body),
      [{ label: t('common.close'), value: null, kind: 'primary', submit: true }], { wide: true });
  }

  async function membersDialog() {
    let r;
    try { r = await api.call('room.members', { room: roomId }); } catch (e) { toast(e.message, 'error'); return; }
    const admin = info?.role === 'admin';
    const ul = h('ul', { class: 'people', id: 'members' }, r.members.map((m) => h('li', null,
      h('span', null, m.name || m.login), ' ', h('span', { class: 'muted' }, m.login),
      m.role === 'admin' ? h('span', { class: 'tag' }, t('members.admin')) : null,
      (seatOf.get(m.login) || []).map((s) => h('span', { class: 'tag seat' }, s)),
      admin && m.login !== me && info?.kind !== 'direct' ? h('button', { type: 'button', class: 'btn-danger btn-small',
        'aria-label': `${t('members.remove')}: ${m.name || m.login}`, onclick: async () => {
          if (!await confirmDialog(t('members.remove_confirm', { name: m.name || m.login }), { danger: true, ok: t('members.remove') })) return;
          try { await api.call('room.remove', { room: roomId, user: m.login }); membersDialog(); } catch (e) { toast(e.message, 'error'); }
        } }, t('members.remove')) : null)));
    const invite = h('input', { id: 'invite-login', autocapitalize: 'none', spellcheck: 'false' });
    const parts = [ul];
    // A group room's photos pushed to me (room.watch): headquarters watching a field team's room.
    if (info?.kind === 'group') {
      const watch = h('input', { type: 'checkbox', id: 'watch-room', checked: info.watched || null,
        'aria-describedby': 'watch-room-hint' });
      watch.addEventListener('change', async () => {
        try {
          const w = await api.call('room.watch', { room: roomId, watch: watch.checked });
          info.watched = w.watched;
          watch.checked = w.watched;
        } catch (e) { watch.checked = !watch.checked; toast(e.message, 'error'); }
      });
      parts.push(h('div', { class: 'members-watch' },
        h('label', { class: 'check', for: 'watch-room' }, watch, ' ', t('ns.watch')),
        h('p', { class: 'muted small', id: 'watch-room-hint' }, t('ns.watch_hint'))));
    }
    if (servers?.authority) {
      parts.push(h('h3', null, t('members.servers')), h('ul', { class: 'people' }, (servers.servers || []).map((s) =>
        h('li', null, s.name || s.server, ' ', h('span', { class: 'muted' }, s.server), s.role_label ? h('span', { class: 'tag' }, s.role_label) : null))));
    }
    if (admin && info?.kind !== 'direct') {
      parts.push(h('div', { class: 'field inline' }, h('label', { for: 'invite-login' }, t('members.invite')), invite,
        h('button', { type: 'button', id: 'invite-btn', onclick: async () => {
          const u = invite.value.trim();
          if (!u) return;
          try { await api.call('room.invite', { room: roomId, user: u }); toast(t('members.invited', { user: u })); membersDialog(); } catch (e) { toast(e.message, 'error'); }
        } }, t('members.invite_btn'))));
    }
    const buttons = [{ label: t('common.close'), value: null }];
    if (admin && info?.kind !== 'direct') buttons.push({ label: t('members.rename'), value: 'rename' });
    buttons.push({ label: t('members.record'), value: 'record' }); // 記録 (issue 22): js/record.js
    buttons.push({ label: t('members.leave'), value: 'leave', kind: 'danger' });
    document.querySelectorAll('dialog.dialog').forEach((d) => { d.close(); d.remove(); });
    const v = await dialog(t('members.title') + `（${r.members.length}）`, parts, buttons, { wide: true });
    if (v === 'leave') {
      if (!await confirmDialog(t('members.leave_confirm'), { danger: true, ok: t('members.leave') })) return;
      try { await api.call('room.leave', { room: roomId }); await refreshRooms(); go('#/rooms'); } catch (e) { toast(e.message, 'error'); }
    } else if (v === 'record') {
      import('../record.js').then((m) => m.recordDialog(roomId, info?.name || roomName(rooms.byId(roomId))));
    } else if (v === 'rename') {
      const name = await promptDialog(t('members.rename'), t('rooms.create.name'), info?.name || '');
      if (name && name.trim()) try { await api.call('room.update', { room: roomId, name: name.trim() }); } catch (e) { toast(e.message, 'error'); }
    }
  }

  // ---- room info ----
  async function loadInfo() {
    if (!alive) return;
    await refreshRooms();
    info = rooms.byId(roomId) || info;
    if (info) {
      title.textContent = roomName(info);
      topic.textContent = info.topic || '';
      topic.hidden = !info.topic;
      membersBtn.textContent = t('room.members', { n: info.members });
      archivedNote.hidden = !info.archived;
      composer.hidden = !!info.archived;
    }
    try {
      servers = await api.call('room.servers', { room: roomId });
      seatOf.clear();
      for (const s of servers.seats || []) {
        if (!s.holder) continue;
        if (!seatOf.has(s.holder)) seatOf.set(s.holder, []);
        seatOf.get(s.holder).push(s.seat + (s.on_duty ? t('room.on_duty') : ''));
      }
      serversLine.textContent = servers.authority ? (servers.servers || []).filter((s) => s.admitted !== false)
        .map((s) => (s.self ? t('room.this_server') : s.name || s.server) + (s.role_label ? `（${s.role_label}）` : '')).join('・') : '';
      serversLine.hidden = !servers.authority;
      urgentBox.hidden = !servers.hotline;
    } catch { /* a member-only answer; never fatal */ }
  }

  // ---- wiring ----
  offs.push(api.on('*', onEvent));
  offs.push(api.on('resumed', () => { if (atLatest) markRead(); }));
  // At the top, the older page comes in; at the bottom of an old stretch, the newer one.
  function edges() {
    if (!alive) return;
    if (timeline.scrollTop < 200 && hasOlder && !loading) loadOlder();
    else if (!atLatest && timeline.scrollHeight - timeline.scrollTop - timeline.clientHeight < 200 && !loading) loadNewer();
    if (nearBottom() && atLatest) jump.hidden = true;
    markRead();
  }
  timeline.addEventListener('scroll', edges, { passive: true });
  // The keyboard in the timeline: one tab stop, arrows between messages, Enter for a message's
  // actions, Escape back to the composer (so 300 messages are not 300 tab stops).
  timeline.addEventListener('keydown', (e) => {
    const cur = e.target.closest?.('li.msg[data-pos]');
    const msgs = () => [...list.querySelectorAll('li.msg[data-pos]')];
    if (e.key === 'ArrowUp' || e.key === 'ArrowDown') {
      const all = msgs();
      if (!all.length) return;
      let i = cur ? all.indexOf(cur) + (e.key === 'ArrowUp' ? -1 : 1) : all.length - 1;
      if (i < 0) { loadOlder(); i = 0; }
      if (i >= all.length) { if (!atLatest) loadNewer(); i = all.length - 1; }
      e.preventDefault();
      all[i].focus();
      all[i].scrollIntoView({ block: 'nearest' });
    } else if ((e.key === 'Enter' || e.key === ' ') && cur && e.target === cur) {
      e.preventDefault();
      const it = items.get(+cur.dataset.pos);
      if (it) actions(it.ev).then(() => { if (cur.isConnected) cur.focus(); });
    } else if (e.key === 'Escape') {
      e.preventDefault();
      input.focus();
    }
  });
  const onVis = () => { if (document.visibilityState === 'visible') markRead(); };
  document.addEventListener('visibilitychange', onVis);

  async function loadNames() {
    try {
      const r = await api.call('room.members', { room: roomId });
      for (const m of r.members) { names.set(m.login, m.name || m.login); rememberName(m.login, m.name); }
      rooms.changed();
    } catch { /* names are a nicety */ }
  }

  if (api.state !== 'online' && !params.pos) await showSnapshot();
  try {
    await loadNames();
    if (params.pos) await loadAround(+params.pos);
    else if (info && info.unread > 0 && info.unread <= UNREAD_START_MAX) await loadUnread(info.read_pos || 0);
    else await loadLatest();
  } catch (e) {
    if (snapshotShown && (e.code === 'offline' || e.code === 'timeout')) {
      // Offline: the snapshot stays, and the room loads for real when the connection is back.
      const off = api.on('resumed', () => { off(); if (alive) loadLatest().catch(() => {}); });
      offs.push(off);
    } else {
      clear(mainCol);
      mainCol.append(h('p', { class: 'form-error', role: 'alert', id: 'room-error' }, e.code === 'not_found' ? t('room.not_found') : e.message),
        h('a', { href: '#/rooms', class: 'btn' }, t('room.back')));
      return () => { alive = false; offs.forEach((f) => f()); rooms.open = null; };
    }
  }
  loadInfo();
  if (!coarse() && !params.pos) input.focus();

  return () => {
    alive = false;
    rooms.open = null;
    clearTimeout(readTimer);
    offs.forEach((f) => f());
    document.removeEventListener('visibilitychange', onVis);
  };
});
