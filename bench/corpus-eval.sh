#!/bin/sh
# Evaluate the bounce analysis against the labelled corpus, side by side
# with sisimai (perl + Debian's libsisimai-perl, timed in the same run):
# classification, original Message-ID, recipients against the labels and
# against sisimai's results, reasons per message and per record, hard/soft.
#
#   bench/corpus-eval.sh [CORPUS_DIR] [extra corpus-eval flags]
#   (-v lists every miss and the reason confusions; -runs N the timed runs)
#
# CORPUS_DIR defaults to the copy under internal/bounce/testdata.
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
