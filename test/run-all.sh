#!/usr/bin/env bash
# Runs every end-to-end test (test/t-NN-name/run.sh); each starts and stops
# its own servers on loopback, on ports it picks, in its own directory, so
# several run at once: BM_E2E_JOBS (default 2). The tests that build the
# packages (they share dist/) run one after the other, in one slot; the
# others start longest first, so that the slots finish together. Prints a
# line per test ("PASS name (Ns)", or FAIL with the end of its output) and
# "integration: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
JOBS=${BM_E2E_JOBS:-2}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/bm-run-all.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

all=()
for t in test/t-*/run.sh; do
  [ -e "$t" ] && all+=("$(basename "$(dirname "$t")")")
done
# Package builders, in order (t-70 installs what t-60 checks was built).
pkg=()
for name in "${all[@]}"; do
  case $name in t-6[0-9]-*|t-70-docs) pkg+=("$name") ;; esac
done
# The longest of the others first (about a minute each); then the rest.
long=(t-24-faults t-23-cluster t-85-alerts t-30-policy t-40-site)
queue=()
[ ${#pkg[@]} -gt 0 ] && queue+=("pkg:$(IFS=,; echo "${pkg[*]}")")
for name in "${long[@]}"; do
  [ -e "test/$name/run.sh" ] && queue+=("$name")
done
for name in "${all[@]}"; do
  case " ${pkg[*]} ${long[*]} " in *" $name "*) continue ;; esac
  queue+=("$name")
done

run_one() { # NAME: runs one test, records and prints its result
  local name=$1 start rc=0
  start=$(date +%s)
  bash "test/$name/run.sh" > "$OUT/$name.log" 2>&1 || rc=$?
  local secs=$(( $(date +%s) - start ))
  echo "$name $rc" >> "$OUT/results"
  {
    flock 9
    if [ "$rc" = 0 ]; then
      echo "PASS $name (${secs}s)"
    else
      echo "FAIL $name (${secs}s)"
      # What failed first (a test's log tails follow its FAIL line and can
      # push it out of the tail), then the end of the output.
      grep -m3 '^FAIL' "$OUT/$name.log" | sed 's/^/    /'
      sed 's/^/    /' "$OUT/$name.log" | tail -60
    fi
  } 9>>"$OUT/print.lock"
}
run_item() { # pkg:A,B,C (one after the other) or a test's name
  local item=$1 name
  case $item in
    pkg:*) IFS=, read -ra names <<<"${item#pkg:}"
           for name in "${names[@]}"; do run_one "$name"; done ;;
    *) run_one "$item" ;;
  esac
}
export OUT
export -f run_one run_item
# shellcheck disable=SC2016 # $1 is bash -c's argument
printf '%s\n' "${queue[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_item "$1"' _ {}

pass=$(awk '$2 == 0' "$OUT/results" 2>/dev/null | wc -l)
fail=$(awk '$2 != 0' "$OUT/results" 2>/dev/null | wc -l)
ran=$((pass + fail))
[ "$ran" = "${#all[@]}" ] || { echo "integration: $ran of ${#all[@]} tests ran"; fail=$((fail + ${#all[@]} - ran)); }
echo "integration: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
