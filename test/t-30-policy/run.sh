#!/usr/bin/env bash
# The policy-delegation service inside a real Postfix (check_policy_service):
# A. policy only (no milter): forged, expired and unknown-key tags refused
#    at RCPT whoever sends, callout probes pass and count nothing, bounces
#    to valid tags counted at END-OF-MESSAGE, untagged bounces marked "not
#    checked" (no body to read: never refused), verdict headers prepended;
# B. policy + milter from one config, both on unix sockets: tags
#    refused at RCPT by the policy service, untagged bounces left to the
#    milter (decided after the body), one verdict header;
# C. the service stopped: Postfix goes on (smtpd_policy_service_default_action).
source "$(dirname "$0")/../lib.sh"
setup_dirs

PF_PORT=$(free_port_low); SUB_PORT=$(free_port_low); SINK_PORT=$(free_port_low)
SM_PORT=$(free_port_low); POL_PORT=$(free_port_low)
# B's milter listens on a unix socket: a port picked now could be taken as
# an ephemeral port by the time B starts.
MILTER_SOCK=$T/milter.sock
SINK_OUT=$T/sink.jsonl
KEYS=$T/keys
POL_SOCK=$T/policy.sock

printf '2 e2e-policy-secret\n' > "$KEYS"; chmod 600 "$KEYS"
cat > "$T/bm.toml" <<CONF
data_dir = "$T/bm-data"
key_file = "$KEYS"
mode = "reject"
grace = "0s"
[listen]
socketmap = "inet:127.0.0.1:$SM_PORT"
policy = "inet:127.0.0.1:$POL_PORT"
socket_mode = "0666"
[domains."example.com"]
[domains."tagmode.example"]
mode = "tag"
CONF

count_headers() { # N: copies of X-Bounce-Check in message N
  local data
  data=$(sink_line "$1" | json_field data)
  grep -c '^X-Bounce-Check:' <<<"$data" || true
}

start_sink "$SINK_PORT" "$SINK_OUT"
start_bm bm --config "$T/bm.toml" --milter off
wait_port "$POL_PORT"
# The listeners open before serve prints what it runs.
for _ in $(seq 50); do grep -q '^smtpd_policy_service_default_action' "$T/bm.out" && break; sleep 0.1; done
grep -q "policy inet:127.0.0.1:$POL_PORT" "$T/bm.out" || fail "serve does not list the policy service: $(cat "$T/bm.out")"
grep -q 'milter inet' "$T/bm.out" && fail "milter running although --milter off"
grep -q "^smtpd_data_restrictions = check_policy_service { inet:127.0.0.1:$POL_PORT" "$T/bm.out" || fail "serve does not print the policy lines"
PF_EXTRA="recipient_canonical_maps = socketmap:inet:127.0.0.1:$SM_PORT:unbatv
recipient_canonical_classes = envelope_recipient
smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:$POL_PORT
smtpd_data_restrictions = check_policy_service inet:127.0.0.1:$POL_PORT
smtpd_policy_service_default_action = DUNNO" pf_up
n=0

TAG=$("$BM" sign --key-file "$KEYS" alice@example.com)
forged=${TAG/=alice@/=mallory@}
expired=$("$BM" sign --key-file "$KEYS" --date "$(date -u -d '20 days ago' +%F)" alice@example.com)
unknown=prvs=7${TAG:6}

# A1. Forged, expired, unknown-key tags: 550 at RCPT, from the policy service.
for bad in "$forged" "$expired" "$unknown" "${forged/example.com/EXAMPLE.COM}"; do
  out=$(smtp "$PF_PORT" --from '<>' --to "$bad" --quit-after RCPT)
  expect_reply "$out" '<\*\* 550 5\.7\.1 .*(bad-signature|expired|unknown-key)' "policy only: tag $bad"
done
grep -q 'service=policy state=RCPT .*verdict=reject .*reason=bad-signature' "$T/bm.log" || fail "no policy decision logged for the forged tag"
grep -q 'reason=expired' "$T/bm.log" && grep -q 'reason=unknown-key' "$T/bm.log" || fail "expired/unknown-key decisions not logged"
ok "policy only: forged, expired, unknown-key tags refused at RCPT"

# A1b. From MAILER-DAEMON too, and from an ordinary sender (an auto-reply):
# a forged tag of ours is never a real mailbox.
out=$(smtp "$PF_PORT" --from MAILER-DAEMON@mx.example.org --to "$forged" --quit-after RCPT)
expect_reply "$out" '<\*\* 550 5\.7\.1 .*bad-signature' "MAILER-DAEMON sender"
out=$(smtp "$PF_PORT" --from bob@example.org --to "$forged" --quit-after RCPT)
expect_reply "$out" '<\*\* 550 5\.7\.1 .*bad-signature' "ordinary sender to a forged tag"
ok "policy only: forged tag refused from MAILER-DAEMON and from an ordinary sender"

# A2. A bounce to the valid tag: delivered untagged, with the pass header.
deliver "policy only: valid tag" "$PF_PORT" --from '<>' --to "$TAG" --header "Subject: Undelivered Mail Returned to Sender"
[ "$(sink_line $n | json_field to)" = alice@example.com ] || fail "valid tag not stripped: $(sink_line $n | json_field to)"
sink_has $n '^X-Bounce-Check: pass (valid prvs tag, key 2)' || fail "no pass header prepended"
[ "$(count_headers $n)" = 1 ] || fail "$(count_headers $n) verdict headers"
ok "policy only: valid tag delivered to alice@example.com with a pass header"

# A3. Callout probe to an untagged address passes RCPT.
out=$(smtp "$PF_PORT" --from '<>' --to alice@example.com --quit-after RCPT)
expect_reply "$out" '<-  250 ' "callout probe"
ok "policy only: callout probe (MAIL FROM:<>, RCPT, QUIT) passes"

# A4. Untagged bounce, mode reject: delivered and marked "not checked": the
# policy service cannot read the body, and refusing on the envelope alone
# would lose genuine bounces and read receipts to untagged addresses.
deliver "untagged bounce, mode reject" "$PF_PORT" --from '<>' --to alice@example.com --header "Subject: Delivery Status Notification (Failure)"
sink_has $n '^X-Bounce-Check: neutral (untagged bounce; not checked here (no body))' || fail "untagged bounce: no not-checked header"
grep -q 'service=policy state=DATA .*verdict=accept .*reason=not-checked' "$T/bm.log" || fail "DATA decision not logged"
ok "policy only: untagged bounce delivered, marked not checked"

# A6. postmaster is exempt.
deliver "postmaster" "$PF_PORT" --from '<>' --to postmaster@example.com
sink_has $n '^X-Bounce-Check: none (exempt recipient)' || fail "postmaster: no exempt header"
ok "policy only: postmaster receives untagged bounces"

# A7. Several recipients: remembered from RCPT, so the header still comes.
deliver "two recipients" "$PF_PORT" --from '<>' --to "alice@example.com,$TAG"
sink_has $n '^X-Bounce-Check: neutral' || fail "two recipients: no header"
ok "policy only: a bounce to two recipients gets its verdict header"

# A8. Mail that is not a bounce goes through untouched.
deliver "ordinary mail" "$PF_PORT" --from eve@example.org --to alice@example.com
[ "$(count_headers $n)" = 0 ] || fail "ordinary mail got a verdict header"
ok "policy only: ordinary mail untouched"

# A9. Many smtpd processes at once, each with its own policy connection.
pids=()
for i in $(seq 20); do
  smtp "$PF_PORT" --from '<>' --to "$forged" --quit-after RCPT > "$T/par-$i.out" &
  pids+=($!)
done
wait "${pids[@]}"
for i in $(seq 20); do
  grep -qE '<\*\* 550 5\.7\.1 .*bad-signature' "$T/par-$i.out" || { cat "$T/par-$i.out" >&2; fail "parallel session $i not refused"; }
done
ok "policy only: 20 concurrent SMTP sessions all refused at RCPT"

# A10. SIGHUP reloads the policy service's engine too: a domain added by a
# reload has its forged tags refused.
new_forged=$("$BM" sign --key-file "$KEYS" bob@added.example)
new_forged=${new_forged/=bob@/=mallory@}
out=$(smtp "$PF_PORT" --from '<>' --to "$new_forged" --quit-after RCPT)
expect_reply "$out" '<-  250 ' "before the reload: added.example is not ours"
cp "$T/bm.toml" "$T/bm.toml.orig"
printf '[domains."added.example"]\n' >> "$T/bm.toml"
kill -HUP "$bm_PID"
for _ in $(seq 50); do grep -q 'msg=reloaded' "$T/bm.log" && break; sleep 0.1; done
grep -q 'msg=reloaded' "$T/bm.log" || fail "no reload logged"
out=$(smtp "$PF_PORT" --from '<>' --to "$new_forged" --quit-after RCPT)
expect_reply "$out" '<\*\* 550 5\.7\.1 .*bad-signature' "after reload: added.example is ours"
mv "$T/bm.toml.orig" "$T/bm.toml"
kill -HUP "$bm_PID"
for _ in $(seq 50); do [ "$(grep -c 'msg=reloaded' "$T/bm.log")" = 2 ] && break; sleep 0.1; done
[ "$(grep -c 'msg=reloaded' "$T/bm.log")" = 2 ] || fail "second reload not logged"
ok "policy only: SIGHUP reload reaches the policy service"

# A11. Also in smtpd_end_of_data_restrictions (as postfix-config prints):
# a bounce to a valid tag is decided once (header at DATA) and counted once
# (END-OF-MESSAGE); callout probes count nothing.
postconf -c "$T/pf/etc" -e "smtpd_end_of_data_restrictions = check_policy_service inet:127.0.0.1:$POL_PORT"
postfix -c "$T/pf/etc" reload >/dev/null 2>&1
sleep 1
TAG2=$("$BM" sign --key-file "$KEYS" carol@example.com)
deliver "DATA and END-OF-MESSAGE: valid tag" "$PF_PORT" --from '<>' --to "$TAG2"
[ "$(count_headers $n)" = 1 ] || fail "DATA and END-OF-MESSAGE: $(count_headers $n) verdict headers"
qid=$(grep -oE 'queued as [0-9A-F]+' <<<"$out" | awk '{print $3}')
[ "$(grep -c "queue_id=$qid .*service=policy" "$T/bm.log")" = 1 ] || fail "message $qid decided $(grep -c "queue_id=$qid .*service=policy" "$T/bm.log") times, want once"
ok "policy only: DATA and END-OF-MESSAGE configured: decided once"
# No record of signing for TAG2 (signed by hand): its budget is
# unrecorded_tag_budget (5). One bounce counted; four more pass, the sixth
# is refused at RCPT. Probes in between count nothing.
for i in 1 2 3; do
  out=$(smtp "$PF_PORT" --from '<>' --to "$TAG2" --quit-after RCPT)
  expect_reply "$out" '<-  250 ' "probe $i"
done
for i in 2 3 4 5; do
  deliver "bounce $i to the unrecorded tag" "$PF_PORT" --from '<>' --to "$TAG2"
done
out=$(smtp "$PF_PORT" --from '<>' --to "$TAG2" --quit-after RCPT)
expect_reply "$out" '<\*\* 550 5\.7\.1 .*replayed' "sixth bounce to an unrecorded tag"
ok "policy only: counted at END-OF-MESSAGE, probes count nothing; an unrecorded tag gets a budget of 5"
postconf -c "$T/pf/etc" -e "smtpd_end_of_data_restrictions ="

# B. Policy + milter, both on unix sockets.
stop_pid "$bm_PID"
start_bm bm2 --config "$T/bm.toml" --milter "unix:$MILTER_SOCK" --policy "unix:$POL_SOCK"
for _ in $(seq 50); do [ -S "$POL_SOCK" ] && [ -S "$MILTER_SOCK" ] && break; sleep 0.1; done
[ -S "$POL_SOCK" ] && [ -S "$MILTER_SOCK" ] || fail "no policy or milter socket"
postconf -c "$T/pf/etc" -e "smtpd_milters = unix:$MILTER_SOCK" \
  "smtpd_recipient_restrictions = check_policy_service unix:$POL_SOCK" \
  "smtpd_data_restrictions = check_policy_service unix:$POL_SOCK"
postfix -c "$T/pf/etc" reload >/dev/null 2>&1
sleep 1

out=$(smtp "$PF_PORT" --from '<>' --to "$forged" --quit-after RCPT)
expect_reply "$out" '<\*\* 550 5\.7\.1 .*bad-signature' "policy+milter: forged tag"
grep -q 'service=policy state=RCPT .*reason=bad-signature' "$T/bm2.log" || fail "policy+milter: forged tag not refused by the policy service"
out=$(smtp "$PF_PORT" --from '<>' --to "$expired" --quit-after RCPT)
expect_reply "$out" '<\*\* 550 5\.7\.1 .*expired' "policy+milter: expired tag"
ok "policy + milter: forged and expired tags refused at RCPT by the policy service"

out=$(smtp "$PF_PORT" --from '<>' --to alice@example.com --quit-after RCPT)
expect_reply "$out" '<-  250 ' "policy+milter: callout probe"
out=$(smtp "$PF_PORT" --from '<>' --to alice@example.com --header "Subject: Delivery Status Notification (Failure)" --body "Your message to x@example.org could not be delivered.")
expect_reply "$out" '<-  354 ' "policy+milter: DATA accepted (the milter decides)"
expect_reply "$out" '<\*\* 550 5\.7\.1 .*no-evidence' "policy+milter: untagged bounce after the body"
ok "policy + milter: callout passes; untagged bounce refused by the milter after the body"

deliver "policy+milter: valid tag" "$PF_PORT" --from '<>' --to "$TAG"
[ "$(sink_line $n | json_field to)" = alice@example.com ] || fail "policy+milter: valid tag not stripped"
sink_has $n '^X-Bounce-Check: pass (valid prvs tag, key 2)' || fail "policy+milter: no pass header"
[ "$(count_headers $n)" = 1 ] || fail "policy+milter: $(count_headers $n) verdict headers, want 1"
deliver "policy+milter: tag mode" "$PF_PORT" --from '<>' --to alice@tagmode.example
[ "$(count_headers $n)" = 1 ] || fail "policy+milter tag mode: $(count_headers $n) verdict headers, want 1"
grep -q 'service=policy state=DATA' "$T/bm2.log" && fail "policy+milter: the policy service decided at DATA"
ok "policy + milter: one verdict header per message (the milter's); no policy decision at DATA"

# B2. Why the policy service does not PREPEND next to the milter: a header
# prepended by an smtpd restriction reaches the milter like one from
# outside, and the milter removes it.
postconf -c "$T/pf/etc" -e "smtpd_recipient_restrictions = check_recipient_access inline:{ { alice@tagmode.example = PREPEND X-Bounce-Check: pass (prepended) } }, check_policy_service unix:$POL_SOCK"
postfix -c "$T/pf/etc" reload >/dev/null 2>&1
sleep 1
deliver "policy+milter: prepended header" "$PF_PORT" --from '<>' --to alice@tagmode.example
sink_has $n 'prepended' && fail "policy+milter: a PREPENDed verdict header survived the milter"
[ "$(count_headers $n)" = 1 ] || fail "policy+milter with PREPEND: $(count_headers $n) verdict headers, want 1"
ok "policy + milter: a PREPENDed X-Bounce-Check is removed by the milter (so the policy service does not PREPEND)"
# (The same restriction keeps its header without the milter: see C.)

# C. Service stopped: Postfix goes on as if it said DUNNO. (The socketmap is
# taken out first: with it, Postfix would defer, as t-10 shows.)
postconf -c "$T/pf/etc" -e "recipient_canonical_maps =" "smtpd_milters ="
postfix -c "$T/pf/etc" reload >/dev/null 2>&1
stop_pid "$bm2_PID"
sleep 1
start=$(date +%s)
deliver "service down: untagged bounce" "$PF_PORT" --from '<>' --to alice@example.com
out=$(smtp "$PF_PORT" --from '<>' --to "$forged" --quit-after RCPT)
expect_reply "$out" '<-  250 ' "service down: forged tag (default_action=DUNNO)"
grep -q 'policy.*\(connect\|Connection refused\|No such file\)' "$T/pf/log/maillog" || fail "Postfix did not log the policy service down"
# Control for B2: without the milter the prepended header is kept.
deliver "service down: tag mode" "$PF_PORT" --from '<>' --to alice@tagmode.example
sink_has $n '^X-Bounce-Check: pass (prepended)' || fail "control: the inline PREPEND did not apply without the milter"
ok "service down: Postfix keeps accepting mail (default_action=DUNNO) in $(( $(date +%s) - start ))s"
