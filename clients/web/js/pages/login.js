// pages/login.js: the login page (with the "shared PC" choice), the forced change of a one-time
// password, and the page a session ends on, with its reason.

import { api } from '../api.js';
import { h, focusMain } from '../dom.js';
import { t, addStrings } from '../i18n.js';
import { route, go } from '../router.js';
import * as session from '../session.js';

addStrings({
  ja: {
    'login.title': 'ログイン', 'login.login': 'ログインID', 'login.password': 'パスワード',
    'login.shared': '共用PC（このブラウザに何も残しません。ログアウトや放置で自動的に終了します）',
    'login.submit': 'ログイン', 'login.busy': 'ログインしています…',
    'login.failed': 'ログインできません: {message}',
    'login.wrong': 'ログインできません: ログインIDかパスワードが違います。', 'login.expired': 'ログインできません: アカウントの有効期限が切れています。管理者に延長を依頼してください。',
    'login.disabled': 'ログインできません: アカウントが無効になっています。管理者に依頼してください。',
    'passwd.wrong_old': '現在のパスワードが違います。', 'passwd.weak': 'このパスワードは使えません（{n} 文字以上で、ログインIDと違うもの）: {message}',
    'login.rate': 'ログインの失敗が続いたため、{s} 秒後まで試せません。',
    'login.intro': '災害対応の連絡用です。管理者から受け取ったログインIDとパスワードを入力してください。',
    'passwd.title': 'パスワードの変更', 'passwd.intro': '最初のログインです。受け取った一時パスワードを、自分だけが知るパスワードに変えてください（{n} 文字以上、ログインIDとは別のもの）。',
    'passwd.old': '現在のパスワード（一時パスワード）', 'passwd.new': '新しいパスワード', 'passwd.again': '新しいパスワード（確認）',
    'passwd.submit': '変更する', 'passwd.mismatch': '新しいパスワードが一致しません。', 'passwd.done': 'パスワードを変更しました。',
    'passwd.failed': '変更できません: {message}',
    'ended.title': 'ログアウトしました', 'ended.again': 'もう一度ログイン',
    'ended.logged out': 'この端末は別の画面からログアウトされました。もう一度ログインしてください。',
    'ended.account disabled': '管理者があなたのアカウントを無効にしました。管理者に有効化を依頼してください。',
    'ended.account expired': 'アカウントの有効期限（派遣職員の終了日）を過ぎました。延長は管理者に依頼してください。',
    'ended.password reset': '管理者があなたのパスワードをリセットしました。受け取った一時パスワードでログインしてください。',
    'ended.password changed': '別の端末でパスワードが変更されたため、この端末はログアウトされました。もう一度ログインしてください。',
    'ended.session revoked': 'この端末は、あなたの別の端末からログアウトされました。もう一度ログインしてください。',
    'ended.session revoked by an admin': '管理者がこの端末をログアウトさせました。もう一度ログインしてください。',
    'ended.device revoked': 'この端末の鍵が取り消されたため、ログアウトしました。もう一度ログインしてください。',
    'ended.idle session on a shared device ended': '共用PCを一定時間操作しなかったため、ログアウトしました。もう一度ログインしてください。',
    'ended.other': 'ログインの有効期限が切れました（{reason}）。もう一度ログインしてください。',
  },
  en: {
    'login.title': 'Log in', 'login.login': 'Login ID', 'login.password': 'Password',
    'login.shared': 'Shared PC (keep nothing in this browser; ends on logout or when left idle)',
    'login.submit': 'Log in', 'login.busy': 'Logging in…', 'login.failed': 'Cannot log in: {message}',
    'login.rate': 'Too many failed logins: try again in {s} s.',
    'login.intro': 'For disaster coordination. Enter the login ID and password your administrator gave you.',
    'passwd.title': 'Change your password', 'passwd.intro': 'First login: replace the one-time password with one only you know (at least {n} characters, not your login ID).',
    'passwd.old': 'Current (one-time) password', 'passwd.new': 'New password', 'passwd.again': 'New password again',
    'passwd.submit': 'Change', 'passwd.mismatch': 'The new passwords differ.', 'passwd.done': 'Your password was changed.',
    'passwd.failed': 'Cannot change it: {message}',
    'ended.title': 'Signed out', 'ended.again': 'Log in again',
    'ended.logged out': 'This session was logged out from another window: log in again.',
    'ended.account disabled': 'An administrator disabled your account: ask an administrator to enable it.',
    'ended.account expired': 'Your account has expired (the end date of a dispatched account): ask an administrator to extend it.',
    'ended.password reset': 'An administrator reset your password: log in with the one-time password they give you.',
    'ended.password changed': 'Your password was changed on another device, which signs out the others: log in again.',
    'ended.session revoked': 'This device was signed out from another of your devices: log in again.',
    'ended.session revoked by an admin': 'An administrator signed this device out: log in again.',
    'ended.device revoked': "This device's keys were revoked, which signed it out: log in again.",
    'ended.idle session on a shared device ended': 'This shared device was signed out after being left idle: log in again.',
    'ended.other': 'Your session ended ({reason}): log in again.',
  },
});

let typedPassword = null; // kept in memory only, for the forced change right after login

function field(id, label, attrs) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), h('input', { id, name: id, ...attrs }));
}

route('#/', () => {});

route('#/login', (el, params) => {
  const err = h('p', { class: 'form-error', role: 'alert', id: 'login-error' });
  const btn = h('button', { type: 'submit', class: 'btn-primary', id: 'login-submit' }, t('login.submit'));
  const form = h('form', { class: 'card login', 'aria-labelledby': 'login-title', novalidate: true },
    h('h1', { id: 'login-title' }, t('login.title')),
    h('p', { class: 'muted' }, t('login.intro')),
    field('login-id', t('login.login'), { autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' }),
    field('login-password', t('login.password'), { type: 'password', autocomplete: 'current-password', required: true }),
    h('div', { class: 'check' }, h('input', { type: 'checkbox', id: 'login-shared' }),
      h('label', { for: 'login-shared' }, t('login.shared'))),
    err, btn);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const login = form.querySelector('#login-id').value.trim();
    const password = form.querySelector('#login-password').value;
    if (!login || !password) { err.textContent = t('login.failed', { message: t('login.login') + '/' + t('login.password') }); return; }
    err.textContent = '';
    btn.disabled = true;
    btn.textContent = t('login.busy');
    try {
      const r = await api.login(login, password, { shared: form.querySelector('#login-shared').checked });
      if (r.user.must_change_password) { typedPassword = password; go('#/passwd'); return; }
      const next = params.next && params.next.startsWith('#/') && !params.next.startsWith('#/login') ? params.next : '#/rooms';
      go(next);
    } catch (ex) {
      err.textContent = ex.code === 'rate_limited' && ex.retry_after_s ? t('login.rate', { s: ex.retry_after_s })
        : ex.code === 'unauthorized' && /expired/.test(ex.message) ? t('login.expired')
          : ex.code === 'unauthorized' && /disabled/.test(ex.message) ? t('login.disabled')
            : ex.code === 'unauthorized' ? t('login.wrong') : t('login.failed', { message: ex.message });
      btn.disabled = false;
      btn.textContent = t('login.submit');
      form.querySelector('#login-password').focus();
    }
  });
  el.append(h('div', { class: 'center' }, form));
  form.querySelector('#login-id').focus();
}, { public: true });

route('#/passwd', (el) => {
  const forced = !!session.user()?.must_change_password;
  const err = h('p', { class: 'form-error', role: 'alert', id: 'passwd-error' });
  const form = h('form', { class: 'card login', 'aria-labelledby': 'passwd-title', novalidate: true },
    h('h1', { id: 'passwd-title' }, t('passwd.title')),
    forced ? h('p', null, t('passwd.intro', { n: 10 })) : null,
    typedPassword ? null : field('passwd-old', t('passwd.old'), { type: 'password', autocomplete: 'current-password', required: true }),
    field('passwd-new', t('passwd.new'), { type: 'password', autocomplete: 'new-password', required: true, minlength: 10 }),
    field('passwd-again', t('passwd.again'), { type: 'password', autocomplete: 'new-password', required: true }),
    err, h('button', { type: 'submit', class: 'btn-primary', id: 'passwd-submit' }, t('passwd.submit')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const nw = form.querySelector('#passwd-new').value;
    if (nw !== form.querySelector('#passwd-again').value) { err.textContent = t('passwd.mismatch'); return; }
    const old = typedPassword ?? form.querySelector('#passwd-old').value;
    try {
      await api.call('passwd', { old_password: old, new_password: nw });
      typedPassword = null;
      await api.refreshUser();
      go('#/rooms');
    } catch (ex) {
      err.textContent = ex.code === 'forbidden' ? t('passwd.wrong_old')
        : ex.code === 'bad_request' ? t('passwd.weak', { n: 10, message: ex.message }) : t('passwd.failed', { message: ex.message });
    }
  });
  el.append(h('div', { class: 'center' }, form));
  return () => { if (!session.user()?.must_change_password) typedPassword = null; };
});

route('#/ended', (el) => {
  const reason = session.endReason();
  if (!reason) { location.replace('#/login'); return; }
  const key = 'ended.' + reason;
  const text = t(key) === key ? t('ended.other', { reason }) : t(key);
  el.append(h('div', { class: 'center' }, h('section', { class: 'card login', 'aria-labelledby': 'ended-title' },
    h('h1', { id: 'ended-title' }, t('ended.title')),
    h('p', { id: 'ended-reason', role: 'alert' }, text),
    h('a', { class: 'btn btn-primary', href: '#/login' }, t('ended.again')))));
  focusMain(el);
}, { public: true });
