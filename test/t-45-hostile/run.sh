#!/usr/bin/env bash
# Hostile input (issue 11): each attack sent through a real Postfix with
# its default address rewriting (allow_percent_hack, swap_bangpath,
# resolve_dequoted_address, $myhostname and localhost in mydestination)
# or straight to bounce-milter's sockets, and its outcome checked: the
# daemon alive and serving afterwards, the mail refused or decided, memory
# bounded, nothing delivered that must not be, and the log and the metrics
# saying what Postfix did.
#
#   - sockets: the default socket directory and modes (checked in a mount
#     namespace of its own at the real default path), a local user other
#     than Postfix cannot connect;
#   - malformed milter packets, 100 MB announced packets, 5000 idle
#     connections against listen.max_connections; socketmap and policy
#     clients that pipeline and never read;
#   - recipients: source routes, the percent hack, bang paths, quoted
#     routes, a bare local part, unreadable addresses of our domain;
#   - evidence: References on a null-sender message that is no bounce, a
#     relay name in a comment of the topmost Received hop;
#   - guessing: bad tags from one client put it in the flood state; a
#     valid tag never signed takes inbound.unrecorded_tag_budget bounces;
#   - a forged verdict header on our own outbound and local mail;
#   - `bounce-milter check` on a bounce with terminal escapes;
#   - key files that are a FIFO or another user's: reload refused at once,
#     SIGTERM still prompt.
source "$(dirname "$0")/../lib.sh"
setup_dirs

HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
ATTACK=("$PY" "$HERE/attack.py")
PF_PORT=$(free_port); SUB_PORT=$(free_port); SINK_PORT=$(free_port)
SM_PORT=$(free_port); POL_PORT=$(free_port); MET_PORT=$(free_port)
SINK_OUT=$T/sink.jsonl
KEYS=$T/keys
SOCK=$T/run/bounce-milter/milter.sock
CAP=400
printf '3 hostile-secret\n' > "$KEYS"; chmod 600 "$KEYS"
chmod 755 "$T"

# listen.max_connections set below the default, to see that it is the
# configured cap that holds. new.example is in its grace period.
cat > "$T/bm.toml" <<CONF
data_dir = "$T/bm-data"
key_file = "$KEYS"
mode = "reject"
grace = "10d"
[listen]
milter = "unix:$SOCK"
socketmap = "inet:127.0.0.1:$SM_PORT"
policy = "inet:127.0.0.1:$POL_PORT"
metrics = "127.0.0.1:$MET_PORT"
max_connections = $CAP
[inbound]
relays = ["mx1.example.com"]
[domains."example.com"]
since = 2020-01-01
[domains."new.example"]
since = $(date -u +%F)
[store.flood]
client_limit = 40
CONF

start_sink "$SINK_PORT" "$SINK_OUT"
start_bm bm --config "$T/bm.toml"
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || fail "no milter socket at $SOCK"
wait_port "$MET_PORT"

# Postfix's address rewriting as it comes: only mydestination is set back
# to its default (test/lib.sh empties it); myorigin is example.com.
PF_MILTER="unix:$SOCK" PF_NON_SMTPD_MILTER="unix:$SOCK" PF_POSTCONF='mydestination = $myhostname, localhost.$mydomain, localhost
relay_domains = example.com, new.example' pf_up
for p in allow_percent_hack=yes swap_bangpath=yes resolve_dequoted_address=yes; do
  [ "$(postconf -c "$T/pf/etc" -h "${p%%=*}")" = "${p#*=}" ] || fail "Postfix's ${p%%=*} is not its default"
done
n=0

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$bm_PID/status"; }          # kB
threads() { awk '/^Threads:/ {print $2}' "/proc/$bm_PID/status"; }
alive() { kill -0 "$bm_PID" 2>/dev/null || fail "bounce-milter died ($1)"; }
metrics() { curl -s --max-time 5 "http://127.0.0.1:$MET_PORT/metrics"; }
metric() { metrics | awk -v k="$1" '$1 == k {print $2}'; }
# sum of a metric's samples whose labels contain every given label pair
metric_sum() {
  local name=$1; shift
  metrics | awk -v name="$name" -v want="$*" '
    index($1, name "{") == 1 {
      ok = 1; n = split(want, w, " ")
      for (i = 1; i <= n; i++) if (index($1, w[i]) == 0) ok = 0
      if (ok) s += $2
    }
    END { print s + 0 }'
}

# dsn FILE RCPT HEADER...: a delivery report (multipart/report) to RCPT
# returning an original with these header lines.
dsn() {
  local f=$1 rcpt=$2
  shift 2
  {
    printf 'From: MAILER-DAEMON@mx.remote.example\r\nTo: <%s>\r\nSubject: Undelivered Mail Returned to Sender\r\n' "$rcpt"
    printf 'Date: %s\r\nMessage-ID: <dsn-%s@mx.remote.example>\r\nMIME-Version: 1.0\r\n' "$(date -R)" "$RANDOM$RANDOM"
    printf 'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
    printf -- '--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n'
    printf -- '--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.example\r\n\r\n'
    printf 'Final-Recipient: rfc822; bob@remote.example\r\nAction: failed\r\nStatus: 5.1.1\r\n'
    printf 'Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n'
    printf -- '--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n'
    local h
    for h in "$@"; do printf '%s\r\n' "$h"; done
    printf -- '\r\n--b1--\r\n'
  } > "$f"
}
ODATE=$(date -R) # the returned originals' Date
dsn "$T/plain.eml" x "From: nobody@remote.example" "To: bob@remote.example" "Subject: hi" "Date: $ODATE" \
  "Message-ID: <never-sent@remote.example>"

RSS0=$(rss); GOR0=$(metric go_goroutines)
echo "memory: baseline VmRSS ${RSS0} kB, $(threads) threads, $GOR0 goroutines"

# --- 1. Who can connect. ---------------------------------------------------
# The socket directory bounce-milter created: group postfix, closed to
# others; the socket 0660. A local user other than Postfix cannot connect.
[ "$(stat -c '%a %G' "$(dirname "$SOCK")")" = "750 postfix" ] || fail "socket directory: $(stat -c '%a %U %G' "$(dirname "$SOCK")")"
[ "$(stat -c '%a %G' "$SOCK")" = "660 postfix" ] || fail "socket: $(stat -c '%a %U %G' "$SOCK")"
connect_as_nobody() {
  runuser -u nobody -- "$PY" -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); print("connected")
except PermissionError as e:
    print("denied:", e)
except OSError as e:
    print("error:", e)' "$1" 2>&1
}
out=$(connect_as_nobody "$SOCK")
[[ $out == denied:* ]] || fail "user nobody and the milter socket: $out"
ok "the milter socket (directory 0750 root:postfix, socket 0660): user nobody gets '$out'"

# The real default, without a config file: /var/spool/postfix/bounce-milter,
# checked in a mount namespace with a tmpfs of its own over the spool, so
# that nothing of this machine's Postfix is touched.
if unshare -m --propagation private true 2>/dev/null; then
  BM=$BM T=$T PY=$PY unshare -m --propagation private bash -c '
    set -u
    mount -t tmpfs -o mode=755 tmpfs /var/spool/postfix || exit 3
    "$BM" serve --data-dir "$T/default-data" --domains example.com >"$T/default.out" 2>"$T/default.log" &
    pid=$!
    trap "kill $pid 2>/dev/null; wait $pid 2>/dev/null" EXIT
    d=/var/spool/postfix/bounce-milter
    for _ in $(seq 100); do [ -S $d/milter.sock ] && [ -S $d/socketmap.sock ] && [ -S $d/sign.sock ] && break; sleep 0.1; done
    stat -c "%n %a %U %G" $d $d/milter.sock $d/sign.sock $d/socketmap.sock
    for s in milter sign socketmap; do
      printf "nobody %s: " $s
      runuser -u nobody -- "$PY" -c "import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); print(\"connected\")
except PermissionError:
    print(\"denied\")
except OSError as e:
    print(\"error\", e)" $d/$s.sock
    done
    printf "postfix milter: "
    runuser -u postfix -- "$PY" -c "import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print(\"connected\")" $d/milter.sock 2>&1 | tail -1
  ' > "$T/default-socket.out" 2>&1 || { cat "$T/default-socket.out" "$T/default.log" >&2; fail "default socket check"; }
  want="/var/spool/postfix/bounce-milter 750 root postfix
/var/spool/postfix/bounce-milter/milter.sock 660 root postfix
/var/spool/postfix/bounce-milter/sign.sock 660 root postfix
/var/spool/postfix/bounce-milter/socketmap.sock 660 root postfix
nobody milter: denied
nobody sign: denied
nobody socketmap: denied
postfix milter: connected"
  [ "$(cat "$T/default-socket.out")" = "$want" ] || { cat "$T/default.log" >&2; fail "default sockets:
$(cat "$T/default-socket.out")
want:
$want"; }
  ok "default sockets (no config): $(dirname "$(sed -n 2p "$T/default-socket.out" | cut -d' ' -f1)") 0750 root:postfix, sockets 0660; nobody denied, postfix connects"
else
  echo "(no mount namespace here: the default path itself is not checked)"
fi

# --- 2. Malformed packets, huge packets. -----------------------------------
"${ATTACK[@]}" malformed "$SOCK" > "$T/malformed.out" 2>&1 || { cat "$T/malformed.out" >&2; fail "malformed packets"; }
alive "malformed packets"
ok "malformed packets each close their own connection ($(grep -c '^closed' "$T/malformed.out") cases); MAIL/RCPT without NUL answered"

RSS1=$(rss)
"${ATTACK[@]}" huge "$SOCK" 2 100 > "$T/huge.out" 2>&1 || { cat "$T/huge.out" >&2; fail "100 MB packets"; }
alive "huge packets"
RSS2=$(rss)
[ $((RSS2 - RSS1)) -lt 20480 ] || fail "two 100 MB announced packets: VmRSS $RSS1 -> $RSS2 kB"
grep -q 'limit 1048576' "$T/bm.log" || fail "oversized packets not logged with the limit"
ok "two 100 MB announced packets: closed at once; VmRSS $RSS1 -> $RSS2 kB"

# --- 3. Idle connection flood against the cap. -----------------------------
rm -f "$T/flood.release"
"${ATTACK[@]}" flood "$SOCK" 5000 "$T/flood.release" 30 > "$T/flood.out" 2>&1 &
FLOOD=$!; PIDS+=($FLOOD)
for _ in $(seq 150); do grep -q '^held=' "$T/flood.out" && break; sleep 0.1; done
read -r held closed <<<"$(sed -n 's/^held=\([0-9]*\) closed=\([0-9]*\).*/\1 \2/p' "$T/flood.out")"
[ -n "${held:-}" ] || fail "flood: $(cat "$T/flood.out")"
RSS3=$(rss); THR3=$(threads)
alive "connection flood"
[ "$held" -le "$CAP" ] && [ "$held" -ge $((CAP / 2)) ] || fail "flood: $held connections held, cap $CAP"
grep -q "milter connection limit reached.*limit=$CAP" "$T/bm.log" || fail "the cap was not logged"
touch "$T/flood.release"; wait "$FLOOD" || true
sleep 1
RSS4=$(rss)
[ $((RSS3 - RSS0)) -lt 40960 ] || fail "5000 idle connections: VmRSS $RSS0 -> $RSS3 kB"
ok "5000 idle connections: $held held (cap $CAP), $closed closed at once; VmRSS $RSS0 -> $RSS3 kB held ($THR3 threads), $RSS4 kB after"

# --- 4. Pipelining clients that never read (socketmap, policy), in the ---
# background while Postfix runs the next attacks: each must be cut off by
# the service's write deadline while it is still connected.
"${ATTACK[@]}" pipeline socketmap 127.0.0.1 "$SM_PORT" 40 > "$T/pipe-sm.out" 2>&1 & PIPE_SM=$!; PIDS+=($PIPE_SM)
"${ATTACK[@]}" pipeline policy 127.0.0.1 "$POL_PORT" 40 > "$T/pipe-pol.out" 2>&1 & PIPE_POL=$!; PIDS+=($PIPE_POL)

# --- 5. Recipients as Postfix delivers them. -------------------------------
# A source-routed, a quoted-route and a commented copy of a victim beside
# postmaster (exempt): the message reaches postmaster, never the victim,
# and the log and metrics count a dropped recipient, not a rejection.
i=0
for victim in '@x.test:victim1@example.com' '"victim2@example.com"@localhost' 'victim3(hi)@example.com'; do
  i=$((i+1))
  dsn "$T/route$i.eml" "postmaster@example.com" "From: someone@remote.example" "Date: $ODATE" "Message-ID: <route$i@remote.example>"
  deliver "postmaster + $victim" "$PF_PORT" --from '<>' --to "postmaster@example.com,$victim" --data "$T/route$i.eml"
  to=$(sink_line $n | json_field to)
  [ "$to" = postmaster@example.com ] || fail "postmaster + $victim: delivered to $to"
  lines=$(grep 'msg=decision' "$T/bm.log" | grep -F "victim$i")
  grep -q 'verdict=drop-recipient .*reason=no-evidence' <<<"$lines" || fail "no drop-recipient decision logged for $victim: $lines"
done
ok "source route, quoted route, comment: only postmaster gets the message; the victim is dropped (logged drop-recipient)"

# Routing through a local domain with Postfix's defaults: percent hack,
# bang paths, quoted local parts, a domain stripped, a bare local part
# ($myorigin): every one is a recipient of ours, decided (refused).
for to in 'victim4%example.com@localhost' 'example.com!victim5@localhost' 'victim6@example.com@localhost' \
    '"victim7%example.com"@localhost' 'localhost!example.com!victim8' 'victim9%example.com%localhost@localhost' \
    'victim10%example.com@mx.example.com' 'victim11'; do
  out=$(smtp "$PF_PORT" --from '<>' --to "$to" --data "$T/plain.eml")
  expect_reply "$out" '<\*\* 550 5\.7\.1 .*no-evidence' "untagged bounce to $to"
done
grep -qF 'rcpt=victim4%example.com@localhost verdict=reject' "$T/bm.log" || fail "percent hack not decided by the milter"
grep -qF 'rcpt=example.com!victim5@localhost verdict=reject' "$T/bm.log" || fail "bang path not decided by the milter"
ok "percent hack, bang path, quoted route, local domain stripped, bare local part: each refused (550 no-evidence)"

# Addresses of our domain that cannot be read: refused at RCPT.
long=$(printf 'a%.0s' $(seq 1100))@example.com
for to in '"victim12+x y"@example.com' "$long"; do
  out=$(smtp "$PF_PORT" --from '<>' --to "$to" --quit-after RCPT)
  expect_reply "$out" '<\*\* 550 5\.1\.3 .*bad-address' "unreadable address ${to:0:40}"
done
ok "a space in the local part, a 1100-byte local part: refused at RCPT (5.1.3 bad-address)"

# --- 6. Evidence that is not evidence. -------------------------------------
deliver "our message" "$SUB_PORT" --from alice@example.com --to bob@remote.example --header "Message-Id: <hostile-sent-1@example.com>"
sleep 0.5 # the sent record is written in the background
out=$(smtp "$PF_PORT" --from '<>' --to alice@example.com --header "Subject: about your message" \
  --header "In-Reply-To: <hostile-sent-1@example.com>" --header "References: <hostile-sent-1@example.com>" \
  --body "Nothing returned here; just a note.")
expect_reply "$out" '<\*\* 550 5\.7\.1 .*no-evidence' "null-sender non-bounce with References to our Message-ID"
dsn "$T/genuine.eml" alice@example.com "From: alice@example.com" "To: bob@remote.example" "Subject: hi" "Date: $ODATE" \
  "Message-ID: <hostile-sent-1@example.com>"
deliver "a bounce returning our message" "$PF_PORT" --from '<>' --to alice@example.com --data "$T/genuine.eml"
sink_has $n '^X-Bounce-Check: pass (untagged; we sent the original: store:' || fail "genuine bounce: no store evidence"
ok "References to our Message-ID on a null-sender non-bounce: refused; a bounce returning it: accepted (store evidence)"

for hop in "from evil.test (foo.mx1.example.com [192.0.2.99]) by mx.remote.example with ESMTP id A1" \
    "from mx1.example.com (evil.test [192.0.2.99]) by mx.remote.example with ESMTP id A2" \
    "from evil.test (mx1.example.com.evil.test [192.0.2.99]) by mx.remote.example with ESMTP id A3"; do
  dsn "$T/relay.eml" carol@example.com "Received: $hop; $(date -R)" "From: carol@example.com" "To: bob@remote.example" \
    "Date: $ODATE" "Message-ID: <relay-$RANDOM@example.com>"
  out=$(smtp "$PF_PORT" --from '<>' --to carol@example.com --data "$T/relay.eml")
  expect_reply "$out" '<\*\* 550 5\.7\.1 .*no-evidence' "relay name outside its field: $hop"
done
dsn "$T/relay.eml" carol@example.com "Received: from helo.example (mx1.example.com [192.0.2.25]) by mx.remote.example with ESMTP id A4; $(date -R)" \
  "From: carol@example.com" "To: bob@remote.example" "Date: $ODATE" "Message-ID: <relay-ok@example.com>"
deliver "relay evidence" "$PF_PORT" --from '<>' --to carol@example.com --data "$T/relay.eml"
sink_has $n '^X-Bounce-Check: pass (untagged; we sent the original: relay:mx1.example.com' || fail "relay evidence not accepted"
ok "mx1.example.com in a comment, as HELO or as a subdomain: refused; as the topmost hop's resolved name: accepted"

# --- 7. Guessing. ----------------------------------------------------------
# A valid tag with no record of signing: inbound.unrecorded_tag_budget (5)
# bounces, then refused as replayed.
UNREC=$("$BM" sign --key-file "$KEYS" dora@example.com)
for i in 1 2 3 4 5; do
  deliver "bounce $i to a tag never signed" "$PF_PORT" --from '<>' --to "$UNREC" --data "$T/plain.eml"
done
out=$(smtp "$PF_PORT" --from '<>' --to "$UNREC" --quit-after RCPT)
expect_reply "$out" '<\*\* 550 5\.7\.1 .*replayed' "bounce 6 to a tag never signed"
ok "a valid tag never signed ($UNREC): 5 bounces, the 6th refused (replayed)"

# Bad-tag RCPTs from one client (127.0.0.5) count into the flood state:
# past client_limit (40) its untagged bounces are refused as flood even
# during new.example's grace period, where another client's are accepted.
# The guesses have the right key number and day, as an attacker's would
# (the day is public: any tag of ours shows it); only the hash is guessed.
real=$("$BM" sign --key-file "$KEYS" guess@example.com)
badtags=()
for i in $(seq 45); do
  g=${real:0:9}$(printf '%06x' $(( ((RANDOM << 9) ^ (i << 3) ^ 0x5a5a5) & 0xffffff )))=guess@example.com
  [ "$g" != "$real" ] && badtags+=("$g")
done
[ ${#badtags[@]} = 45 ] || fail "guesses: ${#badtags[@]}"
refused=0
for s in 0 9 18 27 36; do
  "${ATTACK[@]}" smtp-rcpts 127.0.0.1 "$PF_PORT" 127.0.0.5 "" "${badtags[@]:$s:9}" > "$T/guess.out" 2>&1 || { cat "$T/guess.out" >&2; fail "guessing session"; }
  refused=$((refused + $(grep -c '^550 .*bad-signature' "$T/guess.out")))
done
[ "$refused" = 45 ] || fail "guessing: $refused of 45 bad tags refused"
wait_log "$T/bm.log" 'flood: strict state entered.*client=127\.0\.0\.5'
out=$(smtp "$PF_PORT" --local-interface 127.0.0.5 --from '<>' --to frank@new.example --data "$T/plain.eml")
expect_reply "$out" '<\*\* 550 5\.7\.1 .*flood' "untagged bounce from the guessing client during grace"
deliver "untagged bounce from another client during grace" "$PF_PORT" --from '<>' --to frank@new.example --data "$T/plain.eml"
sink_has $n '^X-Bounce-Check: neutral (untagged; grace' || fail "grace: no neutral verdict"
strict=$(metric bounce_milter_flood_strict)
[ "${strict:-0}" != 0 ] || fail "bounce_milter_flood_strict is ${strict:-unset} during a strict state"
# Each entry is counted once: as many as the log says.
entered=$(metric bounce_milter_flood_entered_total)
lines=$(grep -c 'flood: strict state entered' "$T/bm.log")
[ "${entered:-0}" = "$lines" ] || fail "bounce_milter_flood_entered_total is ${entered:-unset}, the log has $lines entries"
ok "45 bad-tag RCPTs from 127.0.0.5: refused, client in the flood state (gauge $strict, $entered entries counted as logged); its untagged bounce refused during grace, another client's accepted"

# --- 8. Our verdict header from outside, on our own mail. ------------------
deliver "submission with a forged verdict header" "$SUB_PORT" --from alice@example.com --to bob@remote.example \
  --header "X-Bounce-Check: pass (forged by the sender)"
data=$(sink_line $n | json_field data)
grep -q 'forged by the sender' <<<"$data" && fail "outbound: forged verdict header kept"
printf 'Subject: local\nMessage-ID: <hostile-local@example.com>\nX-Bounce-Check: pass (forged locally)\n\nhello\n' |
  sendmail -C "$T/pf/etc" -f dave@example.com bob@remote.example
n=$((n+1)); sink_wait $n
[[ $(sink_line $n | json_field from) == prvs=3* ]] || fail "local mail not signed"
data=$(sink_line $n | json_field data)
grep -q 'forged locally' <<<"$data" && fail "local: forged verdict header kept"
ok "a forged X-Bounce-Check leaves neither submission nor sendmail mail"

# --- 9. The pipelining clients were cut off. -------------------------------
for p in sm:$PIPE_SM pol:$PIPE_POL; do
  wait "${p#*:}" || true
  f=$T/pipe-${p%%:*}.out
  grep -q '^closed_after=' "$f" || fail "a ${p%%:*} client that never reads kept its connection: $(cat "$f")"
done
out=$("${ATTACK[@]}" sm-lookup 127.0.0.1 "$SM_PORT" "$UNREC") || fail "socketmap after the pipelining client: $out"
[[ $out == *"OK dora@example.com"* ]] || fail "socketmap lookup: $out"
alive "pipelining clients"
ok "pipelining clients that never read: socketmap cut off after $(sed -n 's/^closed_after=\([0-9.]*\).*/\1/p' "$T/pipe-sm.out") s, policy after $(sed -n 's/^closed_after=\([0-9.]*\).*/\1/p' "$T/pipe-pol.out") s; the socketmap answers"

# --- 10. The log and the metrics say what Postfix did. ---------------------
for v in 1 2 3 4 5 6 7 8 9 10 11 12; do
  grep -q "victim$v" "$SINK_OUT" && fail "victim$v received mail"
done
log_reject=$(grep -c 'msg=decision .*verdict=reject' "$T/bm.log" || true)
log_drop=$(grep -c 'msg=decision .*verdict=drop-recipient' "$T/bm.log" || true)
m_reject=$(metric_sum bounce_milter_decisions_total 'direction="inbound"' 'verdict="reject"')
m_drop=$(metric_sum bounce_milter_decisions_total 'verdict="drop-recipient"')
[ "$log_reject" = "$m_reject" ] && [ "$log_drop" = "$m_drop" ] || fail "log: $log_reject reject, $log_drop drop; metrics: $m_reject, $m_drop"
[ "$log_drop" = 3 ] || fail "$log_drop drop-recipient decisions, want 3"
pf_rcpt=$(grep -c 'milter-reject: RCPT from' "$T/pf/log/maillog" || true)
bm_rcpt=$(grep -c 'msg=decision .*verdict=reject.* stage=rcpt' "$T/bm.log" || true)
[ "$pf_rcpt" = "$bm_rcpt" ] || fail "RCPT: Postfix refused $pf_rcpt, bounce-milter logged $bm_rcpt"
pf_eom=$(grep 'milter-reject: END-OF-MESSAGE' "$T/pf/log/maillog" | sed 's/.*: \([0-9A-F]*\): milter-reject.*/\1/' | sort -u)
bm_eom=$(grep 'msg=decision .*verdict=reject' "$T/bm.log" | grep -v 'stage=rcpt' | sed 's/.*queue_id=\([0-9A-F]*\) .*/\1/' | sort -u)
[ "$pf_eom" = "$bm_eom" ] || fail "END-OF-MESSAGE: Postfix refused [$(echo $pf_eom)], bounce-milter logged [$(echo $bm_eom)]"
# The agreement means something only if there was much to agree on: the
# sections above refused at least 45 guessed tags and 2 unreadable
# addresses at RCPT, and 5 routed or percent-hack bounces after DATA.
[ "$pf_rcpt" -ge 47 ] || fail "only $pf_rcpt refusals at RCPT in Postfix's log, want at least 47"
[ "$(wc -w <<<"$pf_eom")" -ge 5 ] || fail "only $(wc -w <<<"$pf_eom") messages refused at end of data in Postfix's log, want at least 5"
ok "no victim received anything; log and metrics agree ($m_reject reject, $m_drop drop-recipient) and match Postfix ($pf_rcpt at RCPT, $(wc -w <<<"$pf_eom") messages at end of data)"

# --- 11. Key files that are not ours: reload refused at once; SIGTERM. ----
cp -p "$KEYS" "$T/keys.real"
chown nobody "$KEYS"
t0=$(now_ms); kill -HUP "$bm_PID"
wait_log "$T/bm.log" 'reload refused.*owned by'
ok "key file owned by another user: reload refused in $(( $(now_ms) - t0 )) ms"
rm -f "$KEYS"; mkfifo -m 600 "$KEYS"
t0=$(now_ms); kill -HUP "$bm_PID"
wait_log "$T/bm.log" 'reload refused.*not a regular file'
dt=$(( $(now_ms) - t0 ))
[ "$dt" -lt 3000 ] || fail "FIFO key file: reload refused after $dt ms"
out=$("${ATTACK[@]}" sm-lookup 127.0.0.1 "$SM_PORT" "$UNREC") && [[ $out == *"OK dora@example.com"* ]] || fail "not serving after refused reloads: $out"
ok "key file that is a FIFO: reload refused in $dt ms; the previous keys stay in force"
t0=$(now_ms); kill -TERM "$bm_PID"
for _ in $(seq 100); do kill -0 "$bm_PID" 2>/dev/null || break; sleep 0.05; done
kill -0 "$bm_PID" 2>/dev/null && fail "SIGTERM with a FIFO key file: still running after 5 s"
rc=0; wait "$bm_PID" || rc=$?
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
ok "SIGTERM with a FIFO key file: exited 0 in $(( $(now_ms) - t0 )) ms"
echo "memory (kB VmRSS): baseline $RSS0; after two 100 MB packets $RSS2; 5000 idle connections (cap $CAP) $RSS3; after they closed $RSS4"

# --- 12. bounce-milter check on a bounce with terminal escapes. ------------
printf 'From: MAILER-DAEMON@mx.remote.example\nTo: alice@example.com\nSubject: Undelivered \033[31mRED\033[0m\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n--b\nContent-Type: text/plain\n\nfailed\n\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.remote.example\n\nFinal-Recipient: rfc822; evil\033]0;owned\007@remote.example\nAction: failed\nStatus: 5.1.1\n\n--b\nContent-Type: text/rfc822-headers\n\nMessage-ID: <\033[2Jwipe@example.com>\nFrom: alice\033[5m@example.com\nTo: bob@remote.example\n\n--b--\n' > "$T/escape.eml"
out=$("$BM" check "$T/escape.eml" 2>&1) || true
grep -q 'wipe@example.com' <<<"$out" || fail "check: the returned Message-ID is not shown: $out"
if grep -q $'\033\|\007' <<<"$out"; then
  fail "check printed raw terminal escapes: $(cat -v <<<"$out")"
fi
ok "check prints a hostile bounce's escapes escaped: $(grep 'original id' <<<"$out" | tr -s ' ')"
