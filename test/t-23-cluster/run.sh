#!/usr/bin/env bash
# A fleet on a real Redis Cluster: three bounce-milter processes behind
# three Postfix instances (hosts A, B, C) share a 3-master cluster with one
# replica each. A bounce of a message signed through host A is recognised
# on hosts B and C; the replay budget of a tag and the flood counter of a
# recipient are counted across the fleet; then, while the three hosts
# sign a stream of mail, one master is killed and its replica promoted:
# every message Postfix accepted is delivered (unique tokens, counted at
# the sink), signed, and the fleet recognises bounces again afterwards.
source "$(dirname "$0")/../lib.sh"
setup_dirs
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || fail "redis-server/redis-cli missing (bash test/deps.sh)"

# Cluster nodes need their port + 10000 (the cluster bus) free as well.
cluster_port() {
  local p
  for _ in $(seq 200); do
    p=$(free_port_low)
    [ "$p" -lt 22000 ] || continue
    ss -Htan "sport = :$((p + 10000))" 2>/dev/null | grep -q . && continue
    echo "$p"; return
  done
  fail "no free cluster port"
}
RP=()
for i in 1 2 3 4 5 6; do
  p=$(cluster_port)
  start_redis "$p" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000
  RP+=("$p")
done
nodes=()
for p in "${RP[@]}"; do nodes+=("127.0.0.1:$p"); done
redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$T/cluster-create.log" 2>&1 \
  || { cat "$T/cluster-create.log" >&2; fail "redis-cli --cluster create"; }
cluster_ok() { # port
  redis-cli -p "$1" cluster info 2>/dev/null | tr -d '\r' | grep -q '^cluster_state:ok'
}
for _ in $(seq 150); do
  all=1
  for p in "${RP[@]}"; do cluster_ok "$p" || all=0; done
  linked=$(for p in "${RP[@]}"; do redis-cli -p "$p" info replication 2>/dev/null; done | tr -d '\r' | awk '/^master_link_status:up/ {n++} END {print n + 0}')
  [ "$all" = 1 ] && [ "$linked" = 3 ] && break
  sleep 0.1
done
[ "$all" = 1 ] && [ "$linked" = 3 ] || fail "cluster not ready: state ok on all=$all, replicas linked=$linked"
ok "Redis Cluster: 3 masters, 3 replicas"

SINK_PORT=$(free_port); SINK_OUT=$T/sink.jsonl
KEYS=$T/keys
printf '7 cluster-secret\n' > "$KEYS"; chmod 600 "$KEYS"
URL="redis-cluster://127.0.0.1:${RP[0]},127.0.0.1:${RP[1]},127.0.0.1:${RP[2]}"
start_sink "$SINK_PORT" "$SINK_OUT"
declare -A MP PP SP
for h in A B C; do
  MP[$h]=$(free_port); PP[$h]=$(free_port); SP[$h]=$(free_port)
  cat > "$T/bm$h.toml" <<CONF
data_dir = "$T/bm$h-data"
key_file = "$KEYS"
grace = "0s"
[listen]
milter = "inet:127.0.0.1:${MP[$h]}"
[domains."example.com"]
mode = "reject"
[domains."tagmode.example"]
mode = "tag"
[store]
replay_slack = 1
[store.redis]
url = "$URL"
[store.flood]
recipient_limit = 3
CONF
  start_bm "bm$h" --config "$T/bm$h.toml" --socketmap off
done
for h in A B C; do
  wait_port "${MP[$h]}"
  grep -q 'store="redis cluster"' "$T/bm$h.log" || fail "host $h does not use the cluster"
  PF_DIR=$T/pf$h PF_PORT=${PP[$h]} SUB_PORT=${SP[$h]} PF_MILTER="inet:127.0.0.1:${MP[$h]}" pf_up
done
n=0

bounce_body() { # message-id [sender]
  local u=${2:-alice@example.com}
  printf 'This is the mail system at host mx.example.org.\n\nI am sorry to have to inform you that your message could not\nbe delivered to one or more recipients.\n\n<bob@example.org>: host mx.example.org said: 550 5.1.1 unknown user\n\n--- Original message headers ---\nReturn-Path: <%s>\nMessage-Id: <%s>\nFrom: %s\nTo: bob@example.org\nSubject: hi\n' "$u" "$1" "$u"
}
# recognised HOST MSGID: an untagged bounce of MSGID at HOST passes on store evidence.
recognised() {
  deliver "untagged bounce of $2 at host $1" "${PP[$1]}" --from '<>' --to alice@example.com \
    --header "Subject: Undelivered Mail Returned to Sender" --body "$(bounce_body "$2")"
  sink_has $n '^X-Bounce-Check: pass (untagged; we sent the original: store:' || fail "host $1: no store evidence for $2"
}

# 1. Signed through host A, its bounce recognised on hosts B and C.
deliver "send through host A" "${SP[A]}" --from alice@example.com --to bob@example.org --header "Message-Id: <cluster-1@example.com>"
TAG=$(sink_line $n | json_field from)
[[ $TAG == prvs=7* ]] || fail "host A did not sign: $TAG"
sleep 0.5 # records are written in the background, in batches
recognised B cluster-1@example.com
recognised C cluster-1@example.com
out=$(smtp "${PP[C]}" --from '<>' --to alice@example.com --body "$(bounce_body never-sent@example.com)")
expect_reply "$out" '<\*\* 550 5\.7\.1 ' "backscatter at host C"
ok "fleet: a message signed on host A is recognised on hosts B and C; backscatter refused"

# 2. Replay budget shared: one recipient + slack 1 = two bounces, wherever
# they arrive.
deliver "a one-recipient message through host B" "${SP[B]}" --from erin@example.com --to frank@example.org
RTAG=$(sink_line $n | json_field from)
sleep 0.5
deliver "bounce 1 to the tag at host A" "${PP[A]}" --from '<>' --to "$RTAG"
deliver "bounce 2 to the tag at host C" "${PP[C]}" --from '<>' --to "$RTAG"
out=$(smtp "${PP[B]}" --from '<>' --to "$RTAG" --quit-after RCPT)
expect_reply "$out" '<\*\* 550 5\.7\.1 .*replayed' "bounce 3 to the tag at host B"
ok "replay: the tag's budget is counted across hosts (A, C accepted; B refused as replayed)"

# 3. Flood counter shared: three untagged bounces to one recipient in tag
# mode, one per host, then the fourth is in the flood (tag mode marks it so;
# the mode bounds every outcome).
for h in A B C; do
  deliver "untagged bounce to dave@tagmode.example at host $h" "${PP[$h]}" --from '<>' --to dave@tagmode.example
done
sink_has $n '^X-Bounce-Check: fail (untagged bounce; no evidence' || fail "third untagged bounce: not a plain fail verdict"
deliver "fourth untagged bounce to dave@tagmode.example at host A" "${PP[A]}" --from '<>' --to dave@tagmode.example
sink_has $n '^X-Bounce-Check: fail (untagged bounce during a bounce flood' || fail "fourth untagged bounce: no flood verdict"
ok "flood: the recipient's count is shared (3 on A, B, C; the 4th, on A, in the flood)"

# 4. A master killed under load, its replica promoted: no accepted mail lost.
touch "$T/load.on"
load() { # host
  local i=0 tok out
  while [ -e "$T/load.on" ]; do
    i=$((i + 1)); tok="[$1-$i]"
    out=$(smtp "${SP[$1]}" --from "load$i@example.com" --to "dest$i@example.org" --header "Subject: load $tok")
    if grep -qE '<-  250 .*queued' <<<"$out"; then echo "$tok" >> "$T/accepted"; else echo "$tok" >> "$T/not-accepted"; fi
  done
}
load A & LA=$!; load B & LB=$!; load C & LC=$!
PIDS+=("$LA" "$LB" "$LC")
sleep 3
# The victim: a master, and the replica that follows it.
victim_id=$(redis-cli -p "${RP[0]}" cluster nodes | awk '$3 ~ /master/ && $3 !~ /fail/ {print $1; exit}')
victim=$(redis-cli -p "${RP[0]}" cluster nodes | awk -v id="$victim_id" '$1 == id {split($2, a, "[:@]"); print a[2]}')
replica=$(redis-cli -p "${RP[0]}" cluster nodes | awk -v id="$victim_id" '$4 == id {split($2, a, "[:@]"); print a[2]}')
[ -n "$victim" ] && [ -n "$replica" ] || fail "cannot find a master and its replica"
eval "vpid=\$REDIS_PID_$victim"
killed=$(now_ms)
kill -9 "$vpid"
for _ in $(seq 200); do
  redis-cli -p "$replica" info replication 2>/dev/null | tr -d '\r' | grep -q '^role:master' && cluster_ok "$replica" && break
  sleep 0.1
done
redis-cli -p "$replica" info replication | tr -d '\r' | grep -q '^role:master' || fail "replica $replica not promoted"
promoted=$(now_ms)
sleep 3
rm -f "$T/load.on"
wait "$LA" "$LB" "$LC" 2>/dev/null || true
ok "master $victim killed; replica $replica promoted after $((promoted - killed)) ms"

accepted=$(wc -l < "$T/accepted")
[ "$accepted" -gt 30 ] || fail "only $accepted messages accepted under load"
for h in A B C; do
  for _ in $(seq 300); do
    postqueue -c "$T/pf$h/etc" -p 2>/dev/null | grep -q 'Mail queue is empty' && break
    sleep 0.1
  done
  postqueue -c "$T/pf$h/etc" -p | grep -q 'Mail queue is empty' || fail "mail left in host $h's queue"
done
python3 - "$SINK_OUT" "$T/accepted" <<'PY' || fail "accepted mail lost or unsigned"
import json, re, sys
got, unsigned = set(), []
for line in open(sys.argv[1]):
    m = json.loads(line)
    for tok in re.findall(r"^Subject: load (\[[ABC]-\d+\])", m["data"], re.M):
        got.add(tok)
        if not m["from"].startswith("prvs=7"):
            unsigned.append(tok)
want = [l.strip() for l in open(sys.argv[2]) if l.strip()]
lost = [t for t in want if t not in got]
print(f"accepted {len(want)}, delivered {len(got & set(want))}, lost {len(lost)}, unsigned {len(unsigned)}")
sys.exit(1 if lost or unsigned else 0)
PY
refused=$( [ -e "$T/not-accepted" ] && wc -l < "$T/not-accepted" || echo 0)
ok "no accepted mail lost: $accepted accepted (and signed) during the failover, all delivered; $refused not accepted"

# After the promotion the fleet recognises bounces again: a message signed
# on host C, its bounce at host A (to another user: alice@ has had her
# flood limit's worth of bounces).
n=$(wc -l < "$SINK_OUT")
deliver "send through host C after the failover" "${SP[C]}" --from grace@example.com --to bob@example.org --header "Message-Id: <cluster-2@example.com>"
sleep 1.5 # written in the background; after an outage retries come at most a second apart
for i in $(seq 50); do
  out=$(smtp "${PP[A]}" --from '<>' --to grace@example.com --header "Subject: Undelivered Mail Returned to Sender" --body "$(bounce_body cluster-2@example.com grace@example.com)")
  grep -qE '<-  250 .*queued' <<<"$out" && break
  expect_reply "$out" '<\*\* 451 4\.3\.0 ' "bounce after the failover (pass or, while the cluster settles, tempfail)"
  sleep 0.2
done
expect_reply "$out" '<-  250 .*queued' "bounce of host C's message at host A after the failover"
n=$((n + 1)); sink_wait $n
sink_has $n '^X-Bounce-Check: pass (untagged; we sent the original: store:' || fail "host A: no store evidence after the failover"
ok "after the failover: a message signed on host C is recognised on host A"
