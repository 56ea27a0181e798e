#!/usr/bin/env bash
# Operations against a real Postfix: SIGHUP with a new key (new tags signed
# with it, old tags still verify), SIGHUP with a broken config or key file
# (refused, old config in force, process alive), /metrics through promtool,
# /healthz, JSON decision lines, no key secret in the log, and SIGTERM in
# the middle of an SMTP DATA (the message in flight is still signed, new
# milter connections are refused, exit status 0).
source "$(dirname "$0")/../lib.sh"
setup_dirs

PF_PORT=$(free_port); SUB_PORT=$(free_port); SINK_PORT=$(free_port)
MILTER_PORT=$(free_port); SM_PORT=$(free_port); METRICS_PORT=$(free_port)
SINK_OUT=$T/sink.jsonl
KEYS=$T/keys
SECRET2=e2e-reload-secret-two-XQ3
SECRET3=e2e-reload-secret-three-PL8
SECRET4=e2e-reload-secret-four-in-a-bad-line-ZK1
METRICS=http://127.0.0.1:$METRICS_PORT

printf '2 %s\n' "$SECRET2" > "$KEYS"; chmod 600 "$KEYS"
write_config() { # extra TOML lines at the top level
  cat > "$T/bm.toml" <<CONF
data_dir = "$T/bm-data"
key_file = "$KEYS"
mode = "reject"
grace = "0s"
$1
[listen]
milter = "inet:127.0.0.1:$MILTER_PORT"
socketmap = "inet:127.0.0.1:$SM_PORT"
metrics = "127.0.0.1:$METRICS_PORT"
[domains."example.com"]
CONF
}
write_config ""

start_sink "$SINK_PORT" "$SINK_OUT"
start_bm bm --config "$T/bm.toml" --log-format json
wait_port "$MILTER_PORT"; wait_port "$METRICS_PORT"
PF_MILTER="inet:127.0.0.1:$MILTER_PORT" \
PF_EXTRA="recipient_canonical_maps = socketmap:inet:127.0.0.1:$SM_PORT:unbatv
recipient_canonical_classes = envelope_recipient" pf_up
n=0

submit() { # FROM: submission through Postfix; sets FROM_OUT to the relayed sender
  local out
  deliver "submission from $1" "$SUB_PORT" --from "$1" --to bob@example.org
  FROM_OUT=$(sink_line $n | json_field from)
}
bounce_to() { # TAG: a bounce to TAG must be delivered to alice@ with a pass verdict
  local out
  deliver "bounce to $1" "$PF_PORT" --from '<>' --to "$1"
  [ "$(sink_line $n | json_field to)" = alice@example.com ] || fail "bounce to $1 delivered to $(sink_line $n | json_field to)"
  sink_has $n '^X-Bounce-Check: pass' || fail "bounce to $1: no pass verdict"
}
refused_at_rcpt() { # TAG
  local out
  out=$(smtp "$PF_PORT" --from '<>' --to "$1" --quit-after RCPT)
  expect_reply "$out" '<\*\* 550 5\.7\.1 ' "bounce to $1"
}

# 0. Up: signing with key 2, /healthz 200.
[ "$(http_status "$METRICS/healthz")" = 200 ] || fail "/healthz: $(curl -s "$METRICS/healthz")"
submit alice@example.com
[[ $FROM_OUT == prvs=2?????????=alice@example.com ]] || fail "sender $FROM_OUT, want a key-2 tag"
TAG2=$FROM_OUT
ok "running: signed with key 2 ($TAG2), /healthz 200"

# (a) A new key appended and SIGHUP: new tags use key 3, old tags verify.
printf '3 %s\n' "$SECRET3" >> "$KEYS"
kill -HUP "$bm_PID"
wait_log "$T/bm.log" '"msg":"reloaded"'
submit alice@example.com
[[ $FROM_OUT == prvs=3?????????=alice@example.com ]] || fail "after reload: sender $FROM_OUT, want a key-3 tag"
TAG3=$FROM_OUT
[ "$("$BM" verify --key-file "$KEYS" "$TAG3")" = alice@example.com ] || fail "verify refused $TAG3"
bounce_to "$TAG2"
bounce_to "$TAG3"
refused_at_rcpt "${TAG3/=alice@/=mallory@}"
ok "SIGHUP with a new key: signed with key 3 ($TAG3); bounces to key-2 and key-3 tags pass"

# (b) Broken reloads are refused; the old configuration stays in force.
# b1: a config with a typo that would also switch checking off.
cp "$T/bm.toml" "$T/bm.toml.good"
write_config 'lifetime = 99'
sed -i 's/^mode = "reject"/mode = "off"/' "$T/bm.toml"
kill -HUP "$bm_PID"
wait_log "$T/bm.log" '"msg":"reload refused; the previous configuration stays in force".*lifetime = 99'
# b2: a valid config whose key file others can read.
write_config ""
sed -i "s|^key_file = .*|key_file = \"$T/keys-readable\"|" "$T/bm.toml"
cp "$KEYS" "$T/keys-readable"; chmod 644 "$T/keys-readable"
kill -HUP "$bm_PID"
wait_log "$T/bm.log" '"msg":"reload refused.*lets group or others read it' 1
# b3: the config restored, but a broken line in the key file (its error
# must name the line, never the secret).
cp "$T/bm.toml.good" "$T/bm.toml"
cp "$KEYS" "$T/keys.good"
printf '4%s\n' "$SECRET4" >> "$KEYS"
kill -HUP "$bm_PID"
wait_log "$T/bm.log" '"msg":"reload refused.*keys:[0-9]+: want' 1
cp "$T/keys.good" "$KEYS"
kill -0 "$bm_PID" 2>/dev/null || fail "bounce-milter died on a bad reload"
submit alice@example.com
[[ $FROM_OUT == prvs=3?????????=alice@example.com ]] || fail "after refused reloads: sender $FROM_OUT, want a key-3 tag"
refused_at_rcpt "${TAG2/=alice@/=mallory@}"
out=$(smtp "$PF_PORT" --from '<>' --to alice@example.com --body "Your message could not be delivered.")
expect_reply "$out" '<\*\* 550 5\.7\.1 .*no-evidence' "untagged bounce after refused reloads (mode must still be reject)"
ok "SIGHUP with a broken config, a readable key file, a broken key line: refused, logged, old config in force, process alive"

# (d) A reload swaps everything built from the configuration: a domain and
# a relay added by SIGHUP take effect at once, and a domain's own lifetime
# sets how long its records are kept (its tags' lifetime + 3 days).
NEWTAG=$("$BM" sign --key-file "$KEYS" bob@added.example)
refused_or_passed=$(smtp "$PF_PORT" --from '<>' --to "${NEWTAG/=bob@/=mallory@}" --quit-after RCPT)
expect_reply "$refused_or_passed" '<-  250 ' "before the reload: added.example is not ours"
relay_bounce() { # the original's topmost hop is out9.example.com
  smtp "$PF_PORT" --from '<>' --to alice@example.com --header "Subject: Undelivered Mail Returned to Sender" \
    --body "$(printf 'This is the mail system at host mx.remote.example.\n\nI am sorry to have to inform you that your message could not\nbe delivered to one or more recipients.\n\n<bob@remote.example>: host mx.remote.example said: 550 5.1.1 unknown user\n\n--- Original message headers ---\nReceived: from out9.example.com (out9.example.com [192.0.2.99])\n\tby mx.remote.example (Postfix) with ESMTPS id 1; %s\nDate: %s\nFrom: alice@example.com\nTo: bob@remote.example\nMessage-ID: <relay-%s@example.com>\nSubject: hi\n' "$(date -R)" "$(date -R)" "$RANDOM")"
}
out=$(relay_bounce)
expect_reply "$out" '<\*\* 550 5\.7\.1 .*no-evidence' "before the reload: out9 is not our relay"
cp "$T/bm.toml" "$T/bm.toml.before-d"
cat >> "$T/bm.toml" <<CONF
[domains."added.example"]
[domains."long.example"]
lifetime = 30
[inbound]
relays = ["out9.example.com"]
CONF
kill -HUP "$bm_PID"
wait_log "$T/bm.log" '"msg":"reloaded".*added.example' 1
out=$(smtp "$PF_PORT" --from '<>' --to "${NEWTAG/=bob@/=mallory@}" --quit-after RCPT)
expect_reply "$out" '<\*\* 550 5\.7\.1 .*bad-signature' "after the reload: added.example is ours"
out=$(relay_bounce)
expect_reply "$out" '<-  250 .*queued' "after the reload: out9 is our relay"
n=$((n+1)); sink_wait $n
sink_has $n '^X-Bounce-Check: pass (untagged; we sent the original: relay:out9.example.com' || fail "relay evidence not in the verdict"
deliver "submission from long.example" "$SUB_PORT" --from carol@long.example --to bob@example.org
wait_log "$T/bm.log" '"sender":"carol@long.example","verdict":"signed".*"record_ttl":"792h0m0s"' 1
grep -q '"sender":"alice@example.com","verdict":"signed".*"record_ttl":"240h0m0s"' "$T/bm.log" || fail "example.com records are not kept 10 days"
cp "$T/bm.toml.before-d" "$T/bm.toml"
kill -HUP "$bm_PID"
wait_log "$T/bm.log" '"msg":"reloaded"' 3
ok "SIGHUP: a domain and a relay added take effect at once; long.example's records live 33 days (lifetime 30 + 3), example.com's 10"

# Metrics: promtool accepts the exposition; the counters moved.
curl -sf "$METRICS/metrics" > "$T/metrics.txt" || fail "GET /metrics"
promtool check metrics < "$T/metrics.txt" > "$T/promtool.out" 2>&1 || { cat "$T/promtool.out" >&2; fail "promtool check metrics"; }
metric() { # NAME{LABELS}: its value, 0 when absent
  awk -v k="$1" '$1 == k { print $2; found=1 } END { if (!found) print 0 }' "$T/metrics.txt"
}
positive() { awk -v v="$(metric "$1")" -v w="${2:-1}" 'BEGIN { exit !(v + 0 >= w + 0) }' || fail "metric $1 = $(metric "$1"), want >= ${2:-1}"; }
positive 'bounce_milter_signed_total{domain="example.com",key="2"}' 1
positive 'bounce_milter_signed_total{domain="example.com",key="3"}' 2
positive 'bounce_milter_decisions_total{direction="inbound",domain="example.com",reason="valid-tag",verdict="accept"}' 2
positive 'bounce_milter_decisions_total{direction="inbound",domain="example.com",reason="bad-signature",verdict="reject"}' 2
positive 'bounce_milter_decisions_total{direction="inbound",domain="example.com",reason="no-evidence",verdict="reject"}' 1
positive 'bounce_milter_store_breaker_state{state="closed"}' 1
positive 'bounce_milter_store_writes_ok' 1
positive 'bounce_milter_store_records_written_total' 2
grep -q '^bounce_milter_build_info{goversion="go[0-9.]*",version="[^"]*"} 1$' "$T/metrics.txt" || fail "no build_info"
grep -q '^process_resident_memory_bytes ' "$T/metrics.txt" || fail "no process metrics"
ok "/metrics passes promtool check metrics; decision and signing counters moved"

# Logs: every decision line is JSON with the fields an operator searches by;
# no key secret anywhere.
python3 - "$T/bm.log" <<'PY' || fail "JSON decision lines"
import json, sys
n = 0
for line in open(sys.argv[1]):
    rec = json.loads(line)
    if rec.get("msg") != "decision":
        continue
    n += 1
    need = ["queue_id", "client", "sender", "verdict", "reason"] + (["rcpt"] if rec["direction"] == "inbound" else [])
    missing = [k for k in need if k not in rec]
    if missing:
        sys.exit(f"decision line lacks {missing}: {line}")
    if rec["queue_id"] == "" or rec["verdict"] == "":
        sys.exit(f"empty queue_id or verdict: {line}")
if n < 8:
    sys.exit(f"only {n} decision lines")
PY
for s in "$SECRET2" "$SECRET3" "$SECRET4"; do
  grep -qF -- "$s" "$T/bm.log" "$T/bm.out" && fail "the key secret $s is in the log"
done
ok "--log-format json: decision lines are JSON with queue_id, client, sender, rcpt, verdict, reason; no secret logged"

# (c) SIGTERM in the middle of DATA.
smtp_open "$SUB_PORT"
smtp_send "EHLO client.example.org"; smtp_reply 250
smtp_send "MAIL FROM:<alice@example.com>"; smtp_reply 250
smtp_send "RCPT TO:<bob@example.org>"; smtp_reply 250
smtp_send "DATA"; smtp_reply 354
smtp_send "Subject: in flight"
smtp_send "Message-ID: <inflight-1@example.com>"
smtp_send ""
smtp_send "first half of the body"
sleep 0.5
kill -TERM "$bm_PID"
wait_log "$T/bm.log" '"msg":"stopping"'
sleep 0.5
kill -0 "$bm_PID" 2>/dev/null || fail "bounce-milter exited with a milter session in flight"
# The milter listener is closed: a new connection is refused, /healthz says so.
if (exec 6<>"/dev/tcp/127.0.0.1/$MILTER_PORT") 2>/dev/null; then fail "milter port still accepts connections after SIGTERM"; fi
code=$(http_status "$METRICS/healthz")
[ "$code" = 503 ] || fail "/healthz while draining: $code, want 503"
grep -q "milter listener" <<<"$(curl -s "$METRICS/healthz")" || fail "/healthz does not name the milter listener"
# A new SMTP session is not served by the milter (Postfix: milter_default_action = accept).
submit carol@example.com
[ "$FROM_OUT" = carol@example.com ] || fail "new session after SIGTERM: sender $FROM_OUT"
grep -q "connect to Milter service inet:127.0.0.1:$MILTER_PORT: Connection refused" "$T/pf/log/maillog" || fail "Postfix did not find the milter gone"
# Now finish the message in flight: still signed.
smtp_send "second half of the body"
smtp_send "."; smtp_reply 250
smtp_send "QUIT"; smtp_reply 221
smtp_close
n=$((n+1)); sink_wait $n
from=$(sink_line $n | json_field from)
[[ $from == prvs=3?????????=alice@example.com ]] || fail "message in flight: sender $from, want a key-3 tag"
sink_has $n '^Subject: in flight' || fail "message in flight: wrong message"
rc=0; wait "$bm_PID" || rc=$?
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM, want 0"
grep -q '"msg":"stopped"' "$T/bm.log" || fail "no stopped line"
if grep -q '"msg":"shutdown"' "$T/bm.log"; then fail "shutdown reported an error (sessions cut off?)"; fi
ok "SIGTERM mid-DATA: the message in flight was signed ($from), new milter connections refused, exit 0"
