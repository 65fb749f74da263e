// strings.js: the shell's and the common strings (pages add their own with addStrings).
import { addStrings } from './i18n.js';

addStrings({
  ja: {
    'app.name': 'Kizuna 絆',
    'common.ok': 'OK', 'common.cancel': 'キャンセル', 'common.close': '閉じる', 'common.confirm': '確認',
    'common.save': '保存', 'common.error': 'エラー: {message}', 'common.not_found': 'ページが見つかりません',
    'common.loading': '読み込み中…', 'common.retry': '再試行',
    'shell.nav': 'メインメニュー', 'shell.menu': 'メニュー', 'shell.logout': 'ログアウト',
    'shell.lang': 'English', 'shell.lang_label': '表示言語を英語にする',
    'shell.user': '{name}（{login}）', 'shell.shared': '共用PC',
    'state.connecting': 'サーバーに接続しています…',
    'state.offline': 'オフラインです。接続が戻りしだい再接続します。送信したメッセージは接続後に送られます。',
    'state.online': 'オンライン', 'state.outbox': '未送信 {n} 件',
    'nav.rooms': 'トーク', 'nav.search': '検索', 'nav.sessions': 'ログイン中の端末',
  },
  en: {
    'app.name': 'Kizuna',
    'common.ok': 'OK', 'common.cancel': 'Cancel', 'common.close': 'Close', 'common.confirm': 'Confirm',
    'common.save': 'Save', 'common.error': 'Error: {message}', 'common.not_found': 'Page not found',
    'common.loading': 'Loading…', 'common.retry': 'Retry',
    'shell.nav': 'Main menu', 'shell.menu': 'Menu', 'shell.logout': 'Log out',
    'shell.lang': '日本語', 'shell.lang_label': 'Show in Japanese',
    'shell.user': '{name} ({login})', 'shell.shared': 'Shared PC',
    'state.connecting': 'Connecting to the server…',
    'state.offline': 'Offline. Reconnecting as soon as the network is back; messages you send go out then.',
    'state.online': 'Online', 'state.outbox': '{n} unsent',
    'nav.rooms': 'Talk', 'nav.search': 'Search', 'nav.sessions': 'My sessions',
  },
});
