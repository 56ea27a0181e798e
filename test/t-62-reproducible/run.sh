#!/usr/bin/env bash
# Reproducible packages: the source tree (the checkout's files, as they are
# now) is copied to two directories of different names and depths and
# built there as a release build would be (VERSION, COMMIT and
# SOURCE_DATE_EPOCH of this checkout), the second time with another umask,
# time zone and locale. The .deb files and the .rpm files must be
# byte-identical (cmp), carry no path of the build machine and no time but
# the commit's, and hold the same binary. A third build with another
# SOURCE_DATE_EPOCH must differ: the time stamps do come from it. The Go
# build cache is shared with the other builds, to keep this short.
# shellcheck source=test/lib.sh
source "$(dirname "$0")/../lib.sh"

rm -rf "$T"; mkdir -p "$T"
VERSION=$(cd "$ROOT" && packaging/version.sh)
COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 1790000000)

copy_tree() { # dest
  mkdir -p "$1"
  if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
      xargs -0 cp --parents -t "$1")
  else
    (cd "$ROOT" && tar --exclude=./dist --exclude=./bin -cf - .) | tar -xf - -C "$1"
  fi
}
A=$T/a/src
B=$T/second-build/elsewhere/bounce-milter-$VERSION
copy_tree "$A"
copy_tree "$B"

build() { # dir umask tz locale epoch targets...
  local dir=$1 mask=$2 tz=$3 loc=$4 epoch=$5; shift 5
  (cd "$dir" && umask "$mask" && TZ=$tz LC_ALL=$loc make -s "$@" VERSION="$VERSION" COMMIT="$COMMIT" SOURCE_DATE_EPOCH="$epoch") \
    > "$T/build.log" 2>&1 || { cat "$T/build.log" >&2; fail "make $* in $dir"; }
}
start=$(date +%s)
build "$A" 022 UTC C "$EPOCH" deb rpm
locale -a 2>/dev/null | grep -qix 'c.utf-\?8' && loc=C.UTF-8 || loc=C
build "$B" 077 Pacific/Kiritimati "$loc" "$EPOCH" deb rpm
DEB=bounce-milter_${VERSION}_amd64.deb
RPM=bounce-milter-$VERSION-1.x86_64.rpm
for f in "$DEB" "$RPM"; do
  [ -f "$A/dist/$f" ] && [ -f "$B/dist/$f" ] || fail "no dist/$f: $(ls "$A/dist" "$B/dist")"
  cmp "$A/dist/$f" "$B/dist/$f" || fail "$f differs between the two builds"
done
ok "two builds ($(( $(date +%s) - start ))s) in different directories, umask 022/077, TZ UTC/Kiritimati: $DEB and $RPM byte-identical ($(sha256sum < "$A/dist/$DEB" | cut -c1-16)…, $(sha256sum < "$A/dist/$RPM" | cut -c1-16)…)"

# Inside: no path of the build machine, every time the commit's.
mkdir -p "$T/deb" "$T/rpm"
dpkg-deb -x "$A/dist/$DEB" "$T/deb"
dpkg-deb -e "$A/dist/$DEB" "$T/deb/DEBIAN"
rpm2archive - < "$A/dist/$RPM" | tar -xzf - -C "$T/rpm"
for p in "$A" "$B" "$ROOT" "$T" "$(go env GOMODCACHE)" "$(go env GOROOT)" "$HOME"; do
  [ -n "$p" ] && [ "$p" != / ] || continue
  hits=$(grep -rlF -- "$p/" "$T/deb" "$T/rpm" || true)
  [ -z "$hits" ] || fail "the packages name the build path $p/: $hits"
done
bad=$(dpkg-deb --fsys-tarfile "$A/dist/$DEB" | tar -tv --numeric-owner --full-time -f - | awk '{print $4" "$5}' | sort -u)
want=$(TZ=UTC date -d "@$EPOCH" '+%Y-%m-%d %H:%M:%S')
# tar prints times in the local zone
want_local=$(date -d "@$EPOCH" '+%Y-%m-%d %H:%M:%S')
[ "$bad" = "$want_local" ] || fail "file times in the deb: $bad, want only $want (UTC)"
times=$(rpm -qp --nosignature --qf '[%{FILEMTIMES}\n]%{BUILDTIME}\n' "$A/dist/$RPM" 2>/dev/null | sort -u)
[ "$times" = "$EPOCH" ] || fail "file and build times in the rpm: $times, want only $EPOCH"
cmp "$T/deb/usr/bin/bounce-milter" "$T/rpm/usr/bin/bounce-milter" || fail "the deb and the rpm hold different binaries"
out=$("$T/deb/usr/bin/bounce-milter" version)
[[ $out == "bounce-milter $VERSION (commit $COMMIT, go1."* ]] || fail "version of the packaged binary: $out"
ok "no build path inside, every time $want UTC (SOURCE_DATE_EPOCH $EPOCH), one binary in both: $out"

# The check can fail: another SOURCE_DATE_EPOCH, another package (only
# nfpm runs again: make -o keeps the files already built).
build "$A" 022 UTC C $((EPOCH + 86400)) -o pkg-files -o man deb
cmp -s "$A/dist/$DEB" "$B/dist/$DEB" && fail "a build a day later is identical: the times do not come from SOURCE_DATE_EPOCH"
ok "a build with SOURCE_DATE_EPOCH a day later differs"
