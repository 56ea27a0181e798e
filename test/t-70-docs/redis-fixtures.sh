#!/usr/bin/env bash
# Throwaway Redis servers for fleet.md inside the t-70-docs sandbox (its
# own network namespace; host names in its /etc/hosts): a standalone server
# redis1.example.net:6379, which three sentinels (sentinel1-3.example.net:26379)
# watch as master "bm-main", and a three-node cluster
# redis-node1-3.example.net:6379.
set -euo pipefail
D=$1
mkdir -p "$D"
common=(--save '' --appendonly no --daemonize no --protected-mode no --loglevel warning)
redis-server --bind 127.0.1.1 --port 6379 --dir "$D" "${common[@]}" > "$D/r1.log" 2>&1 &
for n in 1 2 3; do
  mkdir -p "$D/node$n" "$D/s$n"
  redis-server --bind "127.0.3.$n" --port 6379 --dir "$D/node$n" --cluster-enabled yes \
    --cluster-announce-ip "127.0.3.$n" --cluster-config-file "$D/node$n/nodes.conf" "${common[@]}" > "$D/node$n.log" 2>&1 &
done
for h in 127.0.1.1 127.0.3.1 127.0.3.2 127.0.3.3; do
  for _ in $(seq 50); do redis-cli -h "$h" ping >/dev/null 2>&1 && break; sleep 0.1; done
  [ "$(redis-cli -h "$h" ping)" = PONG ] || { echo "redis fixture $h did not start" >&2; exit 1; }
done
for n in 1 2 3; do
  cat > "$D/s$n/sentinel.conf" <<CONF
bind 127.0.2.$n
port 26379
dir $D/s$n
sentinel announce-ip 127.0.2.$n
sentinel monitor bm-main 127.0.1.1 6379 2
sentinel down-after-milliseconds bm-main 5000
CONF
  redis-sentinel "$D/s$n/sentinel.conf" --daemonize no --loglevel warning > "$D/s$n.log" 2>&1 &
done
timeout 30 redis-cli --cluster create 127.0.3.1:6379 127.0.3.2:6379 127.0.3.3:6379 --cluster-yes > "$D/cluster-create.log" 2>&1 \
  || { cat "$D/cluster-create.log" >&2; exit 1; }
for _ in $(seq 100); do
  redis-cli -h 127.0.3.1 cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
  sleep 0.1
done
redis-cli -h 127.0.3.1 cluster info | grep -q 'cluster_state:ok' || { echo "redis cluster fixture not ok" >&2; exit 1; }
for n in 1 2 3; do
  for _ in $(seq 50); do
    [ "$(redis-cli -h "127.0.2.$n" -p 26379 sentinel get-master-addr-by-name bm-main 2>/dev/null | head -1)" = 127.0.1.1 ] && break
    sleep 0.1
  done
  [ "$(redis-cli -h "127.0.2.$n" -p 26379 sentinel get-master-addr-by-name bm-main | head -1)" = 127.0.1.1 ] \
    || { echo "sentinel $n does not know bm-main" >&2; exit 1; }
done
echo "=== redis fixtures up: standalone, 3 sentinels (bm-main), 3-node cluster" >&2
