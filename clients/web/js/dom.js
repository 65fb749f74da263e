// dom.js: building the page safely and the small things every page uses. h() puts text in
// with textContent and never parses HTML, so a message can never become markup; there is no
// innerHTML anywhere in the client. Styles come only from app.css (the CSP forbids inline ones).

import { t } from './i18n.js';

// h('button', {class: 'x', onclick: fn, 'aria-label': '…', disabled: true}, 'text', child, [more])
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'value' || k === 'checked' || k === 'selected') el[k] = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'style') throw new Error('inline styles are not allowed (CSP)');
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

// ---- time, in the server's time zone (login's time_zone / time_zone_posix) ----
let zone = 'Asia/Tokyo';
let posixOffsetMin = null; // fallback when the browser does not know the zone name
const fmtCache = new Map();

export function setTimeZone(name, posix) {
  zone = name || 'Asia/Tokyo';
  fmtCache.clear();
  posixOffsetMin = null;
  try { new Intl.DateTimeFormat('ja-JP', { timeZone: zone }); } catch {
    // "JST-9": east of UTC is negative in POSIX. Daylight-saving rules are not applied here.
    const m = /^[A-Za-z<>+\-0-9]*?([+-]?\d{1,2})(?::(\d\d))?/.exec(posix || '');
    posixOffsetMin = m ? -(parseInt(m[1], 10) * 60 + Math.sign(parseInt(m[1], 10) || 1) * (parseInt(m[2] || '0', 10))) : 540;
    zone = 'UTC';
  }
}

function fmt(opts) {
  const key = JSON.stringify(opts);
  let f = fmtCache.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('ja-JP', { timeZone: zone, hourCycle: 'h23', ...opts });
    fmtCache.set(key, f);
  }
  return f;
}

// formatTime(ms) -> "14:05" today, "11/29 14:05" this year, "2025/11/29 14:05" before;
// {full: true} always gives the date and seconds.
export function formatTime(ms, opts = {}) {
  if (!ms) return '';
  const d = new Date(posixOffsetMin != null ? ms + posixOffsetMin * 60000 : ms);
  const now = new Date(posixOffsetMin != null ? Date.now() + posixOffsetMin * 60000 : Date.now());
  if (opts.full) {
    return fmt({ year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }).format(d);
  }
  const day = fmt({ year: 'numeric', month: '2-digit', day: '2-digit' });
  const hm = fmt({ hour: '2-digit', minute: '2-digit' }).format(d);
  if (day.format(d) === day.format(now)) return hm;
  const y = fmt({ year: 'numeric' });
  if (y.format(d) === y.format(now)) return fmt({ month: 'numeric', day: 'numeric' }).format(d) + ' ' + hm;
  return day.format(d) + ' ' + hm;
}

// ---- toasts, banners, dialogs ----
export function toast(text, kind = 'info', ms = 4000) {
  const box = document.getElementById('toasts');
  if (!box) return;
  const el = h('div', { class: ['toast', 'toast-' + kind] }, text);
  box.appendChild(el);
  setTimeout(() => el.remove(), ms);
  return el; // a caller may update or remove it sooner
}

// A banner stays until closed or replaced (same id): connection state, urgent notices.
// banner(id, text, {kind: 'warn'|'alert'|'info', action: {label, onclick}, closable}); banner(id, null) removes it.
export function banner(id, text, opts = {}) {
  const box = document.getElementById('banners');
  if (!box) return null;
  const old = box.querySelector(`[data-banner="${CSS.escape(id)}"]`);
  if (!text) { old?.remove(); return null; }
  const el = h('div', { class: ['banner', 'banner-' + (opts.kind || 'info')], dataset: { banner: id },
    role: opts.kind === 'alert' ? 'alert' : 'status' },
  h('span', { class: 'banner-text' }, text),
  opts.action ? h('button', { type: 'button', onclick: opts.action.onclick }, opts.action.label) : null,
  opts.closable ? h('button', { type: 'button', class: 'banner-close', 'aria-label': t('common.close'),
    onclick: () => el.remove() }, '×') : null);
  if (old) old.replaceWith(el); else box.appendChild(el);
  return el;
}

// A modal dialog; resolves with what the buttons give. body: nodes. buttons: [{label, value, kind}].
// The first field (or the default button) gets the focus; Escape cancels (resolves null); focus
// returns to what had it.
export function dialog(title, body, buttons, opts = {}) {
  return new Promise((resolve) => {
    const before = document.activeElement;
    const id = 'dlg-' + Math.random().toString(36).slice(2);
    const form = h('form', { method: 'dialog', class: 'dialog-form' },
      h('h2', { id, class: 'dialog-title' }, title),
      h('div', { class: 'dialog-body' }, body),
      h('div', { class: 'dialog-buttons' }, buttons.map((b) =>
        h('button', { type: b.submit ? 'submit' : 'button', class: b.kind ? 'btn-' + b.kind : null,
          value: String(b.value), onclick: b.submit ? null : () => done(b.value) }, b.label))));
    const dlg = h('dialog', { class: ['dialog', opts.wide ? 'dialog-wide' : null], 'aria-labelledby': id }, form);
    let finished = false;
    function done(v) {
      if (finished) return;
      finished = true;
      dlg.close();
      dlg.remove();
      if (before && before.focus) before.focus();
      resolve(v);
    }
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const b = buttons.find((x) => x.submit);
      if (opts.validate && !opts.validate(form)) return;
      done(b ? b.value : true);
    });
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); done(null); });
    document.body.appendChild(dlg);
    dlg.showModal();
    const first = form.querySelector('input, textarea, select') || form.querySelector('.btn-primary');
    if (first) first.focus();
  });
}

export async function confirmDialog(message, opts = {}) {
  const v = await dialog(opts.title || t('common.confirm'), h('p', null, message), [
    { label: opts.cancel || t('common.cancel'), value: false },
    { label: opts.ok || t('common.ok'), value: true, kind: opts.danger ? 'danger' : 'primary', submit: true },
  ]);
  return v === true;
}

// One-line input: resolves with the text, or null when cancelled.
export async function promptDialog(title, label, value = '', opts = {}) {
  const input = h(opts.multiline ? 'textarea' : 'input', { id: 'prompt-input', value, required: true,
    rows: opts.multiline ? 4 : null });
  if (opts.multiline) input.value = value;
  const v = await dialog(title, [h('label', { for: 'prompt-input' }, label), input], [
    { label: t('common.cancel'), value: false },
    { label: opts.ok || t('common.ok'), value: true, kind: 'primary', submit: true },
  ]);
  return v === true ? input.value : null;
}

// Put the keyboard focus on a page's heading after a route change (screen readers announce it).
export function focusMain(container) {
  const a = document.activeElement;
  if (a && a !== container && container.contains(a)) return; // the page chose its own focus
  const target = container.querySelector('h1, h2') || container;
  if (!target.hasAttribute('tabindex')) target.setAttribute('tabindex', '-1');
  target.focus({ preventScroll: true });
}
