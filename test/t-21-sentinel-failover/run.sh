#!/usr/bin/env bash
# bounce-milter on Redis Sentinel (a master, a replica, one sentinel with
# quorum 1), with a failover in the middle of the run: the milter keeps
# deciding correctly after the new master is elected, and records written
# before the failover are still found.
source "$(dirname "$0")/../lib.sh"
setup_dirs
command -v redis-sentinel >/dev/null || fail "redis-sentinel missing (bash test/deps.sh)"

PF_PORT=$(free_port); SUB_PORT=$(free_port); SINK_PORT=$(free_port); MILTER=$(free_port)
R1=$(free_port); R2=$(free_port); SP=$(free_port)
SINK_OUT=$T/sink.jsonl
KEYS=$T/keys
printf '4 sentinel-secret\n' > "$KEYS"; chmod 600 "$KEYS"

start_redis "$R1"
mkdir -p "$T/redis-$R2"
redis-server --bind 127.0.0.1 --port "$R2" --save '' --appendonly no --dir "$T/redis-$R2" \
  --replicaof 127.0.0.1 "$R1" --logfile "$T/redis-$R2/log" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$R2"
mkdir -p "$T/sentinel"
cat > "$T/sentinel/sentinel.conf" <<CONF
bind 127.0.0.1
port $SP
dir $T/sentinel
logfile $T/sentinel/log
sentinel monitor mymaster 127.0.0.1 $R1 1
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 5000
CONF
redis-sentinel "$T/sentinel/sentinel.conf" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$SP"
for _ in $(seq 100); do
  [ "$(redis-cli -p "$R2" info replication | tr -d '\r' | grep -c 'master_link_status:up')" = 1 ] && break
  sleep 0.1
done

start_sink "$SINK_PORT" "$SINK_OUT"
start_bm bm --data-dir "$T/bm" --key-file "$KEYS" --domains example.com --grace 0s --socketmap off \
  --milter "inet:127.0.0.1:$MILTER" --redis "redis-sentinel://127.0.0.1:$SP/mymaster"
wait_port "$MILTER"
PF_MILTER="inet:127.0.0.1:$MILTER" pf_up
n=0

bounce_body() { # message-id
  printf 'Delivery to the following recipient failed permanently:\n\n     bob@example.org\n\n----- Original message -----\n\nMessage-Id: <%s>\nFrom: alice@example.com\nTo: bob@example.org\nSubject: hi\n' "$1"
}
send_and_bounce() { # id
  deliver "send $1" "$SUB_PORT" --from alice@example.com --to bob@example.org --header "Message-Id: <$1>"
}
check_bounce() { # id
  deliver "bounce of $1" "$PF_PORT" --from '<>' --to alice@example.com --body "$(bounce_body "$1")"
  sink_has $n '^X-Bounce-Check: pass (untagged; we sent the original: store:' || fail "bounce of $1: no store evidence"
}

send_and_bounce before@example.com
sleep 0.5
check_bounce before@example.com
ok "before the failover: bounce recognised through Sentinel"

# The sentinel learns of the replica from the master's INFO (every 10 s);
# a failover asked before that finds no replica to promote.
for _ in $(seq 300); do
  redis-cli -p "$SP" sentinel replicas mymaster 2>/dev/null | tr -d '\r' | grep -qx "$R2" && break
  sleep 0.1
done
for _ in $(seq 50); do
  [ "$(redis-cli -p "$SP" sentinel failover mymaster 2>&1 | tr -d '\r')" = OK ] && break
  sleep 0.2
done
for _ in $(seq 150); do
  m=$(redis-cli -p "$SP" sentinel get-master-addr-by-name mymaster | tr -d '\r' | tail -1)
  [ "$m" = "$R2" ] && break
  sleep 0.1
done
[ "$m" = "$R2" ] || fail "sentinel did not elect the replica (master port $m)"
ok "failover: the replica on port $R2 is the new master"

# Right after the election the client may need a moment to follow; the
# failure policy tempfails meanwhile (a real MTA retries), so allow a few tries.
recognised=0
for _ in $(seq 20); do
  out=$(smtp "$PF_PORT" --from '<>' --to alice@example.com --header "Subject: Delivery Status Notification (Failure)" --body "$(bounce_body before@example.com)")
  if grep -qE '<-  250 .*queued' <<<"$out"; then recognised=1; n=$((n+1)); sink_wait $n; break; fi
  grep -qE '<\*\* 451 ' <<<"$out" || { echo "$out"; fail "unexpected reply during failover"; }
  sleep 0.5
done
[ $recognised = 1 ] || fail "record from before the failover not found after it"
sink_has $n '^X-Bounce-Check: pass (untagged; we sent the original: store:' || fail "after failover: no store evidence"
ok "after the failover: the record written before it is still found"

send_and_bounce after@example.com
sleep 0.5
check_bounce after@example.com
out=$(smtp "$PF_PORT" --from '<>' --to alice@example.com --body "$(bounce_body never-sent@example.com)")
expect_reply "$out" '<\*\* 550 5\.7\.1 ' "backscatter after failover"
ok "after the failover: new records recognised, backscatter refused"
