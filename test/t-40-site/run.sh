#!/usr/bin/env bash
# A real site, in every deployment the docs offer: Postfix with recipient
# validation (relay_recipient_maps, reject_unlisted_recipient), a
# recipient_delimiter, a submission service marked ORIGINATING, PostSRSd
# (real, from Debian) rewriting forwarded senders, a forwarding alias and a
# mailing list's bounce addresses; bounce-milter configured with exactly
# the lines `bounce-milter postfix-config` prints for the deployment
# (PostSRSd's reverse map after ours, as docs/coexistence.md says).
#
# test/sitecheck sends our users' mail out, then genuine mail (bounces to
# tags and, quoting our Message-IDs, untagged; headers-only returns;
# delayed DSNs; auto-replies and read receipts; bounces to SRS and list
# addresses; bounces after callout probes; mail from other sites'
# postmasters) and backscatter (unknown Message-IDs, forged, expired and
# unknown-key tags, replays past the budget, another user's Message-ID,
# auto-replies to forged tags, auto-replies marked only by rarer headers,
# challenge-response), and prints per deployment:
#   genuine delivered N/N, backscatter refused M/M
# Both must be complete. (A policy service without the milter reads no
# body: the untagged backscatter only a body shows is delivered marked,
# and counted apart.)
source "$(dirname "$0")/../lib.sh"
setup_dirs
command -v postsrsd >/dev/null || { echo "FAIL: postsrsd not installed (test/deps.sh installs it)"; exit 1; }
(cd "$ROOT" && go build -o "$T/sitecheck" ./test/sitecheck) || fail "cannot build sitecheck"

PF_PORT=$(free_port_low); SUB_PORT=$(free_port_low); SINK_PORT=$(free_port_low)
SRS_F=$(free_port_low); SRS_R=$(free_port_low)
SINK_OUT=$T/sink.jsonl
KEYS=$T/keys
printf '3 site-test-secret\n' > "$KEYS"; chmod 600 "$KEYS"

# PostSRSd, our own instance.
head -c 32 /dev/urandom | base64 > "$T/srs.secret"; chmod 600 "$T/srs.secret"
postsrsd -s"$T/srs.secret" -d example.com -l127.0.0.1 -f"$SRS_F" -r"$SRS_R" -4 > "$T/postsrsd.log" 2>&1 &
PIDS+=($!)
wait_port "$SRS_R"

start_sink "$SINK_PORT" "$SINK_OUT"

# The site's own maps: who exists, and a forwarding alias.
mkdir -p "$T/site"
printf '%s OK\n' alice@example.com bob@example.com carol@example.com dave@example.com erin@example.com \
  frank@example.com postmaster@example.com abuse@example.com list-bounces@example.com owner-list@example.com > "$T/site/relay_recipients"
printf 'fwd@example.com dest@remote.example\n' > "$T/site/virtual"
mkdir -p "$T/pf/etc"; printf "compatibility_level = 3.6\n" > "$T/pf/etc/main.cf"
postmap -c "$T/pf/etc" "hash:$T/site/relay_recipients" && postmap -c "$T/pf/etc" "hash:$T/site/virtual" || fail "postmap"

# The site's main.cf beyond the harness's: loopback is not a trusted
# network here (every test client plays an outside sender on the MX port).
SITE_POSTCONF="mynetworks = 127.0.0.2/32
relay_recipient_maps = hash:$T/site/relay_recipients
virtual_alias_maps = hash:$T/site/virtual
recipient_delimiter = +
smtpd_recipient_restrictions = reject_unauth_destination, reject_unlisted_recipient
sender_canonical_maps = tcp:127.0.0.1:$SRS_F
sender_canonical_classes = envelope_sender"

summaries=()
run_deployment() { # NAME SERVE-FLAGS...
  local dep=$1; shift
  local D=$T/$dep t_dep
  t_dep=$(date +%s)
  mkdir -p "$D"; chmod 755 "$D"
  cat > "$D/bm.toml" <<CONF
data_dir = "$D/data"
key_file = "$KEYS"
mode = "reject"
grace = "0s"
[listen]
socket_mode = "0666"
[domains."example.com"]
CONF
  "$BM" postfix-config --config "$D/bm.toml" --postfix-dir "$T/pf/etc" "$@" > "$D/postfix-config.out" 2>&1 || { cat "$D/postfix-config.out"; fail "$dep: postfix-config"; }
  # main.cf: every "name = value" line printed before the master.cf part;
  # PostSRSd's reverse map goes after ours.
  local lines
  lines=$(sed -n '/^# --- master.cf/q;/^[a-z_]* = /p' "$D/postfix-config.out" |
    sed "s|^recipient_canonical_maps = \(.*\)|recipient_canonical_maps = \1, tcp:127.0.0.1:$SRS_R|")
  grep -q '^recipient_canonical_maps' <<<"$lines" || lines+=$'\n'"recipient_canonical_maps = tcp:127.0.0.1:$SRS_R"
  # master.cf: the -o options printed for the submission service. (No SASL
  # here: relaying is permitted on it outright, standing in for
  # permit_sasl_authenticated.)
  local sub_opts
  sub_opts=$(sed -n '/^submission inet/,/^$/p' "$D/postfix-config.out" | grep '^  -o ' | grep -v 'syslog_name\|smtpd_tls_security_level\|smtpd_sasl_auth_enable' | tr '\n' ' ')
  grep -q 'milter_default_action=tempfail' <<<"$sub_opts" || fail "$dep: the submission service does not wait while bounce-milter is down"
  start_bm "bm-$dep" --config "$D/bm.toml" "$@"
  local pid_var="bm_${dep//-/_}_PID"
  for _ in $(seq 100); do grep -q 'bounce-milter started' "$T/bm-$dep.log" && break; sleep 0.1; done
  grep -q 'bounce-milter started' "$T/bm-$dep.log" || { cat "$T/bm-$dep.log"; fail "$dep: bounce-milter did not start"; }
  if grep -q '^recipient_canonical_maps = regexp:' <<<"$lines"; then
    "$BM" postfix-config --config "$D/bm.toml" --postfix-dir "$T/pf/etc" "$@" --regexp-map > "$T/pf/etc/bounce-milter-tags.regexp" ||
      fail "$dep: regexp map"
  fi
  PF_POSTCONF="$SITE_POSTCONF
$lines" PF_SUB_ARGS="-o mynetworks=127.0.0.0/8 -o smtpd_relay_restrictions=permit_mynetworks,reject_unauth_destination -o smtpd_recipient_restrictions=permit_mynetworks,reject $sub_opts" pf_up_keep_etc
  echo "--- $dep: $(head -1 "$D/postfix-config.out")"
  local out rc=0 t0
  t0=$(date +%s)
  out=$("$T/sitecheck" -mx "127.0.0.1:$PF_PORT" -sub "127.0.0.1:$SUB_PORT" -sink "$SINK_OUT" -keys "$KEYS" \
    -deployment "$dep" -token "$dep-$RANDOM") || rc=$?
  echo "$out"
  echo "    ($dep: setup $(( t0 - t_dep ))s, the cases $(( $(date +%s) - t0 ))s)"
  summaries+=("$(tail -1 <<<"$out")")
  pf_down
  stop_pid "${!pid_var}"
  [ "$rc" = 0 ] || fail "$dep: $(tail -1 <<<"$out")"
}

# pf_up on a fresh queue (the etc directory, with the regexp map written
# into it before Postfix starts, is kept).
pf_up_keep_etc() {
  rm -rf "$T/pf/spool" "$T/pf/data"
  pf_up
}

mkdir -p "$T/pf/etc"
run_deployment milter --milter "unix:$T/milter/m.sock" --sign "unix:$T/milter/s.sock" --socketmap "unix:$T/milter/sm.sock"
ok "milter + socketmap: ${summaries[-1]}"
run_deployment milter-only --milter "unix:$T/milter-only/m.sock" --sign "unix:$T/milter-only/s.sock" --socketmap off
ok "milter only (regexp map): ${summaries[-1]}"
run_deployment policy --milter off --sign "unix:$T/policy/s.sock" --policy "unix:$T/policy/p.sock" --socketmap off
ok "policy service only (sign-only milter on submission, regexp map): ${summaries[-1]}"
run_deployment policy-milter --milter "unix:$T/policy-milter/m.sock" --sign "unix:$T/policy-milter/s.sock" --policy "unix:$T/policy-milter/p.sock" --socketmap "unix:$T/policy-milter/sm.sock"
ok "policy + milter + socketmap: ${summaries[-1]}"
