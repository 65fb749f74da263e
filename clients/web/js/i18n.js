// i18n.js: every string a page shows, by key, in Japanese (the default) and English.
// Pages add their own with addStrings({ja: {...}, en: {...}}); t(key, vars) fills {name}
// placeholders from vars. A key with no string shows the key itself, so a missing string is
// visible rather than blank. The choice of language is the only thing kept for everyone
// (localStorage 'kizuna.lang'); it is not personal data.

const strings = { ja: {}, en: {} };
const listeners = new Set();
let lang = (() => {
  try { return localStorage.getItem('kizuna.lang') === 'en' ? 'en' : 'ja'; } catch { return 'ja'; }
})();

export function addStrings(table) {
  for (const l of Object.keys(table)) Object.assign(strings[l] || (strings[l] = {}), table[l]);
}

export function t(key, vars) {
  let s = strings[lang][key];
  if (s == null) s = strings.ja[key];
  if (s == null) return key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] != null ? String(vars[k]) : m));
  return s;
}

export function getLang() { return lang; }

export function setLang(l) {
  lang = l === 'en' ? 'en' : 'ja';
  try { localStorage.setItem('kizuna.lang', lang); } catch { /* ignore */ }
  document.documentElement.lang = lang;
  for (const fn of listeners) fn(lang);
}

export function onLang(fn) { listeners.add(fn); return () => listeners.delete(fn); }

document.documentElement.lang = lang;
