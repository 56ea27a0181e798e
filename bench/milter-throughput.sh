#!/usr/bin/env bash
# Postfix's throughput with bounce-milter, as a ratio to Postfix doing the
# same job without it, measured in one run (round-robin, so that drift of
# a shared machine hits every configuration alike). bounce-milter runs in
# the deployment `bounce-milter postfix-config` recommends (milter and
# socketmap at the MX, the sign-only milter on the submission service),
# with the exact main.cf and master.cf lines it prints, on unix sockets
# and on tcp loopback. Scenarios:
#
#   sign     our users' mail on the submission service, signed; baseline:
#            the same mail through Postfix alone
#   inbound  ordinary mail at the MX (a remote sender to one of our users,
#            no bounce: most of an MX's traffic); baseline: Postfix alone
#   forged   bounces to forged tags, refused at RCPT by the milter;
#            baseline: Postfix refusing those recipients itself
#            (check_recipient_access)
#   dsn      untagged bounces without evidence (a real Postfix DSN),
#            refused after DATA by the milter; baseline: Postfix refusing
#            the same messages at end of data (header_checks REJECT)
#
# With -F, two more configurations: the same deployment with bounce-milter's
# milters replaced by bench/floormilter, which holds the same conversation
# with Postfix (events, no-reply flags, macros, the same answers at the
# same stages) with no logic behind it: the floor of any milter deployed
# this way; bounce-milter's own work is the difference.
#
# Then the daemon's memory: VmRSS peak with 200 concurrent milter sessions,
# and VmRSS along a long mixed run (-M messages; flat is the goal).
#
#   sudo bench/milter-throughput.sh [-n MESSAGES] [-s SESSIONS] [-r ROUNDS]
#        [-S SCENARIOS] [-M MEMORY_RUN_MESSAGES] [-o results.tsv] [-F]
#
# Defaults: -n 3000 -s 10 -r 3 -S "sign inbound forged dsn" -M 100000
# (-M 0 skips the memory part). One message per SMTP connection (so one
# milter connection per message), 512-byte bodies, sent by bench/smtpload
# (smtp-source gives up at the first refused recipient); accepted mail is
# relayed to Postfix's smtp-sink. Postfix's queue is on tmpfs (fsync noise
# would hide the milter's cost); bounce-milter's data directory is on disk
# ($BENCH_DATA, default /var/tmp), as in production, and logs at level info
# (BENCH_LOG_LEVEL) to a file. BENCH_PERF=DIR records a CPU profile of the
# daemon (perf record -g) during each timed run; BENCH_ENV="GOMAXPROCS=1
# GOGC=200" sets the daemon's environment.
set -euo pipefail
N=3000 S=10 R=3 OUT="" SCEN="sign inbound forged dsn" MEMN=100000 W=300 CONFIGS="none unix tcp"
while getopts n:s:r:o:S:M:w:F opt; do
  case $opt in
    n) N=$OPTARG ;; s) S=$OPTARG ;; r) R=$OPTARG ;; o) OUT=$OPTARG ;;
    S) SCEN=$OPTARG ;; M) MEMN=$OPTARG ;; w) W=$OPTARG ;; F) CONFIGS="none unix tcp funix ftcp" ;;
    *) sed -n '2,32p' "$0" >&2; exit 2 ;;
  esac
done
export T=/dev/shm/bm-bench
source "$(dirname "$0")/../test/lib.sh"
setup_dirs
[ -x /usr/sbin/smtp-sink ] || { echo "needs Postfix's smtp-sink (bash test/deps.sh)" >&2; exit 1; }
(cd "$ROOT" && go build -o "$T/smtpload" ./bench/smtpload && go build -o "$T/floormilter" ./bench/floormilter)
DATA_ROOT=$(mktemp -d "${BENCH_DATA:-/var/tmp}/bm-bench-data.XXXXXX")
trap 'cleanup; rm -rf "$DATA_ROOT"' EXIT

PF_PORT=$(free_port); SUB_PORT=$(free_port); SINK_PORT=$(free_port)
MPORT=$(free_port); SPORT=$(free_port); SMPORT=$(free_port); FPORT=$(free_port)
KEYS=$T/keys
printf '1 bench-secret-0123456789\n' > "$KEYS"; chmod 600 "$KEYS"
TAG=$("$BM" sign --key-file "$KEYS" user@example.com)
# A forged tag: a valid one (prvs=KDDDHHHHHH=...) with its hash changed.
FORGED="${TAG:0:9}000000${TAG:15}"
[ "$FORGED" != "$TAG" ] || FORGED="${TAG:0:9}111111${TAG:15}"
install -d -m 755 "$T/run"

# A Postfix DSN for mail we never sent (the spammer's forgery): no tag, no
# evidence, so reject mode refuses it after DATA.
cat > "$T/dsn.eml" <<'EOF'
From: MAILER-DAEMON@mx.remote.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: user@example.com
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"
Message-Id: <20261129.bench@mx.remote.example>

--B1
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.remote.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<victim@remote.example>: host mail.remote.example said: 550 5.1.1
    <victim@remote.example>: Recipient address rejected: User unknown

--B1
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.remote.example
Arrival-Date: Sun, 29 Nov 2026 10:00:00 +0000

Final-Recipient: rfc822; victim@remote.example
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <victim@remote.example>: Recipient address
    rejected: User unknown

--B1
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <user@example.com>
Received: from spambot.example (unknown [198.51.100.7])
	by mx.remote.example (Postfix) with ESMTP id 4AB12
	for <victim@remote.example>; Sun, 29 Nov 2026 10:00:00 +0000
From: user@example.com
To: victim@remote.example
Subject: cheap pills
Message-ID: <forged.1234@spambot.example>

--B1--
EOF
printf '/^Subject: Undelivered Mail Returned to Sender/ REJECT 5.7.1 backscatter\n' > "$T/header_checks"
printf '/^prvs=/ REJECT 5.7.1 forged tag\n' > "$T/forged_tags"

/usr/sbin/smtp-sink -u postfix -c "127.0.0.1:$SINK_PORT" 1024 >"$T/sink.counter" 2>/dev/null </dev/null &
PIDS+=($!)
wait_port "$SINK_PORT"
sink_count() {
  local v
  v=$(tail -c 64 "$T/sink.counter" 2>/dev/null) || v=
  case $v in *mesg=*) v=${v##*mesg=}; v=${v%%[!0-9]*} ;; *) v=0 ;; esac
  echo "${v:-0}"
}

# bm_deploy NET: starts bounce-milter with its three listeners on unix
# sockets or tcp loopback, and sets PF_LINES (main.cf) and SUB_OPTS (the
# submission service's -o options) from what postfix-config prints.
BMPID="" BMDATA="" BM_M="" BM_S="" PF_LINES="" SUB_OPTS="" FLOORPID=""
bm_deploy() {
  local net=$1 m s sm data=$DATA_ROOT/$RANDOM$RANDOM
  BMDATA=$data
  case $net in
    unix) m=unix:$T/run/m.sock s=unix:$T/run/s.sock sm=unix:$T/run/sm.sock ;;
    tcp) m=inet:127.0.0.1:$MPORT s=inet:127.0.0.1:$SPORT sm=inet:127.0.0.1:$SMPORT ;;
  esac
  BM_M=$m BM_S=$s
  cat > "$T/bm.toml" <<CONF
data_dir = "$data"
key_file = "$KEYS"
mode = "reject"
grace = "0s"
[log]
level = "${BENCH_LOG_LEVEL:-info}"
[listen]
socket_mode = "0666"
milter = "$m"
sign = "$s"
socketmap = "$sm"
[domains."example.com"]
CONF
  "$BM" postfix-config --config "$T/bm.toml" > "$T/postfix-config.out"
  PF_LINES=$(sed -n '/^# --- master.cf/q;/^[a-z_]* = /p' "$T/postfix-config.out")
  # The submission service's options, without TLS and SASL (the harness
  # has neither; relaying is permitted to loopback instead).
  SUB_OPTS=$(sed -n '/^submission inet/,/^$/p' "$T/postfix-config.out" | grep '^  -o ' |
    grep -v 'syslog_name\|smtpd_tls_security_level\|smtpd_sasl_auth_enable' | tr '\n' ' ')
  grep -q 'smtpd_milters=' <<<"$SUB_OPTS" || { cat "$T/postfix-config.out"; fail "postfix-config printed no milter for the submission service"; }
  # shellcheck disable=SC2086 # BENCH_ENV: NAME=VALUE words for the daemon
  env ${BENCH_ENV:-} "$BM" serve --config "$T/bm.toml" >"$T/bm.out" 2>"$T/bm.log" &
  BMPID=$!
  PIDS+=("$BMPID")

  local a up=0
  for _ in $(seq 200); do
    up=1
    for a in $m $s $sm; do
      case $a in
        unix:*) [ -S "${a#unix:}" ] || up=0 ;;
        inet:*) ss -Hltn "sport = :${a##*:}" | grep -q . || up=0 ;;
      esac
    done
    [ "$up" = 1 ] && break
    sleep 0.05
  done
  [ "$up" = 1 ] || { cat "$T/bm.log"; fail "bounce-milter did not start"; }
}

bm_stop() {
  if [ -n "$FLOORPID" ]; then stop_pid "$FLOORPID"; FLOORPID=""; fi
  [ -n "$BMPID" ] || return 0
  stop_pid "$BMPID"; BMPID=""
}

# floor_deploy NET SCENARIO: bench/floormilter in place of the milter the
# scenario goes through (the sign-only one on submission, else the MX one),
# in the lines bm_deploy read from postfix-config (bounce-milter keeps
# serving the socketmap).
floor_deploy() {
  local net=$1 scen=$2 f args=()
  case $net in
    unix) f=unix:$T/run/floor.sock; rm -f "$T/run/floor.sock" ;;
    tcp) f=inet:127.0.0.1:$FPORT ;;
  esac
  [ "$scen" = sign ] && args=(-sign)
  "$T/floormilter" -listen "$f" "${args[@]}" >"$T/floor.log" 2>&1 &
  FLOORPID=$!
  PIDS+=("$FLOORPID")
  for _ in $(seq 200); do
    case $f in
      unix:*) [ -S "${f#unix:}" ] && break ;;
      inet:*) ss -Hltn "sport = :$FPORT" | grep -q . && break ;;
    esac
    sleep 0.05
  done
  if [ "$scen" = sign ]; then
    SUB_OPTS=${SUB_OPTS//"$BM_S"/"$f"}
  else
    PF_LINES=$(sed "s|^smtpd_milters = $BM_M\$|smtpd_milters = $f|" <<<"$PF_LINES")
  fi
  grep -q "$f" <<<"$PF_LINES $SUB_OPTS" || fail "floor: no milter line to replace"
}

# pf_start SCENARIO CONFIG: a fresh Postfix for the run.
pf_start() {
  local scen=$1 cfg=$2 extra=""
  rm -rf "$T/pf"
  if [ "$cfg" = none ]; then
    case $scen in
      forged) extra="smtpd_recipient_restrictions = check_recipient_access regexp:$T/forged_tags, permit_mynetworks, reject_unauth_destination" ;;
      dsn) extra="header_checks = regexp:$T/header_checks" ;;
    esac
    PF_POSTCONF=$extra PF_SUB_ARGS="" pf_up
  else
    PF_POSTCONF=$PF_LINES PF_SUB_ARGS=$SUB_OPTS pf_up
  fi
}

queue_empty() { [ -z "$(find "$T/pf/spool/incoming" "$T/pf/spool/active" "$T/pf/spool/deferred" -type f 2>/dev/null | head -1)" ]; }

# traffic SCENARIO: smtpload's arguments for the scenario's mail.
traffic() {
  case $1 in
    sign) echo "-addr 127.0.0.1:$SUB_PORT -from user@example.com -to rcpt@remote.example" ;;
    inbound) echo "-addr 127.0.0.1:$PF_PORT -from sender@remote.example -to user@example.com" ;;
    forged) echo "-addr 127.0.0.1:$PF_PORT -from= -to $FORGED" ;;
    dsn) echo "-addr 127.0.0.1:$PF_PORT -from= -to user@example.com -body $T/dsn.eml" ;;
  esac
}
# What each message of the scenario must get: smtpload's counter.
outcome() { case $1 in sign|inbound) echo accepted ;; forged) echo rcpt_refused ;; dsn) echo data_refused ;; esac; }

# send SCENARIO COUNT SESSIONS: sends, checks that every message got the
# scenario's outcome, waits until the sink has every accepted message and
# the queue is empty; prints the seconds it took.
send() {
  local scen=$1 n=$2 s=$3 before want t0 t1 out got
  local -a args
  before=$(sink_count)
  read -ra args <<<"$(traffic "$scen")"
  t0=$(date +%s.%N)
  out=$("$T/smtpload" -n "$n" -s "$s" "${args[@]}") || fail "$scen: smtpload: $out"
  got=$(awk -v k="$(outcome "$scen")" '{for (i = 1; i < NF; i++) if ($i == k) print $(i+1)}' <<<"$out")
  [ "$got" = "$n" ] || fail "$scen: $(outcome "$scen") $got of $n ($out)"
  want=$before
  [ "$(outcome "$scen")" = accepted ] && want=$((before + n))
  for _ in $(seq 1500); do
    [ "$(sink_count)" -ge "$want" ] && queue_empty && break
    sleep 0.02
  done
  t1=$(date +%s.%N)
  [ "$(sink_count)" -ge "$want" ] || fail "$scen: the sink has $(( $(sink_count) - before )) of $((want - before)) messages"
  echo "$t1 - $t0" | bc -l
}

# check_outcome SCENARIO CONFIG: the run did what it measures (every
# message signed, refused, or delivered untouched).
check_outcome() {
  local scen=$1 cfg=$2 log=$T/pf/log/maillog signed refused
  signed=$(grep -c 'qmgr.*from=<prvs=' "$log" || true)
  refused=$(grep -c ' reject: \|milter-reject: ' "$log" || true)
  case $scen/$cfg in
    sign/none) [ "$signed" = 0 ] || fail "sign/none: $signed messages signed without a milter" ;;
    sign/*) [ "$signed" -ge "$N" ] || fail "sign/$cfg: $signed messages signed, want $N" ;;
    inbound/*) { [ "$signed" = 0 ] && [ "$refused" = 0 ]; } || fail "inbound/$cfg: $signed signed, $refused refused, want none" ;;
    forged/*|dsn/*) [ "$refused" -ge "$N" ] || fail "$scen/$cfg: $refused refused, want $N" ;;
  esac
}

# CPU time in clock ticks: the machine's busy time, and one process's.
HZ=$(getconf CLK_TCK)
cpu_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
proc_cpu() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

RESULTS=${OUT:-$T/results.tsv}
[ -n "$OUT" ] || : > "$RESULTS"
run() { # SCENARIO CONFIG ROUND
  local scen=$1 cfg=$2 round=$3 secs rate
  if [ "$cfg" != none ]; then bm_deploy "${cfg#f}"; fi
  case $cfg in funix|ftcp) floor_deploy "${cfg#f}" "$scen" ;; esac
  # The daemon's CPU: the milter the mail goes through.
  local cpupid=$BMPID
  [ -n "$FLOORPID" ] && cpupid=$FLOORPID
  pf_start "$scen" "$cfg"
  [ "$W" -gt 0 ] && send "$scen" "$W" "$S" >/dev/null
  : > "$T/pf/log/maillog"
  local perfpid=""
  if [ -n "${BENCH_PERF:-}" ]; then
    # BENCH_PERF=DIR: a CPU profile of the daemon during each timed run;
    # with BENCH_PERF_ALL=1, of the whole machine (perf report --sort comm
    # splits it by process: smtpd, cleanup, bounce-milter...).
    mkdir -p "$BENCH_PERF"
    local target=(-p "$cpupid")
    [ -n "${BENCH_PERF_ALL:-}" ] && target=(-a)
    if [ -n "${BENCH_PERF_ALL:-}" ] || [ -n "$cpupid" ]; then
      perf record -q -g "${target[@]}" -o "$BENCH_PERF/$scen-$cfg-$round.data" >/dev/null 2>&1 & perfpid=$!
      sleep 0.3
    fi
  fi
  local busy0 busy1 d0=0 d1=0 cpu_all cpu_bm
  busy0=$(cpu_busy); [ -n "$cpupid" ] && d0=$(proc_cpu "$cpupid")
  secs=$(send "$scen" "$N" "$S")
  busy1=$(cpu_busy); [ -n "$cpupid" ] && d1=$(proc_cpu "$cpupid")
  if [ -n "$perfpid" ]; then kill -INT "$perfpid"; wait "$perfpid" 2>/dev/null || true; fi
  check_outcome "$scen" "$cfg"
  rate=$(echo "$N / $secs" | bc -l)
  # CPU per message (ms): the whole machine's (Postfix, the load driver,
  # the daemon; from /proc/stat) and the daemon's own.
  cpu_all=$(echo "($busy1 - $busy0) * 1000 / $HZ / $N" | bc -l)
  cpu_bm=$(echo "($d1 - $d0) * 1000 / $HZ / $N" | bc -l)
  printf '%s\t%s\t%s\t%d\t%d\t%.3f\t%.1f\t%.3f\t%.3f\n' "$scen" "$cfg" "$round" "$N" "$S" "$secs" "$rate" "$cpu_all" "$cpu_bm" >> "$RESULTS"
  printf '  %-8s %-5s round %d: %7.1f msg/s, CPU per message %.3f ms (daemon %.3f)\n' "$scen" "$cfg" "$round" "$rate" "$cpu_all" "$cpu_bm" >&2
  pf_down
  bm_stop
}

echo "# $(nproc) CPUs; N=$N per run, $S sessions, $R rounds, warm-up $W; results in $RESULTS" >&2
for round in $(seq "$R"); do
  for scen in $SCEN; do
    for cfg in $CONFIGS; do run "$scen" "$cfg" "$round"; done
  done
done

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print 0; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
label() {
  case $1/$2 in
    forged/none) echo "Postfix refusing (check_recipient_access)" ;;
    dsn/none) echo "Postfix refusing (header_checks)" ;;
    */none) echo "Postfix alone" ;;
    */unix) echo "bounce-milter, unix sockets" ;;
    */tcp) echo "bounce-milter, tcp loopback" ;;
    */funix) echo "floor milter (same conversation), unix" ;;
    */ftcp) echo "floor milter (same conversation), tcp" ;;
  esac
}
echo
printf '%-9s %-44s %9s %18s %6s %9s %9s\n' scenario configuration "msg/s" "runs" ratio "cpu ms" "daemon"
for scen in $SCEN; do
  base=$(awk -F'\t' -v s="$scen" '$1==s && $2=="none" {print $7}' "$RESULTS" | median)
  for cfg in $CONFIGS; do
    col() { awk -F'\t' -v s="$scen" -v c="$cfg" -v k="$1" '$1==s && $2==c {print $k}' "$RESULTS" | median; }
    m=$(col 7)
    runs=$(awk -F'\t' -v s="$scen" -v c="$cfg" '$1==s && $2==c {printf "%s%.0f", (n++ ? "/" : ""), $7}' "$RESULTS")
    printf '%-9s %-44s %9.1f %18s %6.2f %9.3f %9.3f\n' "$scen" "$(label "$scen" "$cfg")" "$m" "$runs" \
      "$(echo "$m / $base" | bc -l)" "$(col 8)" "$(col 9)"
  done
done
echo "(cpu ms: the machine's CPU time per message, Postfix, the load driver and the daemon; daemon: the milter's own, bounce-milter's or the floor's)"

[ "$MEMN" -gt 0 ] || exit 0

# Memory. rss_sampler PID FILE: VmRSS (kB) and the milter connections
# open, every 0.2 s, until stopped.
rss_sampler() {
  local pid=$1 file=$2
  while kill -0 "$pid" 2>/dev/null; do
    printf '%s %s %s\n' "$(date +%s.%N)" "$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)" \
      "$(ss -Hx state connected "src $T/run/m.sock" 2>/dev/null | wc -l)" >> "$file"
    sleep 0.2
  done
}
echo
bm_deploy unix
PF_EXTRA="default_process_limit = 300" pf_start inbound unix
rss_sampler "$BMPID" "$T/rss-200.txt" & SAMPLER=$!
start_rss=$(awk '/^VmRSS/ {print $2}' "/proc/$BMPID/status")
send inbound 20000 200 >/dev/null
kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null || true
peak_conn=$(awk '{print $3}' "$T/rss-200.txt" | sort -n | tail -1)
peak_rss=$(awk '{print $2}' "$T/rss-200.txt" | sort -n | tail -1)
printf 'memory: 200 sessions (20000 inbound messages, smtpload -s 200): VmRSS %.1f MB at start, peak %.1f MB with %d milter connections open at most\n' \
  "$(echo "$start_rss / 1024" | bc -l)" "$(echo "$peak_rss / 1024" | bc -l)" "$peak_conn"
pf_down; bm_stop

# A long mixed run: VmRSS at each tenth of it.
bm_deploy unix
pf_start inbound unix
rss_sampler "$BMPID" "$T/rss-long.txt" & SAMPLER=$!
step=$((MEMN / 10))
marks=() anon=()
for _ in $(seq 10); do
  # per tenth: half signed, 3/10 inbound, 2/10 backscatter DSNs
  send sign $((step / 2)) 10 >/dev/null
  send inbound $((step * 3 / 10)) 10 >/dev/null
  send dsn $((step / 5)) 10 >/dev/null
  marks+=("$(awk '/^VmRSS/ {print $2}' "/proc/$BMPID/status")")
  # RssFile: pages of mapped files, here the embedded store's file (bbolt
  # maps it), which grows with the records kept; RssAnon: the heap.
  anon+=("$(awk '/^RssAnon/ {print $2}' "/proc/$BMPID/status")")
done
kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null || true
peak=$(awk '{print $2}' "$T/rss-long.txt" | sort -n | tail -1)
printf 'memory: %d mixed messages (5/10 signed, 3/10 inbound, 2/10 backscatter DSNs): VmRSS (MB) after each tenth:' "$MEMN"
for m in "${marks[@]}"; do printf ' %.1f' "$(echo "$m / 1024" | bc -l)"; done
printf '; peak %.1f MB\n' "$(echo "$peak / 1024" | bc -l)"
printf 'memory: of it anonymous (RssAnon: heap and stacks; the rest maps the store file, %.1f MB at the end):' \
  "$(echo "$(stat -c %s "$BMDATA/state.db" 2>/dev/null || echo 0) / 1048576" | bc -l)"
for m in "${anon[@]}"; do printf ' %.1f' "$(echo "$m / 1024" | bc -l)"; done
printf '\n'
pf_down; bm_stop
