// admin_import.js - importing staff from a CSV file (user.import): the file is read as bytes
// and sent as csv_base64 for a dry run first, which lists every problem with its line number
// and the text of that line; only a file without problems can be applied; after applying, the
// new users' one-time passwords are shown once and offered as a CSV (the server's, BOM first).
import { api } from '../api.js';
import { route } from '../router.js';
import { t, addStrings } from '../i18n.js';
import { h, toast } from '../dom.js';
import { adminTabs, pageHeader, statusLine, errorText, table, field, downloadCsv, stamp, fileBase64 } from './admin_common.js';

addStrings({
  ja: {
    'ai.title': 'CSVで一括登録',
    'ai.back': 'ユーザー一覧へ',
    'ai.intro': '1行目は見出し行 login,name,department,role,groups（順不同。email,phone も可）。groups は ; で区切ります。Excel の「CSV UTF-8（コンマ区切り）」でも「CSV（コンマ区切り）」（Shift_JIS）でも読めます。',
    'ai.file': 'CSVファイル',
    'ai.check': '内容を確認（まだ登録しません）',
    'ai.apply': 'この内容で登録する',
    'ai.checking': '確認しています…',
    'ai.applying': '登録しています…',
    'ai.preview': '確認結果',
    'ai.encoding': '文字コード: {enc}',
    'ai.added': '追加 {n} 人',
    'ai.updated': '変更 {n} 人',
    'ai.unchanged': '変更なし {n} 人',
    'ai.problems': '問題 {n} 件',
    'ai.problems_title': '問題のある行（すべて直してから登録してください）',
    'ai.no_problems': '問題はありません。「この内容で登録する」で登録できます。',
    'ai.c.line': '行',
    'ai.c.problem': '問題',
    'ai.c.text': 'その行の内容',
    'ai.done': '登録しました: 追加 {added} 人、変更 {updated} 人、変更なし {unchanged} 人',
    'ai.passwords': '新しいユーザーの一時パスワード',
    'ai.passwords_note': '一時パスワードはこの画面でしか表示されません。CSVを保存して本人に配ってください（最初のログインで変更が必要です）。',
    'ai.passwords_csv': '一時パスワードのCSVを保存',
    'ai.c.login': 'ログインID',
    'ai.c.password': '一時パスワード',
    'ai.choose': 'ファイルを選んでください',
  },
  en: {
    'ai.title': 'Import users from CSV',
    'ai.back': 'All users',
    'ai.intro': 'First line: login,name,department,role,groups (any order; email,phone allowed). Groups separated by ;. Excel\'s "CSV UTF-8" and plain "CSV" (Shift_JIS) both work.',
    'ai.file': 'CSV file',
    'ai.check': 'Check (nothing is changed yet)',
    'ai.apply': 'Import these users',
    'ai.checking': 'Checking…',
    'ai.applying': 'Importing…',
    'ai.preview': 'Check result',
    'ai.encoding': 'Encoding: {enc}',
    'ai.added': '{n} to add',
    'ai.updated': '{n} to update',
    'ai.unchanged': '{n} unchanged',
    'ai.problems': '{n} problem(s)',
    'ai.problems_title': 'Lines with problems (fix them all before importing)',
    'ai.no_problems': 'No problems: "Import these users" applies the file.',
    'ai.c.line': 'Line',
    'ai.c.problem': 'Problem',
    'ai.c.text': 'The line',
    'ai.done': 'Imported: {added} added, {updated} updated, {unchanged} unchanged',
    'ai.passwords': "New users' one-time passwords",
    'ai.passwords_note': 'Shown only now. Save the CSV and hand them out (each must be changed at first login).',
    'ai.passwords_csv': 'Save the one-time passwords (CSV)',
    'ai.c.login': 'Login',
    'ai.c.password': 'One-time password',
    'ai.choose': 'Choose a file',
  },
});

// The server's problems in Japanese (ops_import.c's words; one it has not been taught here is
// shown as the server wrote it). The server's text stays beside it, for a search or a report.
const PROBLEMS_JA = [
  [/^'(.*)' is not a valid login id$/, (m) => `「${m[1]}」はログインIDに使えません（英小文字・数字・. _ - のみ、先頭は英数字）`],
  [/^unknown role '(.*)' \(admin, hq or staff\)$/, (m) => `権限「${m[1]}」は使えません（admin、hq、staff のいずれか）`],
  [/^login '(.*)' already appears on line (\d+)$/, (m) => `ログインID「${m[1]}」は ${m[2]} 行目と重複しています`],
  [/^the name is empty$/, () => '氏名が空です'],
  [/^the department is blank$/, () => '部署が空白です'],
  [/^too few columns$/, () => '列が足りません'],
  [/^a quoted field is never closed$/, () => '「"」で始まる値が閉じていません'],
  [/^unknown column '(.*)'$/, (m) => `見出しに不明な列「${m[1]}」があります`],
  [/^the header has no '(.*)' column$/, (m) => `見出しに「${m[1]}」列がありません`],
  [/^'(.*)' is not an email address$/, (m) => `「${m[1]}」はメールアドレスではありません`],
  [/^'(.*)' is not a phone number$/, (m) => `「${m[1]}」は電話番号ではありません`],
  [/^a name, department or group is longer than (\d+) bytes$/, (m) => `氏名・部署・グループが長すぎます（${m[1]} バイトまで）`],
  [/^the line is neither UTF-8 nor Shift_JIS/, () => 'この行は UTF-8 でも Shift_JIS でもありません。Excel で「CSV UTF-8（コンマ区切り）」として保存してください'],
  [/^the file is UTF-16/, () => 'ファイルが UTF-16（Excel の「Unicode テキスト」）です。「CSV UTF-8（コンマ区切り）」として保存してください'],
  [/^more than (\d+) users in one file$/, (m) => `1つのファイルは ${m[1]} 人までです`],
];

function problemCell(text) {
  for (const [re, ja] of PROBLEMS_JA) {
    const m = re.exec(text);
    if (m) return [h('span', { class: 'ai-ja' }, ja(m)), ' ', h('small', { class: 'muted ai-en', lang: 'en' }, `(${text})`)];
  }
  return text;
}

// The lines of the file as text, for showing the line a problem names (best effort: the
// server's reading is what counts).
async function fileLines(file, encoding) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let text;
  try {
    text = new TextDecoder(encoding === 'cp932' ? 'shift_jis' : encoding === 'utf-16' ? 'utf-16le' : 'utf-8').decode(bytes);
  } catch {
    text = new TextDecoder('utf-8').decode(bytes);
  }
  return text.replace(/^\ufeff/, '').split(/\r?\n/);
}

function page(container) {
  const status = statusLine();
  const input = h('input', { type: 'file', id: 'ai-file', accept: '.csv,text/csv' });
  const checkBtn = h('button', { type: 'submit', class: 'btn btn-primary', id: 'ai-check' }, t('ai.check'));
  const applyBtn = h('button', { type: 'button', class: 'btn btn-primary', id: 'ai-apply', hidden: true }, t('ai.apply'));
  const preview = h('section', { class: 'ai-preview', id: 'ai-preview', 'aria-live': 'polite' });
  const done = h('section', { class: 'ai-done', id: 'ai-done' });
  let checked = null; // {file, b64} of the file whose dry run found no problem

  const form = h('form', { class: 'adm-form ai-form', novalidate: true },
    field(t('ai.file'), input), h('div', { class: 'adm-buttons' }, checkBtn, applyBtn), status.el);

  container.replaceChildren(h('div', { class: 'adm-page ai-page' },
    adminTabs('import'),
    h('p', { class: 'adm-back' }, h('a', { href: '#/admin/users' }, '← ' + t('ai.back'))),
    pageHeader(t('ai.title')), h('p', { class: 'muted' }, t('ai.intro')), form, preview, done));

  input.addEventListener('change', () => {
    checked = null;
    applyBtn.hidden = true;
    preview.replaceChildren();
    done.replaceChildren();
  });

  function summary(r) {
    return h('ul', { class: 'ai-summary' },
      h('li', { class: 'ai-n-added' }, t('ai.added', { n: r.added })),
      h('li', { class: 'ai-n-updated' }, t('ai.updated', { n: r.updated })),
      h('li', { class: 'ai-n-unchanged' }, t('ai.unchanged', { n: r.unchanged })),
      h('li', { class: r.problems?.length ? 'ai-n-problems ai-bad' : 'ai-n-problems' }, t('ai.problems', { n: r.problems?.length || 0 })),
      h('li', { class: 'muted' }, t('ai.encoding', { enc: r.encoding })));
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const file = input.files[0];
    if (!file) { status.set(t('ai.choose'), 'error'); input.focus(); return; }
    checkBtn.disabled = true;
    applyBtn.hidden = true;
    done.replaceChildren();
    status.set(t('ai.checking'));
    try {
      const b64 = await fileBase64(file);
      const r = await api.call('user.import', { csv_base64: b64, dry_run: true }, { timeout: 120000 });
      const problems = r.problems || [];
      const lines = problems.length ? await fileLines(file, r.encoding) : [];
      preview.replaceChildren(h('h2', { tabindex: '-1' }, t('ai.preview')), summary(r),
        problems.length
          ? h('div', {}, h('h3', {}, t('ai.problems_title')), table([
            { label: t('ai.c.line'), cell: (p) => String(p.line), class: 'num', header: true },
            { label: t('ai.c.problem'), cell: (p) => problemCell(p.problem) },
            { label: t('ai.c.text'), cell: (p) => h('code', { class: 'ai-line' }, lines[p.line - 1] ?? '') },
          ], problems, { caption: t('ai.problems_title'), rowClass: () => 'ai-problem' }))
          : h('p', { class: 'ai-ok' }, t('ai.no_problems')));
      preview.querySelector('table')?.setAttribute('id', 'ai-problems');
      status.set('');
      if (!problems.length) {
        checked = { file, b64 };
        applyBtn.hidden = false;
        applyBtn.focus();
      } else {
        preview.querySelector('h2').focus();
      }
    } catch (e) {
      status.set(errorText(e), 'error');
    } finally {
      checkBtn.disabled = false;
    }
  });

  applyBtn.addEventListener('click', async () => {
    if (!checked || checked.file !== input.files[0]) return;
    applyBtn.disabled = true;
    checkBtn.disabled = true;
    status.set(t('ai.applying'));
    try {
      const r = await api.call('user.import', { csv_base64: checked.b64 }, { timeout: 300000 });
      checked = null;
      applyBtn.hidden = true;
      status.set(t('ai.done', r), 'ok');
      toast(t('ai.done', r));
      const pw = r.passwords || [];
      const name = `一時パスワード_${stamp()}.csv`;
      done.replaceChildren(h('h2', { tabindex: '-1' }, t('ai.done', r)),
        pw.length ? h('div', { class: 'ai-passwords' },
          h('h3', {}, t('ai.passwords')),
          h('p', { class: 'muted' }, t('ai.passwords_note')),
          h('p', {}, h('button', { type: 'button', class: 'btn btn-primary', id: 'ai-passwords-csv',
            onclick: () => downloadCsv(r.passwords_csv, name) }, t('ai.passwords_csv'))),
          table([
            { label: t('ai.c.login'), cell: (p) => p.login, header: true },
            { label: t('ai.c.password'), cell: (p) => h('code', {}, p.password) },
          ], pw, { caption: t('ai.passwords') })) : '');
      done.querySelector('h2').focus();
    } catch (e) {
      status.set(errorText(e), 'error');
    } finally {
      applyBtn.disabled = false;
      checkBtn.disabled = false;
    }
  });
}

route('#/admin/import', page);
