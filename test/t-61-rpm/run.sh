#!/usr/bin/env bash
# The RPM for RHEL, AlmaLinux and Rocky Linux (make rpm), read with Debian's
# rpm. Built with a maintainer of our choosing; its header, its files (rpm
# -qpl) with their modes, owners and flags (%config(noreplace), %doc,
# %license), its scriptlets (rpm -qp --scripts). Then installed on this
# machine by rpm itself (a database of its own under $T; --nodeps, since
# Debian's packages are not in it): %pre creates the system user before
# the files it owns are unpacked, %post the key file, the installed tools
# work as that user; rpm -e removes the files and keeps the keys and the
# user (RPM has no purge), which the test then removes. It refuses to start
# when bounce-milter is installed or its user exists, and leaves the
# machine as it found it.
# shellcheck source=test/lib.sh
source "$(dirname "$0")/../lib.sh"

[ "$(id -u)" = 0 ] || { echo "FAIL: t-61-rpm installs a package: run it as root" >&2; exit 1; }
command -v rpm >/dev/null || fail "no rpm command (bash test/deps.sh installs it)"
PKG=bounce-milter
status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null || true)
if [ -n "${status// /}" ] && [ "${status:0:2}" != "un" ]; then
  echo "FAIL: $PKG is installed (dpkg status '$status'); purge it first: dpkg -P $PKG" >&2
  exit 1
fi
if getent passwd "$PKG" >/dev/null || getent group "$PKG" >/dev/null || [ -e /etc/bounce-milter ] || [ -e /var/lib/bounce-milter ] ||
  [ -e /usr/bin/bounce-milter ] || [ -e /usr/lib/systemd/system/bounce-milter.service ]; then
  echo "FAIL: a $PKG user/group or files of $PKG exist already; this test would delete them" >&2
  exit 1
fi

rm -rf "$T"; mkdir -p "$T"
DB=$T/rpmdb
INSTALLED=0
snapshot() { # what the package may touch outside its own files
  {
    getent passwd | sort; getent group | sort
    [ -d /etc/systemd/system ] && find /etc/systemd/system -maxdepth 3 | sort
    ls -a /etc /var/lib /usr/lib/sysusers.d /usr/share/licenses 2>/dev/null
  } > "$1" || true
}
snapshot "$T/before"
rpm_cleanup() {
  local rc=$?
  cleanup || true
  if [ "$INSTALLED" = 1 ]; then
    echo "cleanup: erasing $PKG" >&2
    rpm -e --dbpath "$DB" "$PKG" >/dev/null 2>&1 || true
    rm -rf /etc/bounce-milter /var/lib/bounce-milter
    userdel "$PKG" 2>/dev/null || true
    groupdel "$PKG" 2>/dev/null || true
    [ -f "$T/new-dirs" ] && sort -r "$T/new-dirs" | while read -r d; do rmdir "$d" 2>/dev/null || true; done
  fi
  exit "$rc"
}
trap rpm_cleanup EXIT

# 1. Build it, with a maintainer of our own.
MAINT='Jane Doe <jane.doe@example.org>'
(cd "$ROOT" && make -s rpm MAINTAINER="$MAINT") > "$T/make-rpm.log" 2>&1 || { cat "$T/make-rpm.log" >&2; fail "make rpm"; }
rpms=("$ROOT"/dist/bounce-milter-*.x86_64.rpm)
[ ${#rpms[@]} = 1 ] && [ -f "${rpms[0]}" ] || fail "make rpm: want one dist/bounce-milter-*.x86_64.rpm, have ${rpms[*]}"
RPM=${rpms[0]}
VERSION=$(cd "$ROOT" && packaging/version.sh)
q() { rpm -qp --nosignature "$@" "$RPM" 2>/dev/null; }
[ "$(basename "$RPM")" = "bounce-milter-$VERSION-1.x86_64.rpm" ] || fail "file name $(basename "$RPM"), want version $VERSION"
rpm -K --nosignature "$RPM" > "$T/digests" 2>&1 || { cat "$T/digests" >&2; fail "rpm -K: digests"; }
hdr=$(q --qf '%{NAME}|%{VERSION}|%{RELEASE}|%{ARCH}|%{OS}|%{LICENSE}|%{PACKAGER}|%{URL}|%{BUILDHOST}|%{SUMMARY}')
want="bounce-milter|$VERSION|1|x86_64|linux|Apache-2.0|$MAINT|https://github.com/bounce-milter/bounce-milter|bounce-milter-build|backscatter protection for Postfix (BATV prvs, signed VERP)"
[ "$hdr" = "$want" ] || fail "header: $hdr, want $want"
q -R | grep -qx shadow-utils || fail "does not require shadow-utils (useradd): $(q -R)"
q --suggests | grep -qx postfix || fail "does not suggest postfix"
ok "$(basename "$RPM") ($(stat -c %s "$RPM") bytes): digests, header (Packager $MAINT), requires shadow-utils"

# 2. The files: exactly these, with these modes, owners and flags
# (c: %config, n: noreplace, d: %doc, l: %license).
q -l > "$T/files"
{
  printf '%s\n' /etc/bounce-milter /etc/bounce-milter/bounce-milter.toml /usr/bin/bounce-milter \
    /usr/lib/systemd/system/bounce-milter.service /usr/lib/sysusers.d/bounce-milter.conf \
    /usr/share/doc/bounce-milter /usr/share/doc/bounce-milter/CHANGELOG.md /usr/share/doc/bounce-milter/README.RPM \
    /usr/share/doc/bounce-milter/README.md /usr/share/licenses/bounce-milter /usr/share/licenses/bounce-milter/LICENSE \
    /usr/share/licenses/bounce-milter/NOTICE /usr/share/licenses/bounce-milter/copyright \
    /usr/share/man/man8/bounce-milter.8.gz /var/lib/bounce-milter
  for d in "$ROOT"/docs/*.md; do echo "/usr/share/doc/bounce-milter/$(basename "$d")"; done
} | sort > "$T/want-files"
diff -u "$T/want-files" <(sort "$T/files") >&2 || fail "rpm -qpl differs from the expected list"
q --qf '[%{FILEFLAGS:fflags}|%{FILEMODES:perms}|%{FILEUSERNAME}:%{FILEGROUPNAME}|%{FILENAMES}\n]' > "$T/attrs"
for want in 'cn|-rw-r--r--|root:root|/etc/bounce-milter/bounce-milter.toml' \
  '|-rwxr-xr-x|root:root|/usr/bin/bounce-milter' \
  '|-rw-r--r--|root:root|/usr/lib/systemd/system/bounce-milter.service' \
  '|drwx------|bounce-milter:bounce-milter|/var/lib/bounce-milter' \
  '|drwxr-xr-x|root:root|/etc/bounce-milter' \
  'l|-rw-r--r--|root:root|/usr/share/licenses/bounce-milter/LICENSE' \
  'l|-rw-r--r--|root:root|/usr/share/licenses/bounce-milter/copyright' \
  'd|-rw-r--r--|root:root|/usr/share/doc/bounce-milter/README.RPM'; do
  grep -qxF -- "$want" "$T/attrs" || { cat "$T/attrs" >&2; fail "rpm file attributes lack $want"; }
done
[ "$(q -c)" = /etc/bounce-milter/bounce-milter.toml ] || fail "config files: $(q -c)"
grep -q '^/etc/bounce-milter/keys$' "$T/files" && fail "the package ships a key file"
mkdir "$T/payload"
# rpm2archive, whose tar has relative names (rpm2cpio's cpio has absolute
# ones, which GNU cpio would write to /).
rpm2archive - < "$RPM" | tar -xzf - -C "$T/payload" || fail "rpm2archive | tar"
cmp "$T/payload/usr/lib/systemd/system/bounce-milter.service" "$ROOT/packaging/bounce-milter.service" || fail "the unit is not packaging/bounce-milter.service"
cmp "$T/payload/etc/bounce-milter/bounce-milter.toml" "$ROOT/packaging/bounce-milter.toml" || fail "the config is not packaging/bounce-milter.toml"
cmp "$T/payload/usr/share/licenses/bounce-milter/LICENSE" "$ROOT/LICENSE" || fail "the licence is not LICENSE"
grep -qx 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' "$T/payload/usr/share/licenses/bounce-milter/copyright" || fail "licenses/bounce-milter/copyright is not the DEP-5 listing"
ok "files: the expected $(grep -c . "$T/files"), the config %config(noreplace), licences %license, data dir 0700 bounce-milter"

# 3. The scriptlets: shell, no command run by its path, the user in %pre.
q --scripts > "$T/scripts"
for s in preinstall postinstall preuninstall postuninstall; do
  grep -q "^$s scriptlet (using /bin/sh):" "$T/scripts" || fail "no $s scriptlet"
done
for f in pre post preun postun; do
  sh -n "$ROOT/packaging/rpm/$f" || fail "packaging/rpm/$f: shell syntax"
  grep -nE '(^|[;&|(]|\$\(|(then|do|else)[[:space:]])[[:space:]]*/(usr/)?s?bin/' "$ROOT/packaging/rpm/$f" && fail "packaging/rpm/$f runs a command by its path"
done
awk '/^preinstall scriptlet/{p=1;next} /scriptlet \(using/{p=0} p' "$T/scripts" > "$T/pre"
grep -q 'useradd -r' "$T/pre" && grep -q 'groupadd -r' "$T/pre" || fail "%pre does not create the system user and group"
ok "scriptlets: %pre/%post/%preun/%postun, sh syntax, no absolute command paths, the user from %pre"

# 4. Installed by rpm on this machine. rpm makes the parent directories a
# RHEL system has (/usr/share/licenses): noted, to be removed afterwards.
while read -r f; do
  d=$(dirname "$f")
  while [ "$d" != / ] && [ ! -e "$d" ]; do echo "$d"; d=$(dirname "$d"); done
done < "$T/files" | sort -u > "$T/new-dirs"
rpm --initdb --dbpath "$DB"
INSTALLED=1
rpm -i --force-debian --nodeps --dbpath "$DB" "$RPM" > "$T/rpm-i.log" 2>&1 || { cat "$T/rpm-i.log" >&2; fail "rpm -i"; }
grep -i 'warning' "$T/rpm-i.log" && fail "rpm -i warned"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd "$PKG") || fail "no user $PKG after installation"
[ "$uid" -lt 1000 ] || fail "user $PKG has uid $uid: not a system user"
[ "$(getent group "$PKG" | cut -d: -f3)" = "$gid" ] || fail "user $PKG's primary group is not $PKG"
[ "$home" = /var/lib/bounce-milter ] || fail "home $home"
[[ $shell == */nologin ]] || fail "user $PKG has a login shell: $shell"
[ "$(stat -c '%a %U %G' /var/lib/bounce-milter)" = "700 $PKG $PKG" ] || fail "data dir: $(stat -c '%a %U %G' /var/lib/bounce-milter) (was the user there when rpm unpacked it?)"
[ "$(stat -c '%a %U %G' /etc/bounce-milter/keys)" = "600 $PKG $PKG" ] || fail "keys: $(stat -c '%a %U %G' /etc/bounce-milter/keys)"
[ "$(grep -vc '^#' /etc/bounce-milter/keys)" = 1 ] && grep -qE '^1 [0-9a-f]{64}$' /etc/bounce-milter/keys || fail "key file content"
out=$(/usr/bin/bounce-milter version) || fail "bounce-milter version"
[[ $out == "bounce-milter $VERSION (commit "* ]] || fail "version: $out"
as_user() { setpriv --reuid="$PKG" --regid="$PKG" --init-groups -- "$@"; }
tag=$(as_user /usr/bin/bounce-milter sign --key-file /etc/bounce-milter/keys alice@example.com) || fail "sign as $PKG"
[ "$(as_user /usr/bin/bounce-milter verify --key-file /etc/bounce-milter/keys "$tag")" = alice@example.com ] || fail "verify as $PKG"
[ "$(rpm -q --dbpath "$DB" --qf '%{VERSION}-%{RELEASE}' "$PKG")" = "$VERSION-1" ] || fail "rpm -q after install"
rpm -V --nodeps --dbpath "$DB" "$PKG" > "$T/verify" 2>&1 || { cat "$T/verify" >&2; fail "rpm -V: installed files differ from the package"; }
ok "rpm -i: system user $PKG (uid $uid, $shell) from %pre, data dir 0700 $PKG, keys 0600 $PKG from %post, sign/verify as $PKG, rpm -V clean"

# 5. rpm -e: files gone, keys and user kept; then removed by hand as
# README.RPM says.
sum=$(sha256sum < /etc/bounce-milter/keys)
rpm -e --dbpath "$DB" "$PKG" > "$T/rpm-e.log" 2>&1 || { cat "$T/rpm-e.log" >&2; fail "rpm -e"; }
INSTALLED=0
rpm -q --dbpath "$DB" "$PKG" >/dev/null 2>&1 && fail "still installed after rpm -e"
for p in /usr/bin/bounce-milter /usr/lib/systemd/system/bounce-milter.service /etc/bounce-milter/bounce-milter.toml /usr/share/doc/bounce-milter /var/lib/bounce-milter; do
  [ ! -e "$p" ] || fail "$p left after rpm -e"
done
[ "$(sha256sum < /etc/bounce-milter/keys)" = "$sum" ] || fail "keys gone or changed after rpm -e"
getent passwd "$PKG" >/dev/null || fail "user gone after rpm -e"
rm -rf /etc/bounce-milter /var/lib/bounce-milter
userdel "$PKG"
if getent group "$PKG" >/dev/null; then groupdel "$PKG"; fi
sort -r "$T/new-dirs" | while read -r d; do rmdir "$d" 2>/dev/null || true; done
snapshot "$T/after"
diff -u "$T/before" "$T/after" >&2 || fail "the machine differs from before the test"
ok "rpm -e: files gone, keys and user kept; removed as README.RPM says, machine as before"
