#!/bin/bash
# check-install.sh - installs the kizuna .deb on the system it runs on and checks what an
# administrator relies on: the user, the paths and their modes, the config, the first admin,
# the units (systemd-analyze verify), the installed server serving the installed web client
# and CLI, the backup script keeping N verified copies, an upgrade keeping the config and the
# data, remove keeping them, purge removing them; a config written before the install choosing
# the server id. Meant for a throwaway root only: run by tests/package/test_package.sh (an
# overlay of this machine) and deploy/test-deb-install.sh (a fresh Debian 12 root), as root,
# inside that root.
#   check-install.sh DEB
# KZ_INSTALL: the install command (default "dpkg -i"; "apt-get install -y" brings dependencies).
set -euo pipefail
deb=$1
install_cmd=${KZ_INSTALL:-dpkg -i}
step() { echo "check-install: $*"; }
fail() {
    echo "check-install: FAIL: $*" >&2
    exit 1
}
mode_of() { stat -c '%a %U:%G' "$1"; }
expect_mode() { # expect_mode PATH "MODE OWNER:GROUP"
    local got
    got=$(mode_of "$1") || fail "$1 is missing"
    [ "$got" = "$2" ] || fail "$1 is $got, expected $2"
}

getent passwd kizuna >/dev/null && fail "a user kizuna exists before the install: not a throwaway root"
[ -e /var/lib/kizuna ] && fail "/var/lib/kizuna exists before the install: not a throwaway root"

step "install: $install_cmd $deb"
log=$(mktemp)
# shellcheck disable=SC2086 # the install command is words
DEBIAN_FRONTEND=noninteractive $install_cmd "$deb" >"$log" 2>&1 || {
    cat "$log" >&2
    fail "the install failed"
}
cat "$log"

step "the user, the paths, the config"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd kizuna) || fail "no user kizuna"
[ "$uid" -lt 1000 ] || fail "kizuna is uid $uid, not a system user"
[ "$home" = /var/lib/kizuna ] || fail "kizuna's home is $home"
[ "$shell" = /usr/sbin/nologin ] || fail "kizuna's shell is $shell"
expect_mode /var/lib/kizuna "750 kizuna:kizuna"
expect_mode /var/lib/kizuna/data "700 kizuna:kizuna"
expect_mode /var/lib/kizuna/data/server.key "600 kizuna:kizuna"
[ -f /var/lib/kizuna/data/kizuna.db ] || fail "no database in /var/lib/kizuna/data"
expect_mode /var/backups/kizuna "750 kizuna:kizuna"
expect_mode /etc/kizuna/kizunad.json "640 root:kizuna"
grep -q '"web_root": "/usr/share/kizuna/web"' /etc/kizuna/kizunad.json ||
    fail "the config does not point web_root at the installed web client"
grep -q '//' /etc/kizuna/kizunad.json && fail "comments were left in /etc/kizuna/kizunad.json"
[ -f /usr/share/kizuna/web/index.html ] || fail "the web client is not installed"
[ -f /etc/default/kizuna ] || fail "no /etc/default/kizuna"
pwfile=/var/lib/kizuna/initial-admin-password
expect_mode "$pwfile" "600 root:root"
password=$(sed -n 's/^one-time password: //p' "$pwfile")
[ -n "$password" ] || fail "$pwfile holds no one-time password"
grep -qF "$password" "$log" && fail "the one-time password was printed during the install"
grep -q "one-time password is in $pwfile" "$log" || fail "the install did not say where the password is"
# The config as kizunad reads it: fingerprint loads it and the data directory.
runuser -u kizuna -- kizunad fingerprint --data /var/lib/kizuna/data \
    --config /etc/kizuna/kizunad.json >/dev/null || fail "kizunad refuses the installed config"

step "systemd-analyze verify"
units=(/lib/systemd/system/kizunad.service /lib/systemd/system/kizuna-backup.service
       /lib/systemd/system/kizuna-backup.timer)
out=$(systemd-analyze verify "${units[@]}" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify says: $out"
# The hardening stays: systemd's exposure score (0 safest, 10 none) of each service at most 2.0
# (kizunad.service 1.5, kizuna-backup.service 0.8 when this was written).
for u in kizunad.service kizuna-backup.service; do
    out=$(systemd-analyze security --offline=true --threshold=20 "/lib/systemd/system/$u" 2>&1) ||
        fail "$u is exposed above 2.0: $(tail -n 1 <<<"$out")"
    step "$(tail -n 1 <<<"$out")"
done
# the timer is enabled (a symlink made by deb-systemd-helper, also without a running systemd)
[ -L /etc/systemd/system/timers.target.wants/kizuna-backup.timer ] ||
    fail "kizuna-backup.timer is not enabled"
[ -L /etc/systemd/system/multi-user.target.wants/kizunad.service ] ||
    fail "kizunad.service is not enabled"

step "the installed server serves the web client and the CLI logs in"
tmp=$(mktemp -d)
chmod 0755 "$tmp"
mkfifo "$tmp/out"
# setpriv execs kizunad itself (runuser would stay its parent), so $server is kizunad's pid;
# it dies with this script however the script ends.
setpriv --reuid=kizuna --regid=kizuna --init-groups --pdeathsig TERM -- \
    kizunad serve --data /var/lib/kizuna/data --config /etc/kizuna/kizunad.json --listen 127.0.0.1:0 >"$tmp/out" 2>"$tmp/err" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$tmp"' EXIT
# Held open to the end: a closed pipe would kill kizunad at its next line on stdout.
exec 4<"$tmp/out"
line=""
read -r -t 20 -u 4 line || true
port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' <<<"$line")
[ -n "$port" ] || fail "kizunad did not say where it listens within 20 s: '$line' $(cat "$tmp/err")"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
page=$(timeout 10 cat <&3) || true
exec 3<&-
grep -q '^HTTP/1.1 200' <<<"$page" || fail "GET / answered: $(head -n 1 <<<"$page")"
grep -qi '<html' <<<"$page" || fail "GET / did not serve the web client's index.html"
export KIZUNA_CONFIG_DIR=$tmp/cli KIZUNA_SERVER=http://127.0.0.1:$port
new_password="pkg-test-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
KIZUNA_PASSWORD=$password kizuna login admin >/dev/null || fail "kizuna login admin failed"
KIZUNA_PASSWORD=$password KIZUNA_NEW_PASSWORD=$new_password kizuna passwd >/dev/null ||
    fail "kizuna passwd failed"
KIZUNA_PASSWORD=$new_password kizuna login admin >/dev/null || fail "login with the new password failed"
kizuna admin user list | grep -q admin || fail "kizuna admin user list does not list admin"
grep -qF "$new_password" "$tmp/err" && fail "the new password is in kizunad's log"
kill "$server"
wait "$server" || fail "kizunad did not stop cleanly on SIGTERM: $(tail -n 3 "$tmp/err")"

step "backups: three runs keeping 2, each verified"
set -a
# shellcheck disable=SC1091
. /etc/default/kizuna
set +a
[ "$KIZUNA_BACKUP_DIR" = /var/backups/kizuna ] || fail "KIZUNA_BACKUP_DIR is $KIZUNA_BACKUP_DIR"
for i in 1 2 3; do
    # The backups' names have a second's resolution.
    [ "$i" -gt 1 ] && sleep 1.1
    KIZUNA_BACKUP_KEEP=2 runuser -u kizuna --preserve-environment -- \
        /usr/libexec/kizuna/kizuna-backup || fail "backup run $i failed"
done
mapfile -t kept < <(find /var/backups/kizuna -mindepth 1 -maxdepth 1 -type d | sort)
[ ${#kept[@]} -eq 2 ] || fail "after 3 runs keeping 2: ${kept[*]}"
for b in "${kept[@]}"; do
    [[ $(basename "$b") =~ ^kizuna-[0-9]{8}T[0-9]{6}Z$ ]] || fail "unexpected backup name $b"
    kizunad verify-backup "$b" >/dev/null || fail "$b does not verify"
done
grep -q " ok: ${kept[1]} verified (" /var/backups/kizuna/last-backup ||
    fail "last-backup says: $(cat /var/backups/kizuna/last-backup)"
if KIZUNA_BACKUP_KEEP=0 runuser -u kizuna --preserve-environment -- \
    /usr/libexec/kizuna/kizuna-backup 2>/dev/null; then
    fail "a backup with KIZUNA_BACKUP_KEEP=0 succeeded"
fi
grep -q "failed: KIZUNA_BACKUP_KEEP='0'" /var/backups/kizuna/last-backup ||
    fail "a failed run is not in last-backup: $(cat /var/backups/kizuna/last-backup)"
[ "$(find /var/backups/kizuna -mindepth 1 -maxdepth 1 -type d | wc -l)" -eq 2 ] ||
    fail "a failed run changed the backups"

step "upgrade (the same package again): config, data and password file kept"
sed -i 's/"log_level": "info"/"log_level": "debug"/' /etc/kizuna/kizunad.json
conf_sum=$(sha256sum </etc/kizuna/kizunad.json)
pw_sum=$(sha256sum <"$pwfile")
key_sum=$(sha256sum </var/lib/kizuna/data/server.key)
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $install_cmd "$deb" >"$log" 2>&1 || {
    cat "$log" >&2
    fail "the reinstall failed"
}
[ "$(sha256sum </etc/kizuna/kizunad.json)" = "$conf_sum" ] || fail "the upgrade changed the config"
[ "$(sha256sum <"$pwfile")" = "$pw_sum" ] || fail "the upgrade touched $pwfile"
[ "$(sha256sum </var/lib/kizuna/data/server.key)" = "$key_sum" ] || fail "the upgrade changed the key"
grep -q "one-time password" "$log" && fail "the upgrade made another first admin"

step "remove keeps the data and the config"
dpkg -r kizuna >/dev/null
[ -f /var/lib/kizuna/data/kizuna.db ] || fail "remove deleted the database"
[ -f /etc/kizuna/kizunad.json ] || fail "remove deleted the config"
[ -e /usr/bin/kizunad ] && fail "remove left /usr/bin/kizunad"

step "purge removes the data and the config, keeps the backups"
dpkg -P kizuna >/dev/null
[ -e /var/lib/kizuna ] && fail "purge left /var/lib/kizuna"
[ -e /etc/kizuna ] && fail "purge left /etc/kizuna"
[ -e /etc/default/kizuna ] && fail "purge left /etc/default/kizuna"
[ -L /etc/systemd/system/timers.target.wants/kizuna-backup.timer ] && fail "purge left the timer enabled"
[ "$(find /var/backups/kizuna -mindepth 1 -maxdepth 1 -type d | wc -l)" -eq 2 ] ||
    fail "purge removed the backups"
step "a config written before the install chooses the server id, and is kept"
install -d -m 0755 /etc/kizuna
printf '{\n  "server_id": "jp-99-kizuna-test",\n  "web_root": "/usr/share/kizuna/web"\n}\n' \
    >/etc/kizuna/kizunad.json
chmod 0644 /etc/kizuna/kizunad.json
conf_sum=$(sha256sum </etc/kizuna/kizunad.json)
dpkg -i "$deb" >"$log" 2>&1 || {
    cat "$log" >&2
    fail "the install over a written config failed"
}
grep -q '^server id: jp-99-kizuna-test ' "$log" || fail "init did not take the config's server id"
[ "$(sha256sum </etc/kizuna/kizunad.json)" = "$conf_sum" ] || fail "the install changed a written config"
dpkg -P kizuna >/dev/null
echo "check-install: ok"
