#!/usr/bin/env bash
# What the store costs per signed message, for sizing (docs/fleet.md):
# bytes per record, records written and looked up per second per core
# (GOMAXPROCS=1), and the memory or disk a million messages a day kept
# 10 days take, for the embedded store (bbolt, fdatasync per batch, on the
# file system of $TMPDIR) and for Redis (a redis-server started here on
# loopback without persistence, stopped by its PID).
#
#   bench/store-capacity.sh [-n RECORDS_PER_DAY] [-o results.tsv]
#
# RECORDS_PER_DAY (default 200,000) typical records are written (1-3
# recipients, two messages per tag, 10-day TTL) in batches of 256, as the
# Recorder writes them; one day of records is the unit that scales (each
# expiry day has its own hashes or bucket). Then 16 concurrent callers
# look records up, as untagged bounces do. The machine should be quiet:
# the figures are per core of this machine.
set -euo pipefail
N=200000 OUT=""
while getopts n:o: opt; do
  case $opt in
    n) N=$OPTARG ;; o) OUT=$OPTARG ;;
    *) echo "usage: $0 [-n RECORDS_PER_DAY] [-o FILE]" >&2; exit 2 ;;
  esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
command -v redis-server >/dev/null || { echo "needs redis-server (bash test/deps.sh)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bm-capacity.XXXXXX")
REDIS_PID=""
cleanup() {
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=""
for _ in $(seq 100); do
  p=$(( 20000 + RANDOM % 10000 ))
  if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { echo "no free port" >&2; exit 1; }
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --protected-mode no \
  --daemonize no --loglevel warning --dir "$WORK" >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
REDIS_VERSION=$(redis-cli -p "$PORT" info server | sed -n 's/^redis_version:\(.*\)\r*$/\1/p' | tr -d '\r')

run() { # package
  GOMAXPROCS=1 BM_CAPACITY_PER_DAY=$N BM_REDIS_ADDR=127.0.0.1:$PORT TMPDIR=$WORK \
    go test "./internal/cache/$1" -run '^$' -bench '^BenchmarkCapacity$' -benchtime 1x -count 1 | grep '^BenchmarkCapacity'
}
metric() { # line unit
  awk -v u="$2" '{ for (i = 2; i < NF; i++) if ($(i+1) == u) { print $i; exit } }' <<<"$1"
}

echo "store capacity: $N records (one day), 10-day TTL, $(nproc) CPUs, GOMAXPROCS=1; redis-server $REDIS_VERSION on loopback"
B=$(run boltstore)
R=$(run redisstore)

fmt() { printf '%-38s %-24s %-24s\n' "$@"; }
fmt "" "embedded" "redis"
fmt "bytes per record" "$(metric "$B" disk-B/record) (disk)" "$(metric "$R" B/record) (used_memory)"
fmt "  data pages / MEMORY USAGE per field" "$(metric "$B" data-B/record)" "$(metric "$R" MEMORY-USAGE-B/field)"
fmt "records written per second" "$(metric "$B" records/s)" "$(metric "$R" records/s)"
fmt "  CPU per record (us)" "$(metric "$B" cpu-us/record) (daemon)" "$(metric "$R" redis-us/record) (redis)"
fmt "lookups per second" "$(metric "$B" lookups/s)" "$(metric "$R" lookups/s)"
fmt "  CPU per lookup (us)" "$(metric "$B" cpu-us/lookup) (daemon)" "$(metric "$R" redis-us/lookup) (redis)"
fmt "GiB per 1M messages/day, 10 days" "$(metric "$B" 'GiB/(1M/day×10d)')" "$(metric "$R" 'GiB/(1M/day×10d)')"

if [ -n "$OUT" ]; then
  {
    printf 'store\trecords\tbytes_per_record\trecords_per_s\tlookups_per_s\tgib_per_1m_day_10d\n'
    printf 'embedded\t%s\t%s\t%s\t%s\t%s\n' "$N" "$(metric "$B" disk-B/record)" "$(metric "$B" records/s)" "$(metric "$B" lookups/s)" "$(metric "$B" 'GiB/(1M/day×10d)')"
    printf 'redis\t%s\t%s\t%s\t%s\t%s\n' "$N" "$(metric "$R" B/record)" "$(metric "$R" records/s)" "$(metric "$R" lookups/s)" "$(metric "$R" 'GiB/(1M/day×10d)')"
  } >"$OUT"
fi
