#!/usr/bin/env bash
# The Debian package: builds it (make deb), checks its contents, installs it
# on this machine with dpkg -i (CI: a fresh Debian 12 VM, run as root),
# checks the user, the key file and the installed unit, runs the installed
# daemon as the bounce-milter user with the installed configuration on free
# ports (readiness notification included), then dpkg -r (the keys stay), a
# reinstall (the same keys), and dpkg -P (keys, data, user gone). It leaves
# the machine as it found it, and refuses to start if bounce-milter is
# already installed or its user exists.
# shellcheck source=test/lib.sh
source "$(dirname "$0")/../lib.sh"

[ "$(id -u)" = 0 ] || { echo "FAIL: t-60-deb installs a package: run it as root" >&2; exit 1; }
PKG=bounce-milter
UNIT=/lib/systemd/system/bounce-milter.service

status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null || true)
if [ -n "${status// /}" ] && [ "${status:0:2}" != "un" ]; then
  echo "FAIL: $PKG is already on this machine (dpkg status '$status'); purge it first: dpkg -P $PKG" >&2
  exit 1
fi
if getent passwd "$PKG" >/dev/null || getent group "$PKG" >/dev/null || [ -e /etc/bounce-milter ] || [ -e /var/lib/bounce-milter ]; then
  echo "FAIL: a $PKG user/group, /etc/bounce-milter or /var/lib/bounce-milter exists already; this test would delete it" >&2
  exit 1
fi

rm -rf "$T"; mkdir -p "$T"; chmod 755 "$T"
INSTALLED=0
snapshot() { # what the package may touch outside its own files
  {
    getent passwd | sort; getent group | sort
    for d in /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked; do
      [ -d "$d" ] && find "$d" -maxdepth 3 | sort
    done
    ls -a /etc /var/lib
  } > "$1" || true
}
snapshot "$T/before"
deb_cleanup() {
  local rc=$?
  cleanup || true
  if [ "$INSTALLED" = 1 ]; then
    echo "cleanup: purging $PKG" >&2
    dpkg -P "$PKG" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap deb_cleanup EXIT

# 1. The unit as shipped passes systemd-analyze verify with no message at
# all (unknown keys are only warnings; the binary must exist, so point
# ExecStart at the one built here for this first check).
[ -x "$BM" ] || (cd "$ROOT" && make -s build)
sed "s#/usr/bin/bounce-milter#$BM#g" "$ROOT/packaging/bounce-milter.service" > "$T/bounce-milter.service"
out=$(systemd-analyze verify --man=no "$T/bounce-milter.service" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify is not clean: $out"
# shellcheck disable=SC2016 # $MAINPID is literal in the unit
for want in 'Type=notify' 'User=bounce-milter' 'ProtectSystem=strict' 'PrivateTmp=yes' 'NoNewPrivileges=yes' \
  'CapabilityBoundingSet=$' 'RuntimeDirectory=bounce-milter' 'RuntimeDirectoryMode=0750' 'SystemCallFilter=@system-service' \
  'ExecReload=/bin/kill -HUP \$MAINPID' 'ExecStart=/usr/bin/bounce-milter serve --config /etc/bounce-milter/bounce-milter.toml'; do
  grep -q "^$want" "$ROOT/packaging/bounce-milter.service" || fail "unit lacks $want"
done
# systemd's own exposure score (0 best, 10 worst): 1.5 today; fail above 2.5.
out=$(systemd-analyze security --offline=yes --threshold=25 "$T/bounce-milter.service" 2>&1) \
  || { tail -5 <<<"$out" >&2; fail "systemd-analyze security: exposure above 2.5"; }
exposure=$(grep -o 'exposure level for bounce-milter.service: [0-9.]*' <<<"$out" | awk '{print $NF}')
ok "unit: systemd-analyze verify clean, hardening present, exposure $exposure"

for s in "$ROOT"/packaging/debian/*; do sh -n "$s" || fail "$s: shell syntax"; done

# 2. Build the package.
(cd "$ROOT" && make -s deb) > "$T/make-deb.log" 2>&1 || { cat "$T/make-deb.log" >&2; fail "make deb"; }
debs=("$ROOT"/dist/bounce-milter_*_amd64.deb)
[ ${#debs[@]} = 1 ] && [ -f "${debs[0]}" ] || fail "make deb: want one dist/bounce-milter_*_amd64.deb, have ${debs[*]}"
DEB=${debs[0]}
VERSION=$(dpkg-deb -f "$DEB" Version)
[[ $(basename "$DEB") == "bounce-milter_${VERSION}_amd64.deb" ]] || fail "file name $(basename "$DEB") does not carry version $VERSION"
[ "$(dpkg-deb -f "$DEB" Package)" = bounce-milter ] || fail "Package field"
[ "$(dpkg-deb -f "$DEB" Architecture)" = amd64 ] || fail "Architecture field"
grep -qx 'adduser' <<<"$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | tr -d ' ')" || fail "Depends lacks adduser: $(dpkg-deb -f "$DEB" Depends)"
grep -q postfix <<<"$(dpkg-deb -f "$DEB" Suggests)" || fail "Suggests lacks postfix"
dpkg-deb -e "$DEB" "$T/control"
grep -qx /etc/bounce-milter/bounce-milter.toml "$T/control/conffiles" || fail "the config is not a conffile: $(cat "$T/control/conffiles")"
[ "$(grep -c . "$T/control/conffiles")" = 1 ] || fail "unexpected conffiles: $(cat "$T/control/conffiles")"
for s in postinst prerm postrm; do [ -x "$T/control/$s" ] || fail "no $s in the package"; done
dpkg-deb -c "$DEB" > "$T/contents"
for want in '-rwxr-xr-x root/root .* ./usr/bin/bounce-milter$' \
  '-rw-r--r-- root/root .* ./etc/bounce-milter/bounce-milter.toml$' \
  '-rw-r--r-- root/root .* ./lib/systemd/system/bounce-milter.service$' \
  '-rw-r--r-- root/root .* ./usr/share/man/man8/bounce-milter.8.gz$' \
  '-rw-r--r-- root/root .* ./usr/share/doc/bounce-milter/README.Debian$' \
  '-rw-r--r-- root/root .* ./usr/share/doc/bounce-milter/copyright$' \
  '-rw-r--r-- root/root .* ./usr/share/doc/bounce-milter/changelog.gz$' \
  '-rw-r--r-- root/root .* ./usr/share/lintian/overrides/bounce-milter$' \
  './usr/share/doc/bounce-milter/quickstart.md$' './usr/share/doc/bounce-milter/troubleshooting.md$'; do
  grep -qE -- "$want" "$T/contents" || { cat "$T/contents" >&2; fail "package lacks $want"; }
done
grep -q '/keys$' "$T/contents" && fail "the package ships a key file"
ok "package $(basename "$DEB") ($(stat -c %s "$DEB") bytes): fields, conffile, contents"

# Release grade. lintian at its default profile says nothing at all (only
# its notice about running as root is dropped).
out=$(lintian --fail-on error,warning "$DEB" 2>&1) || fail "lintian: $out"
out=$(grep -vx 'running with root privileges is not recommended!' <<<"$out" || true)
[ -z "$out" ] || fail "lintian is not clean: $out"
# The one override: the static Go binary, with its reason beside it.
out=$(lintian --show-overrides "$DEB" 2>&1 | grep -E '^[EWIO]:' || true)
[ "$out" = "O: bounce-milter: statically-linked-binary [usr/bin/bounce-milter]" ] || fail "lintian overrides: $out"
maint=$(dpkg-deb -f "$DEB" Maintainer)
maint_re='^[^@<]+ <[^@ ]+@[a-z0-9-]+(\.[a-z0-9-]+)+>$'
[[ $maint =~ $maint_re ]] || fail "Maintainer is not 'Name <address@a.domain>': $maint"
for s in "$T"/control/postinst "$T"/control/prerm "$T"/control/postrm; do
  grep -nE '(^|[;&|(]|\$\(|(then|do|else)[[:space:]])[[:space:]]*/(usr/)?s?bin/' "$s" && fail "$(basename "$s") runs a command by its path"
done
dpkg-deb --fsys-tarfile "$DEB" | tar -xf - -C "$T" ./usr/share/doc/bounce-milter/copyright ./usr/share/doc/bounce-milter/changelog.gz
# The changelog: Debian's format, headed by this version.
zcat "$T/usr/share/doc/bounce-milter/changelog.gz" > "$T/changelog"
[ "$(dpkg-parsechangelog -l "$T/changelog" -S Version)" = "$VERSION" ] || fail "changelog.gz is not headed by $VERSION: $(head -1 "$T/changelog")"
[ "$(dpkg-parsechangelog -l "$T/changelog" -S Maintainer)" = "$maint" ] || fail "changelog signed by $(dpkg-parsechangelog -l "$T/changelog" -S Maintainer), not $maint"
# The copyright file: DEP-5 as python3-debian reads it strictly, a
# paragraph for every Go module linked into the binary, the test corpora.
COPYRIGHT=$T/usr/share/doc/bounce-milter/copyright
/usr/bin/python3 - "$COPYRIGHT" <<'PY' || fail "copyright: not a valid DEP-5 file"
import sys
from debian.copyright import Copyright
c = Copyright(open(sys.argv[1], encoding="utf-8"), strict=True)
assert c.header.upstream_name == "bounce-milter", c.header.upstream_name
for p in c.all_files_paragraphs():
    assert p.copyright and p.license.synopsis, p.files
names = {p.license.synopsis for p in c.all_license_paragraphs()}
for p in c.all_files_paragraphs():
    if not p.license.text:
        assert p.license.synopsis in names, ("no licence text for", p.files, p.license.synopsis)
print(len(list(c.all_files_paragraphs())), "Files paragraphs")
PY
mods=$(cd "$ROOT" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}{{end}}{{end}}' ./cmd/bounce-milter | sort -u)
[ "$(grep -c . <<<"$mods")" -ge 5 ] || fail "go list found only: $mods"
while read -r m v; do
  grep -qx "Files: vendor/$m/\*" "$COPYRIGHT" || fail "copyright has no paragraph for module $m"
  grep -qE "Go module $m $v(;|, replaced by)" "$COPYRIGHT" || fail "copyright does not name $m $v"
done <<<"$mods"
for want in '^Files: \*$' '^Files: GOROOT/src/\*$' '^Files: internal/backscatter/testdata/corpus/messages/\*/sisimai-\*$' \
  '^Files: internal/backscatter/testdata/corpus/messages/\*/sa-\*$' '/usr/share/common-licenses/Apache-2.0'; do
  grep -q -- "$want" "$COPYRIGHT" || fail "copyright lacks $want"
done
ok "lintian: nothing to report (one override, the static Go binary); Maintainer $maint; changelog.gz headed by $VERSION; copyright: DEP-5, $(grep -c . <<<"$mods") modules, test corpora"

# 3. Install.
INSTALLED=1
dpkg -i "$DEB" > "$T/dpkg-i.log" 2>&1 || { cat "$T/dpkg-i.log" >&2; fail "dpkg -i"; }
[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG")" = "ii " ] || fail "not installed after dpkg -i"
IFS=: read -r _ _ uid gid _ _ shell < <(getent passwd "$PKG") || fail "no user $PKG"
[ "$uid" -lt 1000 ] || fail "user $PKG has uid $uid: not a system user"
[ "$(getent group "$PKG" | cut -d: -f3)" = "$gid" ] || fail "user $PKG's primary group is not $PKG"
[[ $shell == */nologin || $shell == /bin/false ]] || fail "user $PKG has a login shell: $shell"
[ "$(stat -c '%a %U %G' /etc/bounce-milter/keys)" = "600 $PKG $PKG" ] || fail "keys: $(stat -c '%a %U %G' /etc/bounce-milter/keys)"
[ "$(stat -c '%a %U' /var/lib/bounce-milter)" = "700 $PKG" ] || fail "data dir: $(stat -c '%a %U' /var/lib/bounce-milter)"
[ "$(grep -vc '^#' /etc/bounce-milter/keys)" = 1 ] && grep -qE '^1 [0-9a-f]{64}$' /etc/bounce-milter/keys || fail "key file content"
[ "$(stat -c '%a %U' /etc/bounce-milter/bounce-milter.toml)" = "644 root" ] || fail "config mode"
out=$(bounce-milter version) || fail "bounce-milter version"
commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
[[ $out == "bounce-milter $VERSION (commit $commit, go1."*")" ]] || fail "version: $out, want $VERSION, commit $commit and the Go version"
[ "$(command -v bounce-milter)" = /usr/bin/bounce-milter ] || fail "bounce-milter is not /usr/bin/bounce-milter"
zcat /usr/share/man/man8/bounce-milter.8.gz | grep -q '^\.TH BOUNCE-MILTER 8' || fail "man page is not a bounce-milter(8) roff page"
for sect in SYNOPSIS COMMANDS SIGNALS FILES 'EXIT STATUS'; do
  zcat /usr/share/man/man8/bounce-milter.8.gz | grep -q "^\.SH $sect" || fail "man page lacks $sect"
done
if command -v man >/dev/null; then
  MANWIDTH=80 man -l /usr/share/man/man8/bounce-milter.8.gz 2>/dev/null | grep -q 'backscatter' || fail "man -l cannot render the page"
fi
ok "installed: system user $PKG (uid $uid), keys 0600 $PKG, data dir 0700, $out, man page"

# The installed unit, verified in place (with its man: reference when man is here).
man_opt=--man=no; command -v man >/dev/null && man_opt=--man=yes
out=$(systemd-analyze verify "$man_opt" "$UNIT" 2>&1) || fail "systemd-analyze verify $UNIT: $out"
[ -z "$out" ] || fail "systemd-analyze verify $UNIT is not clean: $out"
ok "installed unit verifies ($man_opt)"

# 4. The installed daemon with the installed config, as the user, on free
# ports (the config's 8891/8892 may be taken), with a readiness listener
# standing in for systemd's NOTIFY_SOCKET.
# Ports below the kernel's ephemeral range (32768-), so that outgoing
# connections of other programs on this machine do not take them.
low_port() {
  local p
  for _ in $(seq 200); do
    p=$(( 20000 + RANDOM % 12000 ))
    ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
  done
  fail "no free port"
}
MP=$(low_port); SP=$(low_port)
as_user() { setpriv --reuid="$PKG" --regid="$PKG" --init-groups -- "$@"; }
tag=$(as_user bounce-milter sign --key-file /etc/bounce-milter/keys alice@example.com) || fail "sign as $PKG"
[[ $tag == prvs=1?????????=alice@example.com ]] || fail "signed: $tag"
[ "$(as_user bounce-milter verify --key-file /etc/bounce-milter/keys "$tag")" = alice@example.com ] || fail "verify as $PKG"
cat > "$T/notify.py" <<'PY'
import socket, subprocess, sys, os, time
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path); os.chmod(path, 0o777)
s.settimeout(20)
with open(out, "w") as f:
    while True:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            f.write("TIMEOUT\n"); f.flush(); break
        f.write(msg.replace("\n", " ") + " @%.3f\n" % time.time()); f.flush()
        if "STOPPING=1" in msg:
            break
PY
python3 "$T/notify.py" "$T/notify.sock" "$T/notify.log" &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done
for attempt in 1 2 3; do
  NOTIFY_SOCKET=$T/notify.sock setpriv --reuid="$PKG" --regid="$PKG" --init-groups -- \
    /usr/bin/bounce-milter serve --config /etc/bounce-milter/bounce-milter.toml \
    --milter "inet:127.0.0.1:$MP" --socketmap "inet:127.0.0.1:$SP" --domains example.com \
    > "$T/bm.out" 2> "$T/bm.log" &
  BMPID=$!; PIDS+=("$BMPID")
  for _ in $(seq 100); do
    grep -q READY=1 "$T/notify.log" 2>/dev/null && break
    kill -0 "$BMPID" 2>/dev/null || break
    sleep 0.1
  done
  grep -q READY=1 "$T/notify.log" && break
  # Another program took a port between the check and the bind: new ports.
  if [ "$attempt" -lt 3 ] && grep -q 'address already in use' "$T/bm.log"; then
    echo "(port taken meanwhile; again with other ports)"
    MP=$(low_port); SP=$(low_port)
    continue
  fi
  fail "no READY=1 from serve"
done
ss -Hltn "sport = :$MP" | grep -q . && ss -Hltn "sport = :$SP" | grep -q . || fail "READY=1 sent before both listeners were up"
[ "$(ps -o uid= -p "$BMPID" | tr -d " ")" = "$uid" ] || fail "serve does not run as $PKG"
grep -q 'msg="bounce-milter started"' "$T/bm.log" || fail "no start line in the log"
grep -q 'domains=example.com' "$T/bm.log" || fail "start line lacks the domain"
grep -q 'level=ERROR' "$T/bm.log" && fail "errors at start: $(cat "$T/bm.log")"
[ "$(stat -c %U /var/lib/bounce-milter/domains-since.json)" = "$PKG" ] || fail "serve did not record state in /var/lib/bounce-milter"
# The socketmap answers with the untagged address for the valid tag.
reply=$(python3 - "$SP" "$tag" <<'PY'
import socket, sys
q = ("unbatv " + sys.argv[2]).encode()
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
c.sendall(str(len(q)).encode() + b":" + q + b",")
print(c.recv(4096).decode())
PY
)
[[ $reply == *"OK alice@example.com"* ]] || fail "socketmap reply: $reply"
kill -HUP "$BMPID"
for _ in $(seq 50); do grep -q 'msg=reloaded' "$T/bm.log" && break; sleep 0.1; done
grep -q 'msg=reloaded' "$T/bm.log" || fail "SIGHUP: no reload"
grep -q RELOADING=1 "$T/notify.log" || fail "SIGHUP: no RELOADING=1"
kill "$BMPID"; rc=0; wait "$BMPID" || rc=$?
[ "$rc" = 0 ] || fail "serve exited $rc after SIGTERM"
grep -q 'msg=stopped' "$T/bm.log" || fail "no stop line"
grep -q STOPPING=1 "$T/notify.log" || fail "no STOPPING=1"
ok "installed daemon as $PKG with the installed config: READY=1 after both listeners, socketmap answers, SIGHUP reloads, SIGTERM exits 0"

# With a listener that cannot start, READY=1 is never sent.
rm -f "$T/notify.sock" "$T/notify.log"
python3 "$T/notify.py" "$T/notify.sock" "$T/notify.log" &
NPID=$!; PIDS+=("$NPID")
for _ in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done
python3 -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(); time.sleep(30)' "$SP" &
HOLD=$!; PIDS+=("$HOLD")
wait_port "$SP"
rc=0
NOTIFY_SOCKET=$T/notify.sock timeout 20 setpriv --reuid="$PKG" --regid="$PKG" --init-groups -- \
  /usr/bin/bounce-milter serve --config /etc/bounce-milter/bounce-milter.toml \
  --milter "inet:127.0.0.1:$MP" --socketmap "inet:127.0.0.1:$SP" > /dev/null 2> "$T/bm-busy.log" || rc=$?
[ "$rc" = 1 ] || fail "serve with a busy port exited $rc, want 1"
kill "$HOLD" 2>/dev/null || true
sleep 0.3
grep -q READY=1 "$T/notify.log" 2>/dev/null && fail "READY=1 sent although the socketmap could not listen"
kill "$NPID" 2>/dev/null || true
ok "a listener that cannot start: exit 1, no READY=1"

# 5. Under a running systemd (CI VMs), the package started the service.
if [ -d /run/systemd/system ]; then
  for _ in $(seq 50); do systemctl is-active --quiet bounce-milter && break; sleep 0.2; done
  systemctl is-active --quiet bounce-milter || { systemctl status bounce-milter >&2 || true; journalctl -u bounce-milter -n 30 >&2 || true; fail "service not active after install"; }
  systemctl reload bounce-milter || fail "systemctl reload"
  systemctl is-active --quiet bounce-milter || fail "service not active after reload"
  systemctl is-enabled --quiet bounce-milter || fail "service not enabled"
  ok "systemd: the service is enabled, active (Type=notify) and reloads"
else
  echo "skip - systemd is not PID 1 here: service start under systemd not tested"
fi

# 6. dpkg -r: binary gone, keys, config and user kept.
sum=$(sha256sum < /etc/bounce-milter/keys)
dpkg -r "$PKG" > "$T/dpkg-r.log" 2>&1 || { cat "$T/dpkg-r.log" >&2; fail "dpkg -r"; }
[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG")" = "rc " ] || fail "status after dpkg -r: $(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG")"
[ ! -e /usr/bin/bounce-milter ] || fail "binary left after dpkg -r"
[ ! -e "$UNIT" ] || fail "unit left after dpkg -r"
[ "$(stat -c '%a %U' /etc/bounce-milter/keys 2>/dev/null)" = "600 $PKG" ] || fail "keys gone or changed after dpkg -r"
[ -f /etc/bounce-milter/bounce-milter.toml ] || fail "conffile gone after dpkg -r"
getent passwd "$PKG" >/dev/null || fail "user gone after dpkg -r"
ok "dpkg -r: binary gone; keys, config, data and user kept"

# Reinstalling keeps the keys: tags already sent still verify.
dpkg -i "$DEB" > "$T/dpkg-i2.log" 2>&1 || { cat "$T/dpkg-i2.log" >&2; fail "dpkg -i again"; }
[ "$(sha256sum < /etc/bounce-milter/keys)" = "$sum" ] || fail "reinstall replaced the keys"
[ "$(bounce-milter verify --key-file /etc/bounce-milter/keys "$tag")" = alice@example.com ] || fail "old tag after reinstall"
if [ -d /run/systemd/system ]; then
  for _ in $(seq 50); do systemctl is-active --quiet bounce-milter && break; sleep 0.2; done
  systemctl is-active --quiet bounce-milter || fail "service not running after the reinstall"
fi
ok "reinstall: same keys, old tags verify"

# 7. dpkg -P: everything gone, the machine as before.
dpkg -P "$PKG" > "$T/dpkg-P.log" 2>&1 || { cat "$T/dpkg-P.log" >&2; fail "dpkg -P"; }
INSTALLED=0
status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null || true)
[ -z "${status// /}" ] || [ "${status:0:2}" = "un" ] || fail "dpkg status after purge: '$status'"
for p in /etc/bounce-milter /var/lib/bounce-milter /usr/bin/bounce-milter "$UNIT"; do
  [ ! -e "$p" ] || fail "$p left after dpkg -P"
done
getent passwd "$PKG" >/dev/null && fail "user $PKG left after dpkg -P"
getent group "$PKG" >/dev/null && fail "group $PKG left after dpkg -P"
snapshot "$T/after"
diff -u "$T/before" "$T/after" >&2 || fail "the machine differs from before the test"
ok "dpkg -P: keys, config, data dir, user, group gone; machine as before"
