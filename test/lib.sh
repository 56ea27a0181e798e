# Shared helpers for the end-to-end tests (test/t-NN-*/run.sh). Source it.
# Each test gets its own directory under $T, its own Postfix instance (own
# config directory and queue, chroot off, loopback only), its own Go SMTP
# sink and its own bounce-milter, on free loopback ports. Only processes
# started here are stopped, by the PIDs recorded here.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEST_NAME=$(basename "$(cd "$(dirname "$0")" && pwd)")
T=${T:-${BM_E2E_DIR:-/tmp/bm-e2e}/$TEST_NAME}
BM=${BM:-$ROOT/bin/bounce-milter}
SINK_BIN=$T/smtpsink
PIDS=()

fail() { echo "FAIL: $*" >&2; dump_logs; exit 1; }
ok() { echo "ok - $*"; }

dump_logs() {
  for f in "$T"/pf*/log/maillog "$T"/bm*.log; do
    [ -f "$f" ] && { echo "--- $f (tail)"; tail -40 "$f"; } >&2
  done
  return 0
}

free_port() {
  local p
  for _ in $(seq 200); do
    p=$(( 10000 + RANDOM % 22000 )) # below the ephemeral range (32768-)
    if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then echo "$p"; return; fi
  done
  echo "no free port" >&2; return 1
}

cleanup() {
  local rc=$?
  pf_down || true
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  return $rc
}
trap cleanup EXIT

setup_dirs() {
  [ "$(id -u)" = 0 ] || { echo "SKIP: end-to-end tests need root (Postfix master)"; exit 1; }
  rm -rf "$T"; mkdir -p "$T"
  [ -x "$BM" ] || (cd "$ROOT" && go build -o "$BM" ./cmd/bounce-milter)
  (cd "$ROOT" && go build -o "$SINK_BIN" ./test/smtpsink)
}

wait_port() { # port
  for _ in $(seq 100); do
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  fail "nothing listens on port $1"
}

start_sink() { # port file
  "$SINK_BIN" -addr "127.0.0.1:$1" -out "$2" >"$T/sink.log" 2>&1 &
  PIDS+=($!)
  wait_port "$1"
}

# start_bm NAME ARGS...: runs bounce-milter serve in the background.
start_bm() {
  local name=$1; shift
  "$BM" serve "$@" >"$T/$name.out" 2>"$T/$name.log" &
  local pid=$!
  PIDS+=($pid)
  eval "${name//-/_}_PID=$pid"
}

stop_pid() { # pid
  kill "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}

# pf_up: Postfix on 127.0.0.1:$PF_PORT (the MX: mail from outside) and
# 127.0.0.1:$SUB_PORT (submission: milter_macro_daemon_name=ORIGINATING),
# relaying to the sink on $SINK_PORT. Our domains are relay domains whose
# mail goes to the sink too; mail to nobody@ fails at the sink, so it
# bounces (Postfix's own DSNs): the sink refuses nobody@ with 550. $PF_MILTER, $PF_NON_SMTPD_MILTER, $PF_EXTRA;
# $PF_MX_ARGS and $PF_SUB_ARGS add "-o name=value" overrides to either smtpd.
# $PF_DIR (default $T/pf) is the instance's directory: a test that runs
# several Postfix instances (one per host of a fleet) gives each its own
# PF_DIR and ports; pf_down stops them all.
PF_DIRS=()
pf_up() {
  local D=${PF_DIR:-$T/pf}
  local ETC=$D/etc Q=$D/spool LOG=$D/log
  install -d -m 755 -o root -g root "$D" "$ETC" "$Q" "$LOG"
  chmod 755 "$T" "$(dirname "$T")"
  : > "$LOG/maillog"
  cat > "$ETC/main.cf" <<EOF2
compatibility_level = 3.6
queue_directory = $Q
data_directory = $D/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.example.com
mydomain = example.com
myorigin = example.com
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = example.com, tagmode.example
relayhost = [127.0.0.1]:$SINK_PORT
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtp_dns_support_level = disabled
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtputf8_enable = no
biff = no
in_flow_delay = 0
notify_classes =
maillog_file = $LOG/maillog
maillog_file_prefixes = $T
smtpd_milters = ${PF_MILTER:-}
non_smtpd_milters = ${PF_NON_SMTPD_MILTER:-}
milter_default_action = accept
milter_protocol = 6
bounce_queue_lifetime = 0
maximal_queue_lifetime = 1h
${PF_EXTRA:-}
EOF2
  cat > "$ETC/master.cf" <<EOF2
127.0.0.1:$PF_PORT inet n - n - - smtpd ${PF_MX_ARGS:-}
127.0.0.1:$SUB_PORT inet n - n - - smtpd -o milter_macro_daemon_name=ORIGINATING ${PF_SUB_ARGS:-}
pickup      unix  n       -      n      60     1       pickup
cleanup     unix  n       -      n      -      0       cleanup
qmgr        unix  n       -      n      300    1       qmgr
rewrite     unix  -       -      n      -      -       trivial-rewrite
bounce      unix  -       -      n      -      0       bounce
defer       unix  -       -      n      -      0       bounce
trace       unix  -       -      n      -      0       bounce
verify      unix  -       -      n      -      1       verify
flush       unix  n       -      n      1000?  0       flush
proxymap    unix  -       -      n      -      -       proxymap
smtp        unix  -       -      n      -      -       smtp
relay       unix  -       -      n      -      -       smtp
showq       unix  n       -      n      -      -       showq
error       unix  -       -      n      -      -       error
retry       unix  -       -      n      -      -       error
discard     unix  -       -      n      -      -       discard
anvil       unix  -       -      n      -      1       anvil
scache      unix  -       -      n      -      1       scache
postlog     unix-dgram n  -      n      -      1       postlogd
EOF2
  # $PF_POSTCONF: main.cf settings applied over the ones above, one
  # "name = value" a line (postconf -e), as an admin would.
  if [ -n "${PF_POSTCONF:-}" ]; then
    local line
    while IFS= read -r line; do
      [ -n "$line" ] && postconf -c "$ETC" -e "$line"
    done <<<"$PF_POSTCONF"
  fi
  postfix -c "$ETC" check >"$LOG/check.out" 2>&1 || { cat "$LOG/check.out" >&2; fail "postfix check"; }
  PF_DIRS+=("$D")
  postfix -c "$ETC" start >"$LOG/start.out" 2>&1 || { cat "$LOG/start.out" "$LOG/maillog" >&2; fail "postfix start"; }
  wait_port "$PF_PORT"
  PF_UP=1
}

# pf_down [DIR]: stops the Postfix instance in DIR, or every one started.
pf_down() {
  [ "${PF_UP:-}" = 1 ] || return 0
  local D mpid keep=()
  for D in "${PF_DIRS[@]}"; do
    if [ $# -gt 0 ] && [ "$D" != "$1" ]; then keep+=("$D"); continue; fi
    mpid=$(tr -d ' \n' 2>/dev/null < "$D/spool/pid/master.pid" || true)
    postfix -c "$D/etc" stop >/dev/null 2>&1 || true
    if [ -n "$mpid" ]; then
      for _ in $(seq 100); do [ -e "/proc/$mpid" ] || break; sleep 0.1; done
      postfix -c "$D/etc" abort >/dev/null 2>&1 || true
    fi
  done
  PF_DIRS=("${keep[@]}")
  [ ${#PF_DIRS[@]} -gt 0 ] || PF_UP=0
}

# sink_wait N: wait until the sink has N messages.
sink_wait() {
  for _ in $(seq 100); do
    [ "$(wc -l < "$SINK_OUT" 2>/dev/null || echo 0)" -ge "$1" ] && return 0
    sleep 0.1
  done
  fail "sink has $(wc -l < "$SINK_OUT") messages, want $1"
}

# sink_line N: the Nth message (1-based) as JSON.
sink_line() { sed -n "${1}p" "$SINK_OUT"; }
json_field() { python3 -c 'import json,sys; v=json.loads(sys.stdin.read())[sys.argv[1]]; print(v if isinstance(v,str) else "\n".join(v))' "$1"; }

# smtp PORT ARGS...: swaks with its transcript on stdout.
smtp() {
  local port=$1; shift
  swaks --server "127.0.0.1:$port" --helo client.example.org --timeout 20 "$@" 2>&1 || true
}

expect_reply() { # transcript pattern description
  grep -qE "$2" <<<"$1" || { echo "$1" >&2; fail "$3: no reply matching /$2/"; }
}

# sink_has N BRE: the Nth message's data has a line matching REGEX.
# (grep -q on a pipe would cut the writer short under pipefail.)
sink_has() {
  local data
  data=$(sink_line "$1" | json_field data)
  grep -q -- "$2" <<<"$data"
}

# start_redis PORT [ARGS...]: a throwaway redis-server on 127.0.0.1:PORT, no
# persistence; ARGS are more redis-server options (e.g. --cluster-enabled yes).
start_redis() {
  local port=$1; shift
  mkdir -p "$T/redis-$port"
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$T/redis-$port" \
    --logfile "$T/redis-$port/log" --daemonize no "$@" >/dev/null 2>&1 &
  local pid=$!
  PIDS+=($pid)
  eval "REDIS_PID_$port=$pid"
  wait_port "$port"
}

# elapsed_ms CMD...: runs CMD, prints how long it took in milliseconds on fd 3.
now_ms() { date +%s%3N; }

# --- Helpers for the reload, shutdown and metrics tests (t-50). ---

# wait_log FILE ERE [N]: wait until FILE has at least N (default 1) lines
# matching ERE.
wait_log() {
  local want=${3:-1}
  for _ in $(seq 100); do
    [ "$(grep -cE -- "$2" "$1" 2>/dev/null || true)" -ge "$want" ] && return 0
    sleep 0.1
  done
  fail "$1: no line matching /$2/ (want $want)"
}

# A hand-driven SMTP session on fd 5, for transactions that must stay open
# (swaks cannot pause mid-DATA). The transcript goes to $T/raw-smtp.log.
smtp_open() { # port
  exec 5<>"/dev/tcp/127.0.0.1/$1" || fail "cannot connect to port $1"
  smtp_reply 220
}
smtp_send() { # line: send one line with CRLF
  echo "C: $1" >> "$T/raw-smtp.log"
  printf '%s\r\n' "$1" >&5
}
smtp_reply() { # code: read one (possibly multi-line) reply, fail unless it has this code
  local line
  while IFS= read -r -t 30 line <&5; do
    line=${line%$'\r'}
    echo "S: $line" >> "$T/raw-smtp.log"
    [[ $line =~ ^[0-9]{3}- ]] && continue
    [[ $line == "$1"* ]] && return 0
    fail "SMTP: reply '$line', want $1"
  done
  fail "SMTP: no reply (want $1)"
}
smtp_close() { exec 5<&- 5>&-; }

# http_status URL: the HTTP status code (000 when nothing answers).
http_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" || true; }

# free_port_low: like free_port, but below the kernel's ephemeral port
# range, so that no outgoing connection can take the port between picking
# it and binding it (it happens on a busy machine).
free_port_low() {
  local lo p
  lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$lo" -gt 12000 ] 2>/dev/null || lo=32768
  for _ in $(seq 200); do
    p=$(( 10000 + RANDOM % (lo - 10000) ))
    if ! ss -Htan "sport = :$p" 2>/dev/null | grep -q .; then echo "$p"; return; fi
  done
  echo "no free port" >&2; return 1
}

# deliver DESCRIPTION PORT SWAKS-ARGS...: sends one message that Postfix
# must queue and the sink must receive; it is then message number $n, and
# the SMTP transcript is in $out.
deliver() {
  local desc=$1 port=$2
  shift 2
  out=$(smtp "$port" "$@")
  expect_reply "$out" '<-  250 .*queued' "$desc"
  n=$((n+1))
  sink_wait "$n"
}

# metric_at URL NAME [LABEL="value" ...]: the sum of the samples of metric
# NAME (with every label given) at the Prometheus endpoint URL.
metric_at() {
  local url=$1 name=$2; shift 2
  curl -fsS "$url" | awk -v name="$name" -v want="$*" '
    $1 == name || index($1, name "{") == 1 {
      ok = 1; n = split(want, w, " ")
      for (i = 1; i <= n; i++) if (index($1, w[i]) == 0) ok = 0
      if (ok) s += $2
    }
    END { print s + 0 }'
}
