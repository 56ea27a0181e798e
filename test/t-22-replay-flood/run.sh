#!/usr/bin/env bash
# Replay limit and flood control through a real Postfix, on the embedded
# store: a valid tag takes at most as many bounces as its messages had
# recipients plus the slack, then it is refused as replayed; a recipient
# that gets more untagged bounces than the flood limit enters the strict
# state: refused in reject mode even during the grace period, marked
# "flood" in tag mode (the mode bounds every outcome). Sub-address
# extensions count as one recipient. The replay limit survives a restart
# of bounce-milter (the embedded store persists the tag counters); callout
# probes count nothing.
source "$(dirname "$0")/../lib.sh"
setup_dirs

PF_PORT=$(free_port); SUB_PORT=$(free_port); SINK_PORT=$(free_port); MILTER=$(free_port)
SINK_OUT=$T/sink.jsonl
KEYS=$T/keys
printf '5 replay-secret\n' > "$KEYS"; chmod 600 "$KEYS"
cat > "$T/bm.toml" <<CONF
data_dir = "$T/bm-data"
key_file = "$KEYS"
grace = "10d"
[listen]
milter = "inet:127.0.0.1:$MILTER"
[domains."example.com"]
mode = "reject"
since = 2020-01-01
[domains."tagmode.example"]
since = 2020-01-01
mode = "tag"
[domains."new.example"]
mode = "reject"
since = $(date -u +%F)
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
# Callout probes (MAIL FROM:<>, RCPT, QUIT) spend nothing.
for i in 1 2 3 4; do
  out=$(smtp "$PF_PORT" --from '<>' --to "$TAG" --quit-after RCPT)
  expect_reply "$out" '<-  250 ' "callout probe $i"
done
# A restart in the middle: the counters are in the embedded store.
stop_pid "$bm_PID"
start_bm bm --config "$T/bm.toml" --socketmap off
wait_port "$MILTER"
deliver "bounce 3 to the tag (slack), after a restart" "$PF_PORT" --from '<>' --to "$TAG"
out=$(smtp "$PF_PORT" --from '<>' --to "$TAG" --quit-after RCPT)
expect_reply "$out" '<\*\* 550 5\.7\.1 .*replayed' "bounce 4 to the tag"
ok "replay: 2 recipients + slack 1 = 3 bounces accepted (across a restart), the 4th refused as replayed"

# Flood: tag mode delivers untagged bounces with a fail verdict; past the
# recipient's null-sender limit the verdict says flood. user+1@, user+2@...
# are one recipient.
for i in 1 2 3; do
  deliver "untagged bounce $i in tag mode" "$PF_PORT" --from '<>' --to "dave+$i@tagmode.example"
done
deliver "untagged bounce 4 in tag mode (flood)" "$PF_PORT" --from '<>' --to dave+4@tagmode.example
sink_has $n '^X-Bounce-Check: fail (untagged bounce during a bounce flood' || fail "tag mode: no flood verdict"
grep -q 'flood: strict state entered' "$T/bm.log" || fail "entering the strict state was not logged"
[ "$(grep -c 'flood: strict state entered' "$T/bm.log")" = 1 ] || fail "strict state logged more than once"
# Another recipient is not affected.
deliver "untagged bounce to another recipient" "$PF_PORT" --from '<>' --to erin@tagmode.example
sink_has $n '^X-Bounce-Check: fail (untagged bounce; no evidence' || fail "another recipient: not a plain fail verdict"
ok "flood: past the limit (extensions counted as one) tag mode marks flood, logged once; others unaffected"

# In reject mode during the grace period, untagged bounces are accepted...
for i in 1 2 3; do
  deliver "untagged bounce $i during grace" "$PF_PORT" --from '<>' --to frank@new.example
done
sink_has $n '^X-Bounce-Check: neutral (untagged; grace' || fail "grace: no neutral verdict"
# ...until a flood: then refused.
out=$(smtp "$PF_PORT" --from '<>' --to frank@new.example)
expect_reply "$out" '<\*\* 550 5\.7\.1 .*flood' "untagged bounce 4 during grace (flood)"
ok "flood: in reject mode a flood is refused even during the grace period"
