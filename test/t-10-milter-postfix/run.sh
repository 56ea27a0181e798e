#!/usr/bin/env bash
# The milter inside a real Postfix: outbound signing (submission and
# sendmail), bounces to valid, forged, expired and unknown-key tags,
# untagged bounces and callout probes, postmaster, Postfix's own bounces
# through the socketmap, and mail flow with the milter stopped.
source "$(dirname "$0")/../lib.sh"
setup_dirs

PF_PORT=$(free_port); SUB_PORT=$(free_port); SINK_PORT=$(free_port)
MILTER_PORT=$(free_port); SM_PORT=$(free_port); METRICS_PORT=$(free_port)
SINK_OUT=$T/sink.jsonl
KEYS=$T/keys

printf '2 e2e-test-secret-two\n' > "$KEYS"; chmod 600 "$KEYS"
cat > "$T/bm.toml" <<CONF
data_dir = "$T/bm-data"
key_file = "$KEYS"
mode = "reject"
grace = "0s"
[listen]
milter = "inet:127.0.0.1:$MILTER_PORT"
socketmap = "inet:127.0.0.1:$SM_PORT"
metrics = "127.0.0.1:$METRICS_PORT"
[domains."example.com"]
[domains."tagmode.example"]
mode = "tag"
CONF

start_sink "$SINK_PORT" "$SINK_OUT"
start_bm bm --config "$T/bm.toml"
wait_port "$MILTER_PORT"
# The socketmap as postfix-config prints it: behind an inline regexp that
# passes it only tag-shaped recipients.
RCM=$("$BM" postfix-config --config "$T/bm.toml" | grep '^recipient_canonical_maps = ')
[[ $RCM == "recipient_canonical_maps = pipemap:{regexp:{{"*"socketmap:inet:127.0.0.1:$SM_PORT:unbatv}" ]] || fail "postfix-config printed $RCM"
PF_MILTER="inet:127.0.0.1:$MILTER_PORT" PF_NON_SMTPD_MILTER="inet:127.0.0.1:$MILTER_PORT" \
PF_EXTRA="$RCM
recipient_canonical_classes = envelope_recipient" pf_up
n=0

# 1. Submission (ORIGINATING) for our domain: signed with a tag verify accepts.
deliver "submission accepted" "$SUB_PORT" --from alice@example.com --to bob@example.org --header "Message-Id: <e2e-1@example.com>"
from=$(sink_line $n | json_field from)
[[ $from == prvs=2?????????=alice@example.com ]] || fail "submission: sender $from, want prvs=2...=alice@example.com"
[ "$("$BM" verify --key-file "$KEYS" "$from")" = alice@example.com ] || fail "verify refused $from"
TAG=$from
ok "submission signed: $from"

# 1b. A foreign domain is left alone.
out=$(smtp "$SUB_PORT" --from carol@example.net --to bob@example.org)
n=$((n+1)); sink_wait $n
[ "$(sink_line $n | json_field from)" = carol@example.net ] || fail "foreign domain was signed: $(sink_line $n | json_field from)"
ok "foreign sender unsigned"

# 1c. Local submission (sendmail, non_smtpd_milters): signed, never rejected.
printf 'Subject: local\nMessage-ID: <e2e-local@example.com>\n\nhello\n' | sendmail -C "$T/pf/etc" -f dave@example.com bob@example.org
n=$((n+1)); sink_wait $n
from=$(sink_line $n | json_field from)
[[ $from == prvs=2?????????=dave@example.com ]] || fail "sendmail: sender $from"
DAVE_TAG=$from
ok "local submission signed: $from"

# 1d. Mail from outside (MX port, no auth) is not ours: not signed.
out=$(smtp "$PF_PORT" --from eve@example.com --to bob@example.org)
n=$((n+1)); sink_wait $n
[ "$(sink_line $n | json_field from)" = eve@example.com ] || fail "MX mail was signed"
ok "unauthenticated mail on the MX port unsigned"

# 2. A bounce to the valid tag reaches the untagged mailbox with a pass verdict.
deliver "bounce to valid tag" "$PF_PORT" --from '<>' --to "$TAG" --header "Subject: Undelivered Mail Returned to Sender"
[ "$(sink_line $n | json_field to)" = alice@example.com ] || fail "valid tag not stripped: $(sink_line $n | json_field to)"
sink_has $n '^X-Bounce-Check: pass (valid prvs tag, key 2)' || fail "no pass verdict header"
ok "valid tag: delivered to alice@example.com with a pass verdict"

# 2b. The same, with the domain in upper case.
deliver "bounce to valid tag, upper-case domain" "$PF_PORT" --from '<>' --to "${TAG/example.com/EXAMPLE.COM}"
ok "valid tag with upper-case domain accepted"

# 3. Forged, expired and unknown-key tags: 550 at RCPT.
forged=${TAG/=alice@/=mallory@}
expired=$("$BM" sign --key-file "$KEYS" --date "$(date -u -d '20 days ago' +%F)" alice@example.com)
unknown=prvs=7${TAG:6}
for bad in "$forged" "$expired" "$unknown" "${forged/example.com/EXAMPLE.COM}"; do
  out=$(smtp "$PF_PORT" --from '<>' --to "$bad" --quit-after RCPT)
  expect_reply "$out" '<\*\* 550 5\.7\.1 .*(bad-signature|expired|unknown-key)' "tag $bad"
done
ok "forged, expired, unknown-key tags refused at RCPT"

# 4. Untagged bounce: RCPT passes (callout probes), refused after DATA.
out=$(smtp "$PF_PORT" --from '<>' --to alice@example.com --quit-after RCPT)
expect_reply "$out" '<-  250 ' "callout probe"
out=$(smtp "$PF_PORT" --from '<>' --to alice@example.com --header "Subject: Delivery Status Notification (Failure)" --body "Your message to x@example.org could not be delivered.")
expect_reply "$out" '<-  250 .*Ok' "untagged bounce RCPT"
expect_reply "$out" '<\*\* 550 5\.7\.1 .*no-evidence' "untagged bounce after DATA"
ok "untagged bounce: RCPT 250, 550 after DATA"

# 4b. A bounce that returns a message we sent (its Message-ID is in the
# store) is genuine even without a tag.
if grep -q 'store=none' "$T/bm.log"; then
  echo "(no store in this build: store-evidence check skipped)"
else
  out=$(smtp "$PF_PORT" --from '<>' --to alice@example.com --header "Subject: Undeliverable: hi" \
    --body "$(printf 'Delivery to the following recipients failed.\n\n   bob@example.org\n\n------ Original message headers ------\nMessage-ID: <e2e-1@example.com>\nFrom: alice@example.com\nTo: bob@example.org\nSubject: hi\n')")
  expect_reply "$out" '<-  250 .*queued' "bounce with our Message-ID"
  n=$((n+1)); sink_wait $n
  sink_has $n '^X-Bounce-Check: pass (untagged; we sent the original: store:' || fail "no store evidence in the verdict"
  ok "untagged bounce of a message we sent: accepted on store evidence"
fi

# 4b'. Postfix asks the socketmap only about tag-shaped recipients.
lookups() { metric_at "http://127.0.0.1:$METRICS_PORT/metrics" bounce_milter_socketmap_lookups_total "$@"; }
before=$(lookups)
deliver "untagged mail" "$PF_PORT" --from bob@example.org --to alice@example.com
[ "$(lookups)" = "$before" ] || fail "the socketmap was asked about an untagged recipient ($before -> $(lookups) lookups)"
after=$(lookups)
found=$(lookups 'result="found"')
deliver "bounce to a valid tag" "$PF_PORT" --from '<>' --to "$DAVE_TAG"
[ "$(sink_line $n | json_field to)" = dave@example.com ] || fail "tag not stripped: $(sink_line $n | json_field to)"
[ "$(lookups 'result="found"')" -gt "$found" ] || fail "the valid tag was not looked up in the socketmap"
ok "the socketmap is asked about tagged recipients only ($before lookups before mail to an untagged recipient, $after after; a valid tag: found $found -> $(lookups 'result="found"'))"

# 4c. Tag mode: accepted with a fail verdict.
deliver "tag mode" "$PF_PORT" --from '<>' --to alice@tagmode.example
sink_has $n '^X-Bounce-Check: fail' || fail "tag mode: no fail header"
ok "tag mode: delivered with a fail verdict"

# 5. postmaster@ receives untagged bounces; a forged verdict header is removed.
deliver "postmaster" "$PF_PORT" --from '<>' --to postmaster@example.com --header "X-Bounce-Check: pass (forged)"
data=$(sink_line $n | json_field data)
grep -q 'forged' <<<"$data" && fail "forged verdict header kept"
grep -q '^X-Bounce-Check: none (exempt recipient)' <<<"$data" || fail "postmaster: no exempt verdict"
ok "postmaster gets untagged bounces; forged verdict header removed"

# 6. Postfix's own bounce of a signed message reaches the sender, untagged.
deliver "mail to a failing domain" "$SUB_PORT" --from frank@example.com --to nobody@example.net
line=$(sink_line $n)
[ "$(json_field from <<<"$line")" = "" ] || fail "Postfix bounce: sender $(json_field from <<<"$line")"
[ "$(json_field to <<<"$line")" = frank@example.com ] || fail "Postfix bounce went to $(json_field to <<<"$line")"
ok "Postfix's own bounce of a signed message reaches frank@example.com"

grep -q 'queue_id=[0-9A-F]' "$T/bm.log" || fail "decision log lines lack the queue id"
ok "decisions logged with the queue id"

# 7. bounce-milter stopped. Postfix cannot ask the socketmap about a tagged
# recipient and defers it (4xx: nothing is lost, clients retry); mail to
# anyone else flows (the milter step is skipped: milter_default_action =
# accept). With the socketmap alone (Postfix before 3.7), it defers all.
stop_pid "$bm_PID"
out=$(smtp "$PF_PORT" --from '<>' --to "$TAG")
expect_reply "$out" '<\*\* 4[0-9][0-9] ' "daemon down: bounce to a tag"
deliver "daemon down: untagged recipient" "$PF_PORT" --from bob@example.org --to alice@example.com
postconf -c "$T/pf/etc" -e "recipient_canonical_maps = socketmap:inet:127.0.0.1:$SM_PORT:unbatv" && postfix -c "$T/pf/etc" reload >/dev/null 2>&1
sleep 1
out=$(smtp "$PF_PORT" --from bob@example.org --to alice@example.com)
expect_reply "$out" '<\*\* 4[0-9][0-9] ' "daemon down, socketmap alone"
ok "daemon down: a bounce to a tag is deferred (4xx), other mail flows; with the socketmap alone all mail is deferred"

# 7b. Milter-only deployment (no socketmap): the static regexp map that
# postfix-config prints strips the valid tag, and when the milter is stopped
# mail flows (milter_default_action = accept).
"$BM" postfix-config --config "$T/bm.toml" --regexp-map > "$T/pf/etc/tags.regexp"
# Postfix's own regexp engine (POSIX, no case) reads the map as
# TestRegexpMap says: every tag form of our domain stripped, nothing else.
while read -r in want; do
  got=$(postmap -c "$T/pf/etc" -q "$in" "regexp:$T/pf/etc/tags.regexp") || got=-
  [ "$got" = "$want" ] || fail "postmap -q $in on the regexp map: '$got', want '$want'"
done <<'CASES'
prvs=1234abcdef=alice@example.com alice@example.com
PRVS=1234ABCDEF=alice@EXAMPLE.COM alice@EXAMPLE.COM
alice+prvs=1234abcdef@example.com alice@example.com
vrp=1234abcdef0123456789=mfrgg=alice@example.com alice@example.com
prvs=1234abcdef=bob@other.example -
prvs=234d5777c=alice@example.com -
alice@example.com -
alice+news@example.com -
prvs=1234abcdef=alice@example.com.evil.test -
SRS0=HHH=TT=remote.example=carol@example.com -
CASES
ok "the regexp map through postmap -q: 4 tag forms stripped, 6 other addresses left"
postconf -c "$T/pf/etc" -e "recipient_canonical_maps = regexp:$T/pf/etc/tags.regexp" && postfix -c "$T/pf/etc" reload >/dev/null 2>&1
start_bm bm --config "$T/bm.toml" --socketmap off
wait_port "$MILTER_PORT"
sleep 1
deliver "milter only: bounce to valid tag" "$PF_PORT" --from '<>' --to "$TAG"
[ "$(sink_line $n | json_field to)" = alice@example.com ] || fail "tag not stripped: $(sink_line $n | json_field to)"
ok "milter-only: the regexp map strips the valid tag"
out=$(smtp "$PF_PORT" --from '<>' --to "$forged" --quit-after RCPT)
expect_reply "$out" '<\*\* 550 5\.7\.1 .*bad-signature' "milter only: forged tag"
ok "milter-only: a forged tag is still refused at RCPT"
stop_pid "$bm_PID"
deliver "milter down" "$PF_PORT" --from '<>' --to alice@example.com
ok "milter down: mail flows"
