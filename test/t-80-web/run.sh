#!/usr/bin/env bash
# The monitoring pages in a browser: bounce-milter decides a known mix of
# mail through a real Postfix (signed mail, a bounce to a valid tag,
# untagged bounces without evidence up to a flood, a forged tag, untagged
# bounces in tag mode), then Debian's Chromium, headless, driven by
# test/webcheck (chromedp), opens every page, finds the mix's counts in
# the charts, tables and JSON API, follows the links between the pages,
# checks the console for errors and keeps a screenshot of each page in
# $T/screens (BM_WEB_DOCS_IMG=DIR copies them there too, e.g. docs/img).
# Then access: on a non-loopback address serve refuses to start without a
# login, and with a token refuses requests that do not carry it.
source "$(dirname "$0")/../lib.sh"
setup_dirs
command -v chromium >/dev/null || fail "chromium is not installed (bash test/deps.sh)"
(cd "$ROOT/test/webcheck" && go build -o "$T/webcheck" .) || fail "building test/webcheck"

PF_PORT=$(free_port); SUB_PORT=$(free_port); SINK_PORT=$(free_port); MILTER=$(free_port); WEB=$(free_port)
SINK_OUT=$T/sink.jsonl
KEYS=$T/keys
printf '4 older-web-secret\n5 web-test-secret\n' > "$KEYS"; chmod 600 "$KEYS"
cat > "$T/bm.toml" <<CONF
data_dir = "$T/bm-data"
key_file = "$KEYS"
grace = "10d"
[listen]
milter = "inet:127.0.0.1:$MILTER"
web = "127.0.0.1:$WEB"
[domains."example.com"]
mode = "reject"
since = 2020-01-01
[domains."tagmode.example"]
mode = "tag"
since = 2020-01-01
[store.flood]
recipient_limit = 3
window = "10m"
strict_for = "1h"
CONF

start_sink "$SINK_PORT" "$SINK_OUT"
start_bm bm --config "$T/bm.toml" --socketmap off
wait_port "$MILTER"; wait_port "$WEB"
PF_MILTER="inet:127.0.0.1:$MILTER" pf_up
n=0

# The mix. Outbound: two signed messages.
deliver "signed 1" "$SUB_PORT" --from alice@example.com --to bob@example.org --header "Message-Id: <web-1@example.com>"
TAG=$(sink_line $n | json_field from)
[[ $TAG == prvs=5* ]] || fail "not signed: $TAG"
deliver "signed 2" "$SUB_PORT" --from alice@example.com --to carol@example.org --header "Message-Id: <web-2@example.com>"
sleep 0.3
# A genuine bounce to a valid tag.
dsn() { # reporting host, recipient, original message-id
  printf 'This is the mail system at host %s.\n\nI'"'"'m sorry to have to inform you that your message could not\nbe delivered to one or more recipients.\n\n<%s>: host %s said: 550 5.1.1 <%s>: Recipient address rejected: User unknown\n\n--- Original message headers ---\nMessage-ID: <%s>\nFrom: someone@example.com\nTo: %s\nSubject: hi\n' "$1" "$2" "$1" "$2" "$3" "$2"
}
deliver "bounce to the valid tag" "$PF_PORT" --from '<>' --to "$TAG" --header "Subject: Undelivered Mail Returned to Sender" \
  --body "$(dsn mx.remote.example bob@example.org web-1@example.com)"
# Backscatter to carol@example.com (reject mode): three without evidence,
# the fourth over the flood limit.
for i in 1 2 3 4; do
  out=$(smtp "$PF_PORT" --from '<>' --to carol@example.com --header "Subject: Undelivered Mail Returned to Sender" \
    --body "$(dsn mx.backscatter.example "victim$i@example.net" "spam-$i@example.com")")
  if [ "$i" -le 3 ]; then expect_reply "$out" '<\*\* 550 5\.7\.1 .*no-evidence' "backscatter $i"
  else expect_reply "$out" '<\*\* 550 5\.7\.1 .*flood' "backscatter $i (flood)"; fi
done
# A forged tag, refused at RCPT.
out=$(smtp "$PF_PORT" --from '<>' --to "${TAG/=alice@/=mallory@}")
expect_reply "$out" '<\*\* 550 5\.7\.1 .*bad-signature' "forged tag"
# Backscatter in tag mode: delivered, marked.
for i in 1 2; do
  deliver "tag mode $i" "$PF_PORT" --from '<>' --to dave@tagmode.example --header "Subject: Undelivered Mail Returned to Sender" \
    --body "$(dsn mx.backscatter.example "other$i@example.net" "spam-t$i@example.com")"
done
ok "the mix: 2 signed, 1 valid-tag bounce, 3 no-evidence + 1 flood refused, 1 forged tag, 2 marked in tag mode"

cat > "$T/expect.json" <<JSON
{
  "base": "http://127.0.0.1:$WEB",
  "inbound": {"reject/no-evidence": 3, "reject/flood": 1, "reject/bad-signature": 1, "accept/valid-tag": 1, "accept/no-evidence": 2},
  "outbound": {"signed/signed": 2},
  "domains": {"example.com": "reject", "tagmode.example": "tag"},
  "top_recipient": ["carol@example.com", 4],
  "top_network": ["127.0.0.0/24", 7],
  "top_reporter": ["mx.backscatter.example", 6],
  "flood_entered": "carol@example.com",
  "key": 5, "key_signed": 2, "old_key": 4, "old_key_retire": "unknown",
  "domain": "example.com", "domain_total": 6,
  "events": 1, "event_reason": "userunknown"
}
JSON
start=$(now_ms)
"$T/webcheck" -expect "$T/expect.json" -out "$T/screens" > "$T/webcheck.log" 2>&1 || { cat "$T/webcheck.log" >&2; fail "the pages in the browser"; }
grep -c '^ok - ' "$T/webcheck.log" | xargs -I{} echo "ok - browser: {} checks passed in $(( $(now_ms) - start )) ms; screenshots in $T/screens"
for p in overview floods bounces keys; do
  [ -s "$T/screens/$p.png" ] || fail "no screenshot of $p"
done
if [ -n "${BM_WEB_DOCS_IMG:-}" ]; then
  mkdir -p "$BM_WEB_DOCS_IMG"
  for p in overview floods bounces keys; do cp "$T/screens/$p.png" "$BM_WEB_DOCS_IMG/web-$p.png"; done
  ok "screenshots copied to $BM_WEB_DOCS_IMG"
fi

# Access. On a non-loopback address without a login, serve refuses to start.
P2=$(free_port)
if "$BM" serve --web "0.0.0.0:$P2" --milter off --sign off --socketmap off --data-dir "$T/bm2" > "$T/bm2.out" 2>&1; then
  fail "serve started the pages on 0.0.0.0 without a login"
fi
grep -q 'not a loopback address' "$T/bm2.out" || { cat "$T/bm2.out" >&2; fail "no reason given for refusing 0.0.0.0"; }
# With a token: requests without it are refused, with it answered.
printf 'web-token-%s\n' "$RANDOM$RANDOM" > "$T/web-token"; chmod 600 "$T/web-token"
TOKEN=$(head -1 "$T/web-token")
cat > "$T/bm2.toml" <<CONF
data_dir = "$T/bm2"
key_file = "$KEYS"
[listen]
milter = "off"
web = "0.0.0.0:$P2"
[domains."example.com"]
[web]
token_file = "$T/web-token"
CONF
start_bm bm2 --config "$T/bm2.toml"
wait_port "$P2"
for p in / /floods /bounces /keys /alerts /api/overview /api/floods /api/keys /api/events /api/suppressions /api/alerts; do
  [ "$(http_status "http://127.0.0.1:$P2$p")" = 401 ] || fail "$p answered without the token"
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer wrong-token" "http://127.0.0.1:$P2$p")
  [ "$code" = 401 ] || fail "$p answered a wrong token ($code)"
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$P2$p")
  [ "$code" = 200 ] || fail "$p refused the token ($code)"
done
ok "access: 0.0.0.0 without a login refused at start; with a token, every page and API refuses requests without it"
# On loopback without a login, a foreign Host header is refused (DNS rebinding).
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: attacker.example" "http://127.0.0.1:$WEB/")
[ "$code" = 403 ] || fail "a foreign Host header got $code"
ok "access: on loopback only loopback host names are answered"
