#!/usr/bin/env bash
# Runs every Fuzz* target for a short time ($1, default 10s) on top of its
# seed corpus. A crash fails the run and leaves the input under testdata/fuzz.
set -euo pipefail
t=${1:-10s}
cd "$(dirname "$0")/.."
root=$(pwd)
# third_party/go-milter is a nested module (the patched go-milter): ./... of
# the main module does not reach it. There only our targets run (in
# patch_test.go files); upstream's run their seed corpora in `make test`.
for mod in . third_party/go-milter; do
  cd "$root/$mod"
  files='*_test.go'
  [ "$mod" = . ] || files=patch_test.go
  for pkg in $(go list ./...); do
    dir=$(go list -f '{{.Dir}}' "$pkg")
    for f in $(cd "$dir" && grep -ho '^func Fuzz[A-Za-z0-9_]*' $files 2>/dev/null | sed 's/^func //' | sort -u); do
      echo "fuzz $pkg $f ($t)"
      # Go 1.26's fuzz coordinator can fail a target with a bare "context
      # deadline exceeded" when -fuzztime ends while a worker is busy
      # (golang/go#75804, fixed in Go 1.27): no input written, nothing
      # found. Such a run is retried, twice at most; anything else (a
      # failing input, a panic, any other error) fails at once.
      for try in 1 2 3; do
        if go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg" >/tmp/fuzz-$$.log 2>&1; then
          break
        fi
        # A finding names an input, panics, or reports from a test file
        # ("    x_test.go:12: ..."); the race does none of these.
        if [ "$try" -lt 3 ] && grep -q 'context deadline exceeded' /tmp/fuzz-$$.log &&
          ! grep -qiE 'failing input|panic' /tmp/fuzz-$$.log &&
          ! grep -qE '^[[:space:]]+[[:alnum:]_]+\.go:[0-9]+: ' /tmp/fuzz-$$.log; then
          echo "  $f: the fuzz coordinator's deadline race (golang/go#75804), no input found; again"
          continue
        fi
        cat /tmp/fuzz-$$.log; rm -f /tmp/fuzz-$$.log; exit 1
      done
    done
  done
done
rm -f /tmp/fuzz-$$.log
