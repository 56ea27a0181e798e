#!/bin/sh
# Prints the package version of the source tree, from git describe:
#   on the tag v1.2.3           1.2.3
#   4 commits after v1.2.3      1.2.3+4.gabcdef0      (sorts after 1.2.3)
#   before the first tag        0.1.0~git133.gabcdef0 (sorts before 0.1.0,
#                               the first release, and by commit count)
#   on the tag v1.3.0-rc1       1.3.0~rc1             (sorts before 1.3.0)
#   not a git checkout          0.1.0~unknown
# The same string is a valid native Debian version and RPM version (no "-").
# A release: add its section to CHANGELOG.md, then tag vX.Y.Z.
set -eu
first=0.1.0
cd "$(dirname "$0")/.."
if d=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
  echo "$d" | sed 's/^v//; s/-\([0-9]*\)-g\([0-9a-f]*\)$/+\1.g\2/; s/-/~/g'
elif n=$(git rev-list --count HEAD 2>/dev/null) && h=$(git rev-parse --short HEAD 2>/dev/null); then
  echo "$first~git$n.g$h"
else
  echo "$first~unknown"
fi
