#!/usr/bin/env bash
# Two bounce-milter processes (two MX hosts) sharing one real redis-server:
# a message signed and recorded through one is recognised when its bounce
# arrives at the other. Then Redis hung (SIGSTOP) and Redis stopped during
# the run: decisions keep their latency budget and follow the failure
# policy (untagged bounces tempfailed, valid tags accepted, outbound mail
# still signed), and no accepted message is lost.
source "$(dirname "$0")/../lib.sh"
setup_dirs
command -v redis-server >/dev/null || fail "redis-server missing (bash test/deps.sh)"

PF_PORT=$(free_port); SUB_PORT=$(free_port); SINK_PORT=$(free_port)
M1=$(free_port); M2=$(free_port); REDIS_PORT=$(free_port)
SINK_OUT=$T/sink.jsonl
KEYS=$T/keys
printf '3 fleet-secret\n' > "$KEYS"; chmod 600 "$KEYS"

start_redis "$REDIS_PORT"
start_sink "$SINK_PORT" "$SINK_OUT"
common=(--key-file "$KEYS" --domains example.com --grace 0s --socketmap off --redis "redis://127.0.0.1:$REDIS_PORT/0")
start_bm bm1 --data-dir "$T/bm1" --milter "inet:127.0.0.1:$M1" "${common[@]}"
start_bm bm2 --data-dir "$T/bm2" --milter "inet:127.0.0.1:$M2" "${common[@]}"
wait_port "$M1"; wait_port "$M2"
grep -q 'store="redis standalone"' "$T/bm1.log" || fail "bm1 does not use Redis"
# Host A (bm1) sends our users' mail; host B (bm2) is the MX that gets bounces.
PF_SUB_ARGS="-o smtpd_milters=inet:127.0.0.1:$M1" PF_MX_ARGS="-o smtpd_milters=inet:127.0.0.1:$M2" pf_up
n=0

bounce_body() { # message-id
  printf 'This is the mail system at host mx.example.org.\n\nI am sorry to have to inform you that your message could not\nbe delivered to one or more recipients.\n\n<bob@example.org>: host mx.example.org said: 550 5.1.1 unknown user\n\n--- Original message headers ---\nReturn-Path: <alice@example.com>\nMessage-Id: <%s>\nFrom: alice@example.com\nTo: bob@example.org\nSubject: hi\n' "$1"
}

# 1. Signed through host A, its bounce recognised at host B.
deliver "send through host A" "$SUB_PORT" --from alice@example.com --to bob@example.org --header "Message-Id: <fleet-1@example.com>"
TAG=$(sink_line $n | json_field from)
[[ $TAG == prvs=3* ]] || fail "host A did not sign: $TAG"
sleep 0.5 # the sent record is written in the background
deliver "untagged bounce of host A's message at host B" "$PF_PORT" --from '<>' --to alice@example.com --header "Subject: Undelivered Mail Returned to Sender" --body "$(bounce_body fleet-1@example.com)"
sink_has $n '^X-Bounce-Check: pass (untagged; we sent the original: store:' || fail "host B: no store evidence"
ok "fleet: host B recognises the bounce of host A's message through Redis"

# A bounce for a message nobody sent is still refused at host B.
out=$(smtp "$PF_PORT" --from '<>' --to alice@example.com --body "$(bounce_body forged-99@example.com)")
expect_reply "$out" '<\*\* 550 5\.7\.1 ' "backscatter at host B"
ok "fleet: backscatter refused at host B"

# 2. Redis hung: SIGSTOP. Each decision stays within its budget.
eval "rpid=\$REDIS_PID_$REDIS_PORT"
kill -STOP "$rpid"
t0=$(now_ms)
out=$(smtp "$PF_PORT" --from '<>' --to alice@example.com --body "$(bounce_body fleet-1@example.com)")
t1=$(now_ms)
expect_reply "$out" '<\*\* 451 4\.3\.0 ' "untagged bounce while Redis hangs: tempfail"
[ $((t1 - t0)) -lt 3000 ] || fail "untagged bounce with Redis hung took $((t1 - t0)) ms"
ok "Redis hung: untagged bounce tempfailed in $((t1 - t0)) ms"
t0=$(now_ms)
out=$(smtp "$PF_PORT" --from '<>' --to "$TAG")
t1=$(now_ms)
expect_reply "$out" '<-  250 .*queued' "valid tag while Redis hangs"
n=$((n+1)); sink_wait $n
[ $((t1 - t0)) -lt 3000 ] || fail "valid-tag bounce with Redis hung took $((t1 - t0)) ms"
ok "Redis hung: valid-tag bounce accepted in $((t1 - t0)) ms"
t0=$(now_ms)
out=$(smtp "$SUB_PORT" --from carol@example.com --to bob@example.org)
t1=$(now_ms)
expect_reply "$out" '<-  250 .*queued' "outbound while Redis hangs"
n=$((n+1)); sink_wait $n
[[ $(sink_line $n | json_field from) == prvs=3*=carol@example.com ]] || fail "outbound not signed while Redis hangs"
[ $((t1 - t0)) -lt 3000 ] || fail "outbound with Redis hung took $((t1 - t0)) ms"
ok "Redis hung: outbound still signed, in $((t1 - t0)) ms"
kill -CONT "$rpid"

# 3. Redis stopped.
stop_pid "$rpid"
t0=$(now_ms)
out=$(smtp "$PF_PORT" --from '<>' --to alice@example.com --body "$(bounce_body fleet-1@example.com)")
t1=$(now_ms)
expect_reply "$out" '<\*\* 451 4\.3\.0 ' "untagged bounce with Redis down: tempfail"
[ $((t1 - t0)) -lt 3000 ] || fail "untagged bounce with Redis down took $((t1 - t0)) ms"
deliver "valid tag with Redis down" "$PF_PORT" --from '<>' --to "$TAG"
ok "Redis stopped: untagged tempfailed in $((t1 - t0)) ms, valid tag accepted"

# 4. Nothing accepted was lost: every accepted message reached the sink.
accepted=$(grep -c 'status=sent' "$T/pf/log/maillog" || true)
[ "$accepted" -eq "$n" ] || fail "Postfix delivered $accepted messages, the sink has $n"
postqueue -c "$T/pf/etc" -p | grep -q 'Mail queue is empty' || fail "mail left in the queue"
ok "no accepted message lost ($n delivered)"
