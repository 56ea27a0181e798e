#!/usr/bin/env bash
# Postfix throughput with bounce-milter against Postfix alone, measured in
# one run, on two traffic mixes:
#   mix   1/2  signing: our users' mail on the submission port (ORIGINATING)
#         1/4  bounces to a valid prvs tag on the MX port (accepted, stripped)
#         1/4  backscatter: untagged bounces on the MX port (rejected at end
#              of data by the milter; accepted and relayed without it, so
#              Postfix alone does more work here: see "sign")
#   sign  all messages signed (submission port): the same deliveries with
#         and without the milter, so the ratio is the milter's whole cost
# Configurations, run round-robin so that drift of a shared VM hits all of
# them alike: Postfix without a milter; bounce-milter on a unix socket;
# bounce-milter on tcp loopback. Reports msg/s (median of the rounds) and
# the ratio of each to no milter.
#
#   sudo bench/milter-throughput.sh [-n MESSAGES] [-s SESSIONS] [-r ROUNDS] [-o results.tsv]
#
# Queue on tmpfs (/dev/shm): fsync noise would otherwise hide the milter's
# cost. in_flow_delay = 0: rejected mail never returns flow tokens.
set -euo pipefail
N=4000 S=10 R=3 OUT=""
while getopts n:s:r:o: opt; do
  case $opt in
    n) N=$OPTARG ;; s) S=$OPTARG ;; r) R=$OPTARG ;; o) OUT=$OPTARG ;;
    *) echo "usage: $0 [-n N] [-s SESSIONS] [-r ROUNDS] [-o FILE]" >&2; exit 2 ;;
  esac
done
export T=/dev/shm/bm-bench
source "$(dirname "$0")/../test/lib.sh"
setup_dirs
[ -x /usr/sbin/smtp-source ] && [ -x /usr/sbin/smtp-sink ] || { echo "needs postfix's smtp-source and smtp-sink (bash test/deps.sh)" >&2; exit 1; }

PF_PORT=$(free_port); SUB_PORT=$(free_port); SINK_PORT=$(free_port); MILTER_PORT=$(free_port)
KEYS=$T/keys
printf '1 bench-secret\n' > "$KEYS"; chmod 600 "$KEYS"
TAG=$("$BM" sign --key-file "$KEYS" user@example.com)
install -d -m 755 -o postfix "$T/sink"

start_smtp_sink() {
  setsid /usr/sbin/smtp-sink -u postfix -c "127.0.0.1:$SINK_PORT" 1024 >"$T/sink/counter.out" 2>/dev/null </dev/null &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
  wait_port "$SINK_PORT"
}

run_config() { # label milter-spec traffic
  local label=$1 spec=$2 traffic=$3 bmpid=""
  rm -rf "$T/pf"
  case $spec in
    unix:*) start_bm bmbench --data-dir "$T/bm-data" --key-file "$KEYS" --domains example.com --grace 0s \
              --milter "$spec" --socketmap off --log-level warn; bmpid=$bmbench_PID
            for _ in $(seq 100); do [ -S "${spec#unix:}" ] && break; sleep 0.05; done
            chmod 666 "${spec#unix:}" ;;
    inet:*) start_bm bmbench --data-dir "$T/bm-data" --key-file "$KEYS" --domains example.com --grace 0s \
              --milter "$spec" --socketmap off --log-level warn; bmpid=$bmbench_PID
            wait_port "${spec##*:}" ;;
  esac
  PF_MILTER=$spec pf_up
  local start end pids=()
  local half=$((S / 2 > 0 ? S / 2 : 1))
  start=$(date +%s.%N)
  if [ "$traffic" = sign ]; then
    /usr/sbin/smtp-source -s "$S" -m "$N" -l 512 -f user@example.com -t rcpt@example.org "127.0.0.1:$SUB_PORT" 2>/dev/null &
    pids+=($!)
  else
    /usr/sbin/smtp-source -s "$S" -m $((N / 2)) -l 512 -f user@example.com -t rcpt@example.org "127.0.0.1:$SUB_PORT" 2>/dev/null &
    pids+=($!)
    /usr/sbin/smtp-source -s "$half" -m $((N / 4)) -l 512 -f '' -t "$TAG" "127.0.0.1:$PF_PORT" 2>/dev/null &
    pids+=($!)
    /usr/sbin/smtp-source -s "$half" -m $((N / 4)) -l 512 -f '' -t user@example.com "127.0.0.1:$PF_PORT" 2>/dev/null &
    pids+=($!)
  fi
  wait "${pids[@]}" || true
  # Until the queue is empty: accepted mail is relayed to the sink.
  for _ in $(seq 600); do
    postqueue -c "$T/pf/etc" -p 2>/dev/null | grep -q 'Mail queue is empty' && break
    sleep 0.05
  done
  end=$(date +%s.%N)
  local secs rate
  secs=$(echo "$end - $start" | bc -l)
  rate=$(echo "$N / $secs" | bc -l)
  printf '%s\t%d\t%.3f\t%.1f\n' "$label" "$N" "$secs" "$rate" | tee -a "$RESULTS"
  pf_down
  [ -n "$bmpid" ] && stop_pid "$bmpid"
  return 0
}

RESULTS=${OUT:-$T/results.tsv}
: > "$RESULTS"
start_smtp_sink
echo "# N=$N sessions=$S rounds=$R; label, messages, seconds, msg/s" >&2
for round in $(seq "$R"); do
  for traffic in mix sign; do
    run_config "$traffic/none" "" "$traffic"
    run_config "$traffic/unix" "unix:$T/milter.sock" "$traffic"
    run_config "$traffic/tcp" "inet:127.0.0.1:$MILTER_PORT" "$traffic"
  done
done

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
echo
printf '%-28s %10s %8s\n' configuration "msg/s" ratio
for traffic in mix sign; do
  base=$(awk -F'\t' -v l="$traffic/none" '$1==l{print $4}' "$RESULTS" | median)
  for label in none unix tcp; do
    m=$(awk -F'\t' -v l="$traffic/$label" '$1==l{print $4}' "$RESULTS" | median)
    printf '%-28s %10.1f %8.2f\n' "$traffic/$label" "$m" "$(echo "$m / $base" | bc -l)"
  done
done
