// notify_settings.js: the person's own choices of what reaches them outside the app
// (docs/notifications.md "Your choices"): per kind of notification, push and e-mail as the
// server offers them (notify.prefs), with the kinds it says are needed kept on one channel at
// least; message previews; quiet hours (push.quiet). Reached from the notices page, next to
// 「通知を受け取る」. What the server answers is what is drawn, so a reload shows what is stored.
import { api } from '../api.js';
import { route } from '../router.js';
import { t } from '../i18n.js';
import { h } from '../dom.js';
import { pageHeader, statusLine, errorText } from './admin_common.js';

const HHMM = /^([01]\d|2[0-3]):[0-5]\d$/;

function kindLabel(kind) {
  const key = 'ns.kind.' + kind;
  const s = t(key);
  return s === key ? kind : s;
}

async function settings(container) {
  const status = statusLine();
  const head = pageHeader(t('ns.title'), h('a', { class: 'btn btn-quiet', href: '#/notices' }, t('ns.back')));
  const body = h('div', { class: 'ns-body' });
  container.replaceChildren(h('div', { class: 'adm-page ns-page' }, head,
    h('p', { class: 'ns-intro' }, t('ns.intro')), status.el, body));
  status.set(t('common.loading'));
  let prefs, quiet;
  try {
    [prefs, quiet] = await Promise.all([api.call('notify.prefs'), api.call('push.quiet')]);
  } catch (e) {
    status.set(errorText(e), 'error');
    return;
  }
  status.set('');
  draw();

  function draw() {
    const offered = prefs.offered || { push: [], email: [] };
    const kinds = [...new Set([...offered.push, ...offered.email])];
    const needed = new Set(prefs.needed || []);
    const on = { push: new Set(prefs.push), email: new Set(prefs.email) };
    const box = (channel, kind) => {
      if (!offered[channel].includes(kind)) return h('span', { class: 'ns-none', 'aria-hidden': 'true' }, '—');
      return h('input', { type: 'checkbox', class: 'ns-check', id: `ns-${channel}-${kind}`,
        dataset: { channel, kind }, checked: on[channel].has(kind) || null,
        'aria-label': `${kindLabel(kind)}: ${t('ns.' + channel)}` });
    };
    const rows = kinds.map((kind) => h('tr', { dataset: { kind } },
      h('th', { scope: 'row' }, kindLabel(kind),
        needed.has(kind) ? h('span', { class: 'tag ns-needed' }, t('ns.needed')) : null),
      h('td', { class: 'ns-cell' }, box('push', kind)),
      h('td', { class: 'ns-cell' }, box('email', kind))));
    const grid = h('table', { class: 'ns-table', id: 'ns-kinds' },
      h('caption', { class: 'sr-only' }, t('ns.title')),
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, t('ns.kind')),
        h('th', { scope: 'col', class: 'ns-cell' }, t('ns.push')),
        h('th', { scope: 'col', class: 'ns-cell' }, t('ns.email')))),
      h('tbody', null, ...rows));

    const previews = h('input', { type: 'checkbox', id: 'ns-previews', checked: prefs.previews || null,
      'aria-describedby': 'ns-previews-hint' });
    const q = quiet.quiet;
    const quietOn = h('input', { type: 'checkbox', id: 'ns-quiet-on', checked: q ? true : null });
    const from = h('input', { type: 'time', id: 'ns-quiet-from', value: q ? q.from : '22:00', step: '60' });
    const to = h('input', { type: 'time', id: 'ns-quiet-to', value: q ? q.to : '06:00', step: '60' });
    const times = h('div', { class: 'ns-times', hidden: q ? null : true },
      h('label', { for: 'ns-quiet-from' }, t('ns.quiet_from')), from, h('span', { 'aria-hidden': 'true' }, '〜'),
      h('label', { for: 'ns-quiet-to' }, t('ns.quiet_to')), to);
    quietOn.addEventListener('change', () => { times.hidden = !quietOn.checked; });
    const save = h('button', { type: 'submit', class: 'btn btn-primary', id: 'ns-save' }, t('ns.save'));

    const form = h('form', { class: 'ns-form', id: 'ns-form' },
      grid,
      h('p', { class: 'adm-hint ns-hint' }, t('ns.needed_hint')),
      h('section', { class: 'ns-section' },
        h('label', { class: 'adm-check ns-line' }, previews, ' ', t('ns.previews')),
        h('p', { class: 'adm-hint ns-hint', id: 'ns-previews-hint' }, t('ns.previews_hint'))),
      h('section', { class: 'ns-section', 'aria-labelledby': 'ns-quiet-h' },
        h('h2', { class: 'ns-h', id: 'ns-quiet-h' }, t('ns.quiet')),
        h('label', { class: 'adm-check ns-line' }, quietOn, ' ', t('ns.quiet_on')),
        times,
        h('p', { class: 'adm-hint ns-hint' }, t('ns.quiet_hint'))),
      h('div', { class: 'adm-buttons ns-buttons' }, save));

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const chosen = { push: [], email: [] };
      for (const c of form.querySelectorAll('input.ns-check')) if (c.checked) chosen[c.dataset.channel].push(c.dataset.kind);
      // The server refuses it too; said here first, next to the choice, in the person's words.
      const lost = [...needed].find((k) => !chosen.push.includes(k) && !chosen.email.includes(k));
      if (lost) {
        status.set(t('ns.needed_error', { kind: kindLabel(lost) }), 'error');
        form.querySelector(`input[data-kind="${lost}"]`)?.focus();
        return;
      }
      if (quietOn.checked && (!HHMM.test(from.value) || !HHMM.test(to.value) || from.value === to.value)) {
        status.set(t('ns.quiet_same'), 'error');
        from.focus();
        return;
      }
      save.disabled = true;
      try {
        prefs = await api.call('notify.prefs', { push: chosen.push, email: chosen.email, previews: previews.checked });
        quiet = await api.call('push.quiet', quietOn.checked ? { from: from.value, to: to.value } : { off: true });
        status.set(t('ns.saved'), 'ok');
        draw();
      } catch (err) {
        status.set(errorText(err), 'error');
      } finally {
        save.disabled = false;
      }
    });
    body.replaceChildren(form);
  }
}

route('#/notify', settings);
