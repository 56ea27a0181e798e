#!/bin/sh
# Evaluate the bounce analysis against the labelled corpus, side by side
# with sisimai (perl + Debian's libsisimai-perl, timed in the same run).
#
#   bench/corpus-eval.sh [CORPUS_DIR] [extra corpus-eval flags]
#
# CORPUS_DIR defaults to the copy under internal/backscatter/testdata.
# Without perl/Sisimai installed, the sisimai timing is skipped and the
# README's figure is used for the ratio.
set -eu
cd "$(dirname "$0")/.."
corpus=${1:-internal/bounce/testdata/corpus}
[ $# -gt 0 ] && shift
if perl -MSisimai -e1 2>/dev/null; then
	exec go run ./bench/corpus-eval -corpus "$corpus" -sisimai "$@"
fi
echo "perl -MSisimai not available (apt-get install libsisimai-perl); skipping sisimai timing" >&2
exec go run ./bench/corpus-eval -corpus "$corpus" "$@"
