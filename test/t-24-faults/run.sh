#!/usr/bin/env bash
# Faults under load through a real Postfix, short (issue 12; make chaos runs
# the long version): Redis killed and restarted empty, Redis paused
# (SIGSTOP), bounce-milter killed (SIGKILL) and restarted with
# milter_default_action = accept at the MX and tempfail on submission, and
# the embedded store's data directory full, then freed. In each: no
# accepted message lost, no valid tag refused, no genuine untagged bounce
# (one returning the headers of mail we sent before, during or after the
# fault) refused with a 5xx; /healthz says the store cannot write while
# the disk is full. test/chaos/faults.sh has the scenario.
source "$(dirname "$0")/../lib.sh"
source "$ROOT/test/chaos/faults.sh"
command -v redis-server >/dev/null || fail "redis-server missing (bash test/deps.sh)"
CH_TAGS=12 CH_PREFILL_RCPTS=10 CH_CONC=4 CH_BEFORE=3 CH_AFTER=2 CH_PER_PHASE=25 CH_PER_TAG=6 CH_QUIET=4
CH_REDIS_DOWN=3 CH_REDIS_STOP=4 CH_DAEMON_DOWN=2 CH_DISK_FULL=4 CH_DISK_SIZE=1m
CH_MIX=out=35,local=10,valid=20,genuine=10,backscatter=15,forged=10
chaos_setup
"${DRIVE[@]}" table-head
for f in ${CH_FAULTS:-redis-kill redis-stop daemon-kill disk-full}; do
  chaos_fault "$f"
done
[ ${#CH_FAILED[@]} -eq 0 ] || fail "faults with a failed goal: ${CH_FAILED[*]}"
ok "faults: no accepted mail lost, no valid tag or genuine bounce refused (5xx), /healthz reports a full disk"
