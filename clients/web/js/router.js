// router.js: hash routes ('#/rooms', '#/room/:id') and the navigation bar's entries.
// route(pattern, render, {public}) registers a page: render(container, params) draws it into an
// emptied container and may return a cleanup function (or a Promise of one), called before the
// next page is drawn. params holds the pattern's :names and the hash's ?query fields. Pages are
// for logged-in users unless {public: true} (login, the ended-session page, joining by invite).
// navItem({route, label, roles, order}) adds a navigation entry (label is an i18n key) shown to
// users whose role is in roles (undefined: everyone). go(hash) navigates.

import { t } from './i18n.js';

const routes = [];
const navs = [];
let container = null;
let cleanup = null;
let guard = () => true;
let onChange = () => {};
let afterRender = () => {};
let seq = 0;

function compile(pattern) {
  const names = [];
  const re = pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:(\w+)/g, (m, n) => {
    names.push(n);
    return '([^/?]+)';
  });
  return { re: new RegExp('^' + re + '$'), names };
}

export function route(pattern, render, opts = {}) {
  routes.push({ pattern, render, public: !!opts.public, ...compile(pattern) });
}

export function navItem(item) {
  navs.push({ order: 100, ...item });
  navs.sort((a, b) => a.order - b.order);
  onChange();
}

export function navItems(role) {
  return navs.filter((n) => !n.roles || n.roles.includes(role));
}

export function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

export function current() {
  return location.hash || '#/';
}

// guard(routeEntry, params) -> true to draw, or a hash to go to instead (e.g. '#/login').
export function startRouter(el, opts = {}) {
  container = el;
  if (opts.guard) guard = opts.guard;
  if (opts.onChange) onChange = opts.onChange;
  if (opts.afterRender) afterRender = opts.afterRender;
  window.addEventListener('hashchange', render);
  render();
}

function match(hash) {
  const [path, query] = hash.split('?');
  for (const r of routes) {
    const m = r.re.exec(path);
    if (!m) continue;
    const params = Object.fromEntries(new URLSearchParams(query || ''));
    r.names.forEach((n, i) => { params[n] = decodeURIComponent(m[i + 1]); });
    return { r, params };
  }
  return null;
}

export async function render() {
  if (!container) return;
  const my = ++seq;
  const hash = current();
  const found = match(hash) || match('#/');
  const g = found ? guard(found.r, found.params) : true;
  if (g !== true) {
    if (g !== hash) { location.replace(g); return; }
  }
  if (cleanup) {
    try { cleanup(); } catch (e) { console.error(e); }
    cleanup = null;
  }
  while (container.firstChild) container.removeChild(container.firstChild);
  onChange(hash);
  if (!found) {
    container.textContent = t('common.not_found');
    return;
  }
  try {
    const c = await found.r.render(container, found.params);
    if (my !== seq) { if (typeof c === 'function') c(); return; }
    cleanup = typeof c === 'function' ? c : null;
    afterRender(hash);
  } catch (e) {
    console.error(e);
    if (my === seq) container.textContent = t('common.error', { message: e.message });
  }
}

// Drop the current page (its cleanup runs, its DOM goes): a session that ended leaves no text.
export function unmount() {
  if (cleanup) { try { cleanup(); } catch { /* ignore */ } cleanup = null; }
  if (container) while (container.firstChild) container.removeChild(container.firstChild);
}
