#!/usr/bin/env bash
# make chaos: the long fault runs of issue 12 through a real Postfix (the
# short ones are test/t-24-faults, in make check). Four faults under load,
# each on a fresh bounce-milter and store: Redis killed and restarted empty,
# Redis paused (SIGSTOP), bounce-milter killed (SIGKILL) and restarted, the
# embedded store's data directory full then freed. test/chaos/faults.sh has
# the scenario, chaosdrive.py the load and the count.
#
# Sizes: the CH_* variables of faults.sh (defaults: 200 tagged addresses,
# 10 SMTP sessions, 20 s of load before and after each fault). Everything
# lives under $BM_E2E_DIR (default /dev/shm/bm-chaos: Postfix's queue and
# the stores on tmpfs). CH_FAULTS picks faults; CHAOS_RESULTS names a file
# for the results table (Markdown), which is also printed.
export BM_E2E_DIR=${BM_E2E_DIR:-/dev/shm/bm-chaos}
source "$(dirname "$0")/../lib.sh"
source "$ROOT/test/chaos/faults.sh"
command -v redis-server >/dev/null || fail "redis-server missing (bash test/deps.sh)"
start=$(date +%s)
chaos_setup
faults=${CH_FAULTS:-redis-kill redis-stop daemon-kill disk-full}
head=$("${DRIVE[@]}" table-head)
echo "$head"
for f in $faults; do
  chaos_fault "$f"
done
cmd="make chaos${CH_FAULTS:+ CH_FAULTS=\"$CH_FAULTS\"}"
res=$(cat <<RES
Command: \`$cmd\` ($(date -u '+%F %H:%M') UTC, $(( $(date +%s) - start )) s, commit $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- . 2>/dev/null || echo "+changes")).

Conditions: $(nproc) vCPUs shared with other jobs; Postfix $(postconf -d -h mail_version 2>/dev/null), redis-server $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/'); everything on 127.0.0.1, Postfix's queue and the stores on tmpfs ($BM_E2E_DIR). $CH_CONC SMTP sessions, one message per session; $CH_TAGS tagged addresses ($CH_QUIET quiet), each prefilled with one message to $CH_PREFILL_RCPTS recipients; mix $CH_MIX; ${CH_BEFORE} s of load before each fault and ${CH_AFTER} s after; then $CH_PER_PHASE genuine and valid bounces per phase (original sent before / during / after the fault) and one retry of every 4xx. Faults: Redis SIGKILL, restarted empty after ${CH_REDIS_DOWN} s; Redis SIGSTOP ${CH_REDIS_STOP} s; bounce-milter SIGKILL, restarted after ${CH_DAEMON_DOWN} s (MX milter_default_action = accept, submission tempfail); data directory (tmpfs of $CH_DISK_SIZE) filled for ${CH_DISK_FULL} s. Flood control off (every client is 127.0.0.1).

$head
$(printf '%s\n' "${CH_ROWS[@]}")

Reading it: sent counts every SMTP transaction or sendmail(1) call (the prefill, the load, the
bounces afterwards and the retries); tempfailed includes transport errors; lost is accepted (250
after DATA, or sendmail exit 0) but never at the sink. Valid refused: 5xx to a bounce to a valid tag
that stayed within what the tag signed. Genuine refused: 5xx to an untagged bounce returning the
headers (Date, Message-ID) of a message we sent. Every 4xx was retried once after the fault, as a
sending MTA would. Backscatter accepted, why: "gap" = delivered marked neutral because the forged
original is dated in a gap of the store's history (up to 5 minutes after a crash, a Redis outage or
a Redis that lost its data); "unchecked" = taken by Postfix while bounce-milter was down
(milter_default_action = accept), as were the forged tags accepted in daemon-kill. Checked goals
(the run fails otherwise): lost 0, valid refused 0, genuine refused 0, outbound all signed, retries
all accepted, no forged tag accepted while the daemon ran, and while the disk was full /healthz 503
"store: writes failing" with bounce_milter_store_writes_ok 0 and records pending.
RES
)
echo
echo "$res"
[ -n "${CHAOS_RESULTS:-}" ] && { mkdir -p "$(dirname "$CHAOS_RESULTS")"; printf '%s\n' "$res" > "$CHAOS_RESULTS"; echo "results: $CHAOS_RESULTS"; }
echo "per-fault details: $T/<fault>.report.json, logs $T/<fault>.log, Postfix $T/pf/log/maillog"
[ ${#CH_FAILED[@]} -eq 0 ] || fail "faults with a failed goal: ${CH_FAILED[*]}"
echo "chaos: all goals met"
