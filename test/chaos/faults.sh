# Fault runs through a real Postfix (issue 12): source after test/lib.sh.
# Used by test/chaos/run.sh (make chaos: long runs) and
# test/t-24-faults/run.sh (make check: short ones); the sizes come from the
# CH_* variables below.
#
# One Postfix for every fault, as postfix-config recommends: the MX
# (smtpd_milters and non_smtpd_milters, milter_default_action = accept) and
# a submission listener marked ORIGINATING with milter_default_action =
# tempfail. Each fault gets a fresh bounce-milter and store, prefilled
# replay budgets, then load (test/chaos/chaosdrive.py) while the fault
# happens, then bounces of the mail sent before, during and after it and a
# retry of everything that got a 4xx; the report matches every accepted
# message with the sink and checks the goals: no accepted mail lost, no
# valid tag refused, no genuine untagged bounce refused with a 5xx.

: "${CH_TAGS:=200}"          # tagged addresses tu0..@example.com
: "${CH_PREFILL_RCPTS:=50}"  # recipients of the one message prefilled per address
: "${CH_CONC:=10}"           # SMTP sessions
: "${CH_BEFORE:=20}"         # seconds of load before the fault
: "${CH_AFTER:=20}"          # ... after it
: "${CH_PER_PHASE:=200}"     # genuine (and valid) bounces per phase afterwards
: "${CH_PER_TAG:=10}"        # valid bounces per tag per phase afterwards
: "${CH_QUIET:=20}"          # addresses silent during the load (chaosdrive.py: quiet)
: "${CH_REDIS_DOWN:=10}"     # Redis killed, restarted empty after this long
: "${CH_REDIS_STOP:=15}"     # Redis SIGSTOPped this long
: "${CH_DAEMON_DOWN:=5}"     # bounce-milter SIGKILLed, restarted after this long
: "${CH_DISK_FULL:=20}"      # the data directory full this long
: "${CH_DISK_SIZE:=2m}"      # the tmpfs the data directory is on
: "${CH_MIX:=out=35,local=5,valid=20,genuine=10,backscatter=20,forged=10}"

DRIVE=(python3 "$ROOT/test/chaos/chaosdrive.py")
CH_ROWS=()
CH_FAILED=()
CH_MOUNT=

# The exit trap: a paused Redis resumed (a stopped process ignores
# SIGTERM), test/lib.sh's cleanup, the tmpfs unmounted; the test's own
# status kept.
chaos_cleanup() {
  local rc=$?
  if [ -n "${REDIS_PID:-}" ]; then kill -CONT "$REDIS_PID" 2>/dev/null || true; fi
  cleanup || true
  if [ -n "$CH_MOUNT" ] && mountpoint -q "$CH_MOUNT"; then umount "$CH_MOUNT" || true; fi
  exit "$rc"
}

# chaos_setup: ports, keys, tags, the sink and Postfix.
chaos_setup() {
  setup_dirs
  trap chaos_cleanup EXIT
  PF_PORT=$(free_port_low); SUB_PORT=$(free_port_low); SINK_PORT=$(free_port_low)
  MILTER=$(free_port_low); METRICS=$(free_port_low); REDIS_PORT=$(free_port_low)
  SINK_OUT=$T/sink.jsonl
  KEYS=$T/keys
  "$BM" keygen --keynum 1 > "$KEYS"; chmod 600 "$KEYS"
  local i
  for ((i = 0; i < CH_TAGS; i++)); do
    printf 'tu%d@example.com\t%s\n' "$i" "$("$BM" sign --key-file "$KEYS" "tu$i@example.com")"
  done > "$T/tags.tsv"
  start_sink "$SINK_PORT" "$SINK_OUT"
  PF_MILTER="inet:127.0.0.1:$MILTER" PF_NON_SMTPD_MILTER="inet:127.0.0.1:$MILTER" \
    PF_SUB_ARGS="-o milter_default_action=tempfail" PF_EXTRA="default_process_limit = 200" pf_up
  SENDMAIL="/usr/sbin/sendmail -C $T/pf/etc"
}

# bm_up FAULT [serve args]: bounce-milter for FAULT (log appended).
bm_up() {
  local f=$1; shift
  "$BM" serve --config "$T/$f.toml" --socketmap off "$@" >>"$T/$f.log" 2>&1 &
  BM_PID=$!
  PIDS+=("$BM_PID")
  wait_port "$MILTER"; wait_port "$METRICS"
}

bm_config() { # FAULT DATA_DIR
  cat > "$T/$1.toml" <<CONF
data_dir = "$2"
key_file = "$KEYS"
mode = "reject"
grace = "0s"
[listen]
milter = "inet:127.0.0.1:$MILTER"
metrics = "127.0.0.1:$METRICS"
[domains."example.com"]
# Every test client is 127.0.0.1: per-client flood control would turn
# every untagged bounce into "flood" and hide what the store knows.
[store.flood]
recipient_limit = -1
client_limit = -1
CONF
}

redis_up() {
  rm -rf "$T/redis-$REDIS_PORT"
  start_redis "$REDIS_PORT"
  eval "REDIS_PID=\$REDIS_PID_$REDIS_PORT"
}

mark() { echo "$1 $(date +%s.%N)" >> "$T/$F.marks"; }
healthz() { curl -s -m 3 -w '\nHTTP %{http_code}' "http://127.0.0.1:$METRICS/healthz" 2>/dev/null || echo "HTTP 000"; }
metrics_of() { curl -s -m 3 "http://127.0.0.1:$METRICS/metrics" 2>/dev/null | grep -E '^bounce_milter_(store|recorder)' || true; }

wait_healthy() { # seconds
  local i
  for ((i = 0; i < $1 * 10; i++)); do
    [ "$(http_status "http://127.0.0.1:$METRICS/healthz")" = 200 ] && return 0
    sleep 0.1
  done
  echo "health still failing after $1 s: $(healthz | tr '\n' ' ')" >&2
}

queue_len() {
  find "$T/pf/spool/incoming" "$T/pf/spool/active" "$T/pf/spool/deferred" "$T/pf/spool/hold" \
    "$T/pf/spool/maildrop" -type f 2>/dev/null | wc -l
}
wait_queue() { # seconds: until Postfix's queue is empty
  local i
  for ((i = 0; i < $1 * 10; i++)); do
    [ "$(queue_len)" = 0 ] && { sleep 0.5; return 0; }
    sleep 0.1
  done
  echo "queue not empty after $1 s: $(queue_len) files" >&2
}

# chaos_fault NAME: one fault, start to report. NAME: redis-kill,
# redis-stop, daemon-kill, disk-full.
chaos_fault() {
  F=$1
  local t0 data redis=() down dpid forged=() R=$T/$F.jsonl
  t0=$(date +%s)
  : > "$T/$F.marks"; : > "$R"
  data=$T/$F-data
  case $F in
    redis-*) redis_up; redis=(--redis "redis://127.0.0.1:$REDIS_PORT/0") ;;
    disk-full)
      CH_MOUNT=$T/small; mkdir -p "$CH_MOUNT"
      mount -t tmpfs -o size="$CH_DISK_SIZE" tmpfs "$CH_MOUNT" || fail "cannot mount a tmpfs on $CH_MOUNT"
      data=$CH_MOUNT/data ;;
  esac
  bm_config "$F" "$data"
  bm_up "$F" "${redis[@]}"
  local common=(--sub-port "$SUB_PORT" --mx-port "$PF_PORT" --tags "$T/tags.tsv" --conc "$CH_CONC" --sendmail "$SENDMAIL" --out "$R" --quiet "$CH_QUIET")
  "${DRIVE[@]}" prefill "${common[@]}" --label "$F-pre" --rcpts "$CH_PREFILL_RCPTS"
  case $F in
    redis-kill) down=$CH_REDIS_DOWN ;; redis-stop) down=$CH_REDIS_STOP ;;
    daemon-kill) down=$CH_DAEMON_DOWN; forged=(--forged-may-pass) ;; disk-full) down=$CH_DISK_FULL ;;
  esac
  "${DRIVE[@]}" run "${common[@]}" --known "$R" --label "$F-run" --duration "$((CH_BEFORE + down + CH_AFTER))" --mix "$CH_MIX" &
  dpid=$!
  sleep "$CH_BEFORE"
  mark fault_start
  case $F in
    redis-kill)
      kill -9 "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true
      sleep "$down"; redis_up ;;
    redis-stop)
      kill -STOP "$REDIS_PID"; sleep $((down / 2))
      healthz > "$T/$F.health-during"; sleep $((down - down / 2))
      kill -CONT "$REDIS_PID" ;;
    daemon-kill)
      kill -9 "$BM_PID"; wait "$BM_PID" 2>/dev/null || true
      sleep "$down"; bm_up "$F" ;;
    disk-full)
      dd if=/dev/zero of="$CH_MOUNT/filler" bs=64k 2>/dev/null || true
      # /healthz and the metrics, twice a second while the disk is full
      # (a write that finds a free page of the file can still succeed).
      local end=$(( $(date +%s) + down )) i=0
      while [ "$(date +%s)" -lt "$end" ]; do
        sleep 0.5; i=$((i + 1))
        healthz > "$T/$F.health-during.$i"; metrics_of > "$T/$F.metrics-during.$i"
      done
      rm -f "$CH_MOUNT/filler" ;;
  esac
  mark fault_end
  wait "$dpid" || fail "$F: the load driver failed"
  wait_healthy 30
  "${DRIVE[@]}" bounceback "${common[@]}" --known "$R" --label "$F-bb" --marks "$T/$F.marks" \
    --per-phase "$CH_PER_PHASE" --per-tag "$CH_PER_TAG"
  wait_queue 120
  metrics_of > "$T/$F.metrics-after"
  local row rc=0
  row=$("${DRIVE[@]}" report --name "$F" --sink "$SINK_OUT" --marks "$T/$F.marks" --json "$T/$F.report.json" \
    "${forged[@]}" "$R") || rc=1
  if [ "$F" = disk-full ]; then
    # /healthz must say that the store cannot write while the disk is full,
    # and the metrics that writes fail and records wait.
    local n failing metr
    n=$(ls "$T/$F".health-during.* | wc -l)
    failing=$(grep -l 'writes failing' "$T/$F".health-during.* | wc -l)
    metr=0
    for i in $(seq "$n"); do
      awk '$1 == "bounce_milter_store_writes_ok" && $2 == 0 {w=1} $1 == "bounce_milter_store_records_pending" && $2 > 0 {p=1}
        END {exit !(w && p)}' "$T/$F.metrics-during.$i" && metr=$((metr + 1))
    done
    if [ "$failing" -gt 0 ] && [ "$metr" -gt 0 ]; then
      echo "  ok   $F: while full, /healthz said 503 store: writes failing in $failing of $n samples, the metrics writes_ok 0 with records pending in $metr" >&2
      echo "       $(grep -h -m1 'writes failing' "$T/$F".health-during.* | head -1 | cut -c1-150)" >&2
    else
      echo "  FAIL $F: while full, /healthz said writes failing in $failing of $n samples, the metrics in $metr" >&2
      rc=1
    fi
  fi
  CH_ROWS+=("$row")
  [ "$rc" = 0 ] || CH_FAILED+=("$F")
  echo "$row"
  echo "  ($F: $(( $(date +%s) - t0 )) s; given up: $(grep -E '^bounce_milter_store_records_dropped_total' "$T/$F.metrics-after" | awk '{print $2}'))" >&2
  stop_pid "$BM_PID"
  if [ -n "${REDIS_PID:-}" ]; then kill -CONT "$REDIS_PID" 2>/dev/null; stop_pid "$REDIS_PID"; REDIS_PID=; fi
  if [ "$F" = disk-full ]; then umount "$CH_MOUNT" && CH_MOUNT=; fi
}
