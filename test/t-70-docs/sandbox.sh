#!/usr/bin/env bash
# Runs one document's commands (OUT/run.sh from extract.py) in a throwaway
# system: it must be started by run.sh through
#   unshare --mount --net --pid --fork --mount-proc
# so that it is PID 1 of its own PID namespace (everything it starts dies
# with it), has its own loopback network (the documented ports 8891, 8892,
# 9432, 6379 are free), and its own mounts: /etc, /usr and /var become
# overlays whose changes land in SB/ov and vanish afterwards, /run and /tmp
# fresh tmpfs. Nothing the documents do (apt-get install, postconf -e, adduser,
# editing /etc/bounce-milter) reaches the real system.
#
# Usage: sandbox.sh SB OUT DEB CAPS
set -euo pipefail
SB=$1 OUT=$2 DEB=$3 CAPS=$4
HERE=$(cd "$(dirname "$0")" && pwd)

[ "$$" = 1 ] || { echo "sandbox.sh: not PID 1 of a new PID namespace; refusing to run" >&2; exit 99; }
mount --make-rprivate /
for d in etc usr var; do
  mkdir -p "$SB/ov/$d/up" "$SB/ov/$d/work"
  mount -t overlay "sandbox-$d" -o "lowerdir=/$d,upperdir=$SB/ov/$d/up,workdir=$SB/ov/$d/work" "/$d"
done
mount -t tmpfs -o mode=0755 sandbox-run /run
mkdir -p /run/lock
# A fresh /tmp too (the documents write there), with this test's own
# directory and the checkout (CI may clone it under /tmp) carried over.
keep=$(dirname "$OUT")
mkdir -p /run/sandbox-oldtmp
mount --bind /tmp /run/sandbox-oldtmp
mount -t tmpfs -o mode=1777 sandbox-tmp /tmp
for p in "$keep" "${ROOT:-}"; do
  case $p in
    /tmp/?*)
      mkdir -p "$p"
      mount --bind "/run/sandbox-oldtmp/${p#/tmp/}" "$p" ;;
  esac
done
# Refuse to go on unless every mount took: the commands below change the system.
for d in /etc /usr /var /run /tmp; do
  fs=$(findmnt -n -o FSTYPE --mountpoint "$d" | tail -1)
  case $d:$fs in /run:tmpfs|/tmp:tmpfs|/etc:overlay|/usr:overlay|/var:overlay) ;; *)
    echo "sandbox.sh: $d is $fs, not a sandbox mount; refusing to run" >&2; exit 99 ;;
  esac
done
touch /etc/.bm-sandbox
ip link set lo up

# Names the documents use for the hosts of a fleet: every 127/8 address is
# local, so each "host" gets its own address with the standard port.
cat >> /etc/hosts <<'HOSTS'
127.0.1.1 redis.example.net redis1.example.net
127.0.2.1 sentinel1.example.net
127.0.2.2 sentinel2.example.net
127.0.2.3 sentinel3.example.net
127.0.3.1 redis-node1.example.net
127.0.3.2 redis-node2.example.net
127.0.3.3 redis-node3.example.net
127.0.4.1 mx1.example.com
127.0.4.2 mx2.example.com
HOSTS

# A Postfix main.cf to edit: Debian's "No configuration" leaves none.
if [ ! -f /etc/postfix/main.cf ]; then
  cat > /etc/postfix/main.cf <<'MAINCF'
compatibility_level = 3.6
myhostname = mx.example.com
mydestination = $myhostname, localhost
inet_interfaces = loopback-only
MAINCF
fi

export PATH="$HERE/shims:$PATH" HOME=$SB/home
mkdir -p "$HOME" "$SB/work"
cd "$SB/work"
cp "$DEB" .

if [ "$(cat "$OUT/mode")" = installed ]; then
  # As the quick start leaves it: installed, example.com in tag mode, running.
  dpkg -i "$DEB" > "$SB/dpkg.log" 2>&1 || { cat "$SB/dpkg.log" >&2; exit 1; }
  printf '\n[domains."example.com"]\nmode = "tag"\n' >> /etc/bounce-milter/bounce-milter.toml
  systemctl start bounce-milter
  postconf -e 'smtpd_milters = unix:bounce-milter/milter.sock' 'non_smtpd_milters = unix:bounce-milter/milter.sock' \
    'milter_default_action = accept' 'recipient_canonical_maps = pipemap:{regexp:{{/^(.*prvs=.*|vrp=.*)/ $${1}}}, socketmap:unix:bounce-milter/socketmap.sock:unbatv}'
fi

# Started whenever a block needs Redis, even when this build cannot use
# them, so that the fixtures themselves stay tested.
if grep -qx redis "$OUT/needs"; then
  bash "$HERE/redis-fixtures.sh" "$SB/redis"
fi

echo "=== sandbox ready: $(cat "$OUT/mode"), caps '${CAPS}'" >&2
bash "$OUT/run.sh"
