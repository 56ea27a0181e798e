#!/usr/bin/env bash
# Replay limit and flood control through a real Postfix, on the embedded
# store: a valid tag takes at most as many bounces as its messages had
# recipients plus the slack, then it is refused as replayed; a recipient
# that gets more untagged bounces than the flood limit enters the strict
# state, where untagged bounces are refused even in tag mode. Both survive
# a restart of bounce-milter (the embedded store persists the tag counters).
source "$(dirname "$0")/../lib.sh"
setup_dirs

PF_PORT=$(free_port); SUB_PORT=$(free_port); SINK_PORT=$(free_port); MILTER=$(free_port)
SINK_OUT=$T/sink.jsonl
KEYS=$T/keys
printf '5 replay-secret\n' > "$KEYS"; chmod 600 "$KEYS"
cat > "$T/bm.toml" <<CONF
data_dir = "$T/bm-data"
key_file = "$KEYS"
grace = "0s"
[listen]
milter = "inet:127.0.0.1:$MILTER"
[domains."example.com"]
mode = "reject"
[domains."tagmode.example"]
mode = "tag"
[store]
replay_slack = 1
[store.flood]
recipient_limit = 3
window = "10m"
strict_for = "1h"
CONF

start_sink "$SINK_PORT" "$SINK_OUT"
start_bm bm --config "$T/bm.toml" --socketmap off
wait_port "$MILTER"
PF_MILTER="inet:127.0.0.1:$MILTER" pf_up
n=0

# One message to two recipients: its tag takes 2 + 1 (slack) bounces.
deliver "signed message" "$SUB_PORT" --from alice@example.com --to bob@example.org,carol@example.org
TAG=$(sink_line $n | json_field from)
[[ $TAG == prvs=5* ]] || fail "not signed: $TAG"
sleep 0.5
for i in 1 2; do
  deliver "bounce $i to the tag" "$PF_PORT" --from '<>' --to "$TAG"
done
# A restart in the middle: the counters are in the embedded store.
stop_pid "$bm_PID"
start_bm bm --config "$T/bm.toml" --socketmap off
wait_port "$MILTER"
deliver "bounce 3 to the tag (slack), after a restart" "$PF_PORT" --from '<>' --to "$TAG"
out=$(smtp "$PF_PORT" --from '<>' --to "$TAG" --quit-after RCPT)
expect_reply "$out" '<\*\* 550 5\.7\.1 .*replayed' "bounce 4 to the tag"
ok "replay: 2 recipients + slack 1 = 3 bounces accepted (across a restart), the 4th refused as replayed"

# Flood: tag mode delivers untagged bounces with a fail verdict, until the
# recipient's null-sender count passes the limit.
for i in 1 2 3; do
  deliver "untagged bounce $i in tag mode" "$PF_PORT" --from '<>' --to dave@tagmode.example
done
out=$(smtp "$PF_PORT" --from '<>' --to dave@tagmode.example)
expect_reply "$out" '<\*\* 550 5\.7\.1 .*flood' "untagged bounce 4 in tag mode (flood)"
grep -q 'flood: strict state entered' "$T/bm.log" || fail "entering the strict state was not logged"
[ "$(grep -c 'flood: strict state entered' "$T/bm.log")" = 1 ] || fail "strict state logged more than once"
# Another recipient is not affected.
deliver "untagged bounce to another recipient" "$PF_PORT" --from '<>' --to erin@tagmode.example
ok "flood: the 4th untagged bounce to one recipient refused even in tag mode, logged once; others unaffected"
