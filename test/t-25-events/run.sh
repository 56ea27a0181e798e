#!/usr/bin/env bash
# Bounce events through a real Postfix, on a Redis shared by two hosts:
# a DSN with several recipients to a valid tag (one hard, one soft), a
# delay notice, an untagged bounce with store evidence and an auto-reply
# each become events (reason, hard/soft), readable on the OTHER host with
# `bounce-milter events`; repeated hard bounces make a suppression; the
# webhook gets every event signed, after a 500 it is retried; backscatter
# makes no event; with Redis down mail still flows and the events are
# dropped and counted.
source "$(dirname "$0")/../lib.sh"
setup_dirs
(cd "$ROOT" && go build -o "$T/hooksink" ./test/hooksink) || fail "cannot build hooksink"

PF_PORT=$(free_port_low); SUB_PORT=$(free_port_low); SINK_PORT=$(free_port_low)
REDIS_PORT=$(free_port_low); MA=$(free_port_low); MB=$(free_port_low); HOOK_PORT=$(free_port_low)
SINK_OUT=$T/sink.jsonl
KEYS=$T/keys
printf '4 events-test-secret\n' > "$KEYS"; chmod 600 "$KEYS"
printf 'hook-key-0123456789abcdef\n' > "$T/hook.key"; chmod 600 "$T/hook.key"

start_redis "$REDIS_PORT"
"$T/hooksink" -addr "127.0.0.1:$HOOK_PORT" -out "$T/hooks.jsonl" -secret-file "$T/hook.key" > "$T/hooksink.log" 2>&1 &
PIDS+=($!)
wait_port "$HOOK_PORT"
start_sink "$SINK_PORT" "$SINK_OUT"

conf() { # NAME METRICS-PORT
  cat > "$T/$1.toml" <<CONF
data_dir = "$T/$1-data"
key_file = "$KEYS"
mode = "reject"
grace = "0s"
[listen]
milter = "unix:$T/$1/milter.sock"
socket_mode = "0666"
metrics = "127.0.0.1:$2"
[store]
backend = "redis"
[store.redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
[events]
webhook = "http://127.0.0.1:$HOOK_PORT/hook"
webhook_secret_file = "$T/hook.key"
[domains."example.com"]
CONF
}
conf a "$MA"; conf b "$MB"
start_bm bm-a --config "$T/a.toml"
start_bm bm-b --config "$T/b.toml"
wait_port "$MA"; wait_port "$MB"
PF_MILTER="unix:$T/a/milter.sock" pf_up
n=0

deliver "alice writes" "$SUB_PORT" --from alice@example.com --to a1@remote.example,a2@remote.example,a3@remote.example \
  --header "Message-Id: <ev-out-1@example.com>"
TAG=$(sink_line $n | json_field from)
[[ $TAG == prvs=4* ]] || fail "not signed: $TAG"
sleep 1

dsn() { # ACTION1 STATUS1 RCPT1 [ACTION2 STATUS2 RCPT2]: a DSN for alice's message
  local blocks="" i
  for ((i = 1; i <= $#; i += 3)); do
    blocks+=$'\n'"Final-Recipient: rfc822; ${@:i+2:1}"$'\n'"Action: ${@:i:1}"$'\n'"Status: ${@:i+1:1}"$'\n'"Diagnostic-Code: smtp; ${@:i+1:1} said no"$'\n'
  done
  printf 'This is the mail system at host mx.remote.example.\n\n--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.remote.example\n%s\n--B\nContent-Type: text/rfc822-headers\n\nDate: %s\nFrom: alice@example.com\nMessage-ID: <ev-out-1@example.com>\n\n--B--\n' "$blocks" "$(date -R)"
}
bounce() { # DESCRIPTION RCPT BODY...
  local desc=$1 rcpt=$2; shift 2
  deliver "$desc" "$PF_PORT" --from '<>' --to "$rcpt" \
    --add-header 'Content-Type: multipart/report; report-type=delivery-status; boundary="B"' --header "Subject: Delivery Status Notification" --body "$(dsn "$@")"
}
bounce "DSN, two recipients, to the tag" "$TAG" failed 5.1.1 a1@remote.example failed 4.2.2 a2@remote.example
bounce "delay notice to the tag" "$TAG" delayed 4.4.1 a3@remote.example
bounce "untagged DSN, store evidence" alice@example.com failed 5.1.1 a1@remote.example
deliver "auto-reply to the tag" "$PF_PORT" --from '<>' --to "$TAG" --header "Auto-Submitted: auto-replied" \
  --header "Subject: Out of office" --header "From: Bob <a3@remote.example>" --header "In-Reply-To: <ev-out-1@example.com>" \
  --body "I am away until Monday."
# Backscatter: refused, no event.
out=$(smtp "$PF_PORT" --from '<>' --to alice@example.com --add-header 'Content-Type: multipart/report; report-type=delivery-status; boundary="B"' \
  --body "$(dsn failed 5.1.1 victim@remote.example | sed 's/ev-out-1@example.com/spam-1@botnet.example/')")
expect_reply "$out" '<\*\* 550 5\.7\.1 ' "backscatter"

# The other host shows the fleet's events (written in batches: wait).
for _ in $(seq 50); do
  [ "$("$BM" events --url "http://127.0.0.1:$MB" --json | grep -c .)" -ge 5 ] && break
  sleep 0.2
done
"$BM" events --url "http://127.0.0.1:$MB" --json > "$T/events.jsonl" || fail "events on host B"
python3 - "$T/events.jsonl" <<'PY' || fail "events"
import json, sys
es = [json.loads(l) for l in open(sys.argv[1])]
def find(**kw):
    return [e for e in es if all(e.get(k) == v for k, v in kw.items())]
assert len(es) == 5, f"{len(es)} events: {es}"
assert find(kind="bounce", recipient="a1@remote.example", reason="userunknown", hard=True, evidence="valid-tag", sender="alice@example.com", message_id="ev-out-1@example.com"), es
assert find(kind="bounce", recipient="a2@remote.example", hard=False), es
assert find(kind="delay", recipient="a3@remote.example", hard=False), es
assert find(kind="bounce", recipient="a1@remote.example", evidence="store"), es
assert find(kind="autoreply", recipient="a3@remote.example", reason="vacation"), es
assert not [e for e in es if e["recipient"] == "victim@remote.example"], "backscatter became an event"
PY
ok "events: DSN with two recipients (hard, soft), delay, untagged with evidence, auto-reply; on the other host; none for backscatter"

# Suppressions: a1 hard-bounced twice.
sup=$("$BM" suppressions --url "http://127.0.0.1:$MB" --min-hard 2)
[ "$sup" = a1@remote.example ] || fail "suppressions: $sup"
sup3=$("$BM" suppressions --url "http://127.0.0.1:$MB" --min-hard 3) || fail "suppressions --min-hard 3: $sup3"
[ -z "$sup3" ] || fail "suppressions --min-hard 3 not empty: $sup3"
ok "suppressions: a1@remote.example after two hard bounces"

# The webhook: every event, signed (checked by the receiver), after a 500.
for _ in $(seq 100); do
  [ "$(grep -c . "$T/hooks.jsonl" 2>/dev/null || echo 0)" -ge 5 ] && break
  sleep 0.2
done
python3 - "$T/hooks.jsonl" <<'PY' || fail "webhook"
import json, sys
hs = [json.loads(l) for l in open(sys.argv[1])]
assert len(hs) == 5, f"{len(hs)} webhook events"
assert all(h["tries"] >= 2 for h in hs), hs
assert {h["event"]["kind"] for h in hs} == {"bounce", "delay", "autoreply"}, hs
PY
grep -q refused "$T/hooksink.log" && fail "the receiver refused a signature: $(cat "$T/hooksink.log")"
ok "webhook: 5 events received with valid signatures, each retried after a 500"

# Redis down: a genuine bounce still goes through; its events are dropped
# and counted.
rpid_var="REDIS_PID_$REDIS_PORT"
stop_pid "${!rpid_var}"
sleep 0.5
bounce "DSN to the tag, Redis down" "$TAG" failed 5.1.1 a4@remote.example
for _ in $(seq 50); do
  grep -q '^bounce_milter_events_total{outcome="dropped"} [1-9]' <<<"$(curl -s "http://127.0.0.1:$MA/metrics")" && break
  sleep 0.2
done
# (grep reads a copy: "curl | grep -q" fails under pipefail when grep
# stops reading before curl has written everything)
grep -q '^bounce_milter_events_total{outcome="dropped"} [1-9]' <<<"$(curl -s "http://127.0.0.1:$MA/metrics")" || fail "dropped events not counted: $(curl -s "http://127.0.0.1:$MA/metrics" | grep events_total)"
ok "Redis down: the bounce delivered, its event dropped and counted"
