#!/usr/bin/env bash
# Runs every end-to-end test (test/t-NN-name/run.sh) in order; each starts
# and stops its own servers on loopback. Prints "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
pass=0 fail=0 failed=()
for t in test/t-*/run.sh; do
  [ -e "$t" ] || continue
  name=$(basename "$(dirname "$t")")
  start=$(date +%s)
  if bash "$t" > "test/tmp-$name.log" 2>&1; then
    pass=$((pass+1)); echo "PASS $name ($(( $(date +%s) - start ))s)"
    rm -f "test/tmp-$name.log"
  else
    fail=$((fail+1)); failed+=("$name"); echo "FAIL $name ($(( $(date +%s) - start ))s)"
    sed 's/^/    /' "test/tmp-$name.log" | tail -60
    rm -f "test/tmp-$name.log"
  fi
done
echo "integration: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
