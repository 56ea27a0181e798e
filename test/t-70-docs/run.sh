#!/usr/bin/env bash
# Every command in the documentation runs: each ```sh block of docs/*.md,
# the man page (packaging/man/bounce-milter.8.md) and packaging/README.Debian,
# in order, one bash
# per document, inside a throwaway system (sandbox.sh: own PID, network and
# mount namespaces; /etc, /usr, /var are overlays that vanish; systemctl
# and journalctl are stand-ins that run the installed unit's ExecStart as
# its user and wait for READY=1; postconf edits the overlay's
# /etc/postfix). Unless a document says "not-installed", the sandbox starts
# as the quick start leaves a host: the package installed, example.com in
# tag mode, the service running. Blocks can be annotated (see extract.py);
# skips are listed. Needs root, unshare and overlayfs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/test/t-70-docs
T=${T:-${BM_E2E_DIR:-/tmp/bm-e2e}/t-70-docs}
BM=${BM:-$ROOT/bin/bounce-milter}
export ROOT

fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "t-70-docs needs root (namespaces, overlay mounts)"
command -v unshare >/dev/null || fail "no unshare (util-linux)"
rm -rf "$T"; mkdir -p "$T"

# The package the documents install.
[ -x "$BM" ] || (cd "$ROOT" && make -s build)
(cd "$ROOT" && make -s deb) > "$T/make-deb.log" 2>&1 || { cat "$T/make-deb.log" >&2; fail "make deb"; }
debs=("$ROOT"/dist/bounce-milter_*_amd64.deb)
[ ${#debs[@]} = 1 ] && [ -f "${debs[0]}" ] || fail "want one dist/bounce-milter_*_amd64.deb"
DEB=${debs[0]}

# What this build can do: blocks annotated "needs X" run only with X.
caps=()
bm_out=$("$BM" serve --redis redis://127.0.0.1:1 --milter off --socketmap off --data-dir "$T/probe" 2>&1 </dev/null & p=$!; sleep 1; kill "$p" 2>/dev/null; wait "$p" 2>/dev/null) || true
grep -q 'not available in this build' <<<"$bm_out" || caps+=(redis)
check_help=$("$BM" check --help 2>&1 || true)
grep -q 'Not built yet' <<<"$check_help" || caps+=(check)
for _ in $(seq 100); do  # a free pair below the ephemeral port range
  mport=$(( 20000 + RANDOM % 12000 ))
  ss -Hltn "sport = :$mport or sport = :$((mport+1))" 2>/dev/null | grep -q . || break
done
"$BM" serve --metrics "127.0.0.1:$mport" --milter "inet:127.0.0.1:$((mport+1))" --socketmap off \
  --data-dir "$T/probe" > "$T/probe.log" 2>&1 &
p=$!
for _ in $(seq 20); do
  if curl -fsS "http://127.0.0.1:$mport/metrics" >/dev/null 2>&1; then caps+=(metrics); break; fi
  sleep 0.1
done
kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
CAPS=$(IFS=,; echo "${caps[*]:-}")
echo "build capabilities: ${CAPS:-none}"

# The reasons the troubleshooting table explains are exactly the ones the
# engine can log.
python3 - "$ROOT" <<'PY' || fail "docs/troubleshooting.md and internal/backscatter disagree on the reasons"
import glob, re, sys
root = sys.argv[1]
code = set(re.findall(r'\bReason[A-Za-z]+ +Reason = "([a-z-]+)"', open(root + "/internal/backscatter/verdict.go").read()))
if len(code) < 20:
    print("found only %d reasons in verdict.go" % len(code), file=sys.stderr)
    sys.exit(1)
doc = set()
for line in open(root + "/docs/troubleshooting.md"):
    if line.startswith("| `") and "`reason`" not in line:
        doc |= set(re.findall(r"`([a-z-]+)`", line.split("|")[1]))
if code != doc:
    print("only in the code:", sorted(code - doc), "only in the doc:", sorted(doc - code), file=sys.stderr)
    sys.exit(1)
print("reasons: the troubleshooting table covers all %d" % len(code))
PY

docs=("$ROOT"/docs/*.md "$ROOT"/packaging/man/bounce-milter.8.md "$ROOT"/packaging/README.Debian)
[ ${#docs[@]} -ge "${BM_DOCS_MIN:-8}" ] || fail "want the six guides in docs/, the man page and README.Debian, have ${docs[*]}"
total_run=0 total_skip=0 failed=()
# Each document runs in its own sandbox (own mount, network and PID
# namespaces), so several run at once: BM_DOCS_JOBS (default 3).
run_doc() { # NAME OUT SB: runs the document's commands; writes OUT/result
  local name=$1 OUT=$2 SB=$3 start rc=0
  start=$(date +%s)
  timeout 180 unshare --mount --net --pid --fork --mount-proc \
    bash "$HERE/sandbox.sh" "$SB" "$OUT" "$DEB" "$CAPS" > "$OUT/log" 2>&1 || rc=$?
  echo "$rc $(( $(date +%s) - start ))" > "$OUT/result"
  [ "$rc" = 0 ] && rm -rf "$SB"  # the sandbox's overlays; kept when a document fails
  return 0
}
names=()
for doc in "${docs[@]}"; do
  name=$(basename "$doc" .md)
  OUT=$T/$name SB=$T/$name/sb
  mkdir -p "$SB"
  python3 "$HERE/extract.py" "$doc" "$OUT" "$CAPS" || fail "$doc: cannot extract its commands"
  names+=("$name")
  [ "$(grep -c $'\trun\t' "$OUT/blocks.tsv" || true)" -gt 0 ] || continue
  while [ "$(jobs -rp | wc -l)" -ge "${BM_DOCS_JOBS:-3}" ]; do wait -n || true; done
  run_doc "$name" "$OUT" "$SB" &
done
wait
for name in "${names[@]}"; do
  OUT=$T/$name
  nrun=$(grep -c $'\trun\t' "$OUT/blocks.tsv" || true)
  nskip=$(grep -c $'\tskip\t' "$OUT/blocks.tsv" || true)
  total_run=$((total_run + nrun)); total_skip=$((total_skip + nskip))
  [ "$nrun" -gt 0 ] || { failed+=("$name"); echo "FAIL $name: no command runs"; continue; }
  read -r rc secs < "$OUT/result" || { rc=1 secs="?"; }
  if [ "$rc" = 0 ]; then
    echo "ok - $name: $nrun blocks ran (${secs}s)"
  else
    failed+=("$name")
    echo "FAIL $name: the block at $(grep '^=== ' "$OUT/log" | grep -v '^=== sandbox\|^=== redis' | tail -1 | cut -c5-)"
    tail -40 "$OUT/log" | sed 's/^/    /'
  fi
  while IFS=$'\t' read -r where what why; do
    [ "$what" = skip ] && echo "    skip - $where: $why"
  done < "$OUT/blocks.tsv"
done
# The real system was not touched.
[ ! -e /etc/.bm-sandbox ] || fail "a sandbox mount leaked: /etc/.bm-sandbox exists on the host"
[ ! -e /etc/bounce-milter ] || dpkg-query -W bounce-milter >/dev/null 2>&1 || fail "/etc/bounce-milter appeared on the host"
echo "docs: $total_run blocks run, $total_skip skipped, ${#failed[@]} documents failed"
[ ${#failed[@]} = 0 ] || fail "documents with failing commands: ${failed[*]}"
[ "$total_run" -ge 20 ] || fail "only $total_run blocks ran"
