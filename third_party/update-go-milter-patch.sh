#!/usr/bin/env bash
# Writes third_party/go-milter/PATCH.diff: the difference between the copy
# and go-milter as the Go module proxy serves it, for the files the copy
# keeps (README.md and PATCH.diff themselves left out).
set -euo pipefail
cd "$(dirname "$0")/go-milter"
ver=$(sed -n 's/^Based on: github.com\/d--j\/go-milter \(v[0-9.]*\).*/\1/p' README.md)
up=$(cd / && GOFLAGS=-mod=mod go mod download -json "github.com/d--j/go-milter@$ver" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$up" ] || { echo "cannot find go-milter $ver in the module cache" >&2; exit 1; }
out=PATCH.diff
: >"$out"
for f in $(git ls-files . | grep -v -e '^README.md$' -e '^PATCH.diff$' | sort); do
  if [ -f "$up/$f" ]; then a="$up/$f"; else a=/dev/null; fi
  diff -u --label "a/$f" --label "b/$f" "$a" "$f" >>"$out" || true
done
echo "wrote $(pwd)/$out ($(grep -c '^+++ ' "$out") files differ)"
