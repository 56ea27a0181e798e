#!/usr/bin/env bash
# Installs the Debian packages the real-server tests use, when missing.
# Postfix's interactive setup is pre-answered ("No configuration"): the tests
# run their own throwaway instances and never touch /etc/postfix's service.
set -euo pipefail
need=()
command -v /usr/sbin/postfix >/dev/null || need+=(postfix)
command -v swaks >/dev/null || need+=(swaks)
command -v /usr/sbin/smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || need+=(postfix)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-sentinel >/dev/null || need+=(redis-sentinel)
command -v promtool >/dev/null || need+=(prometheus)
# t-60-deb: lintian on the package; python3-debian parses its copyright
# file (DEP-5, strictly), with Debian's python3 whatever python3 is first in
# PATH. t-61-rpm: rpm queries and installs the RPM.
command -v lintian >/dev/null || need+=(lintian)
/usr/bin/python3 -c 'import debian.copyright' 2>/dev/null || need+=(python3-debian)
command -v rpm >/dev/null || need+=(rpm)
# t-80-web: the monitoring pages in Debian's Chromium (headless).
command -v chromium >/dev/null || need+=(chromium)
# t-40-site: a real PostSRSd beside bounce-milter.
command -v postsrsd >/dev/null || need+=(postsrsd)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "test/deps.sh: missing ${need[*]}; run as root or install them" >&2
  exit 1
fi
echo "test/deps.sh: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string localhost" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
# The packages' own services are not wanted: the tests start their own.
for svc in redis-server redis-sentinel postfix prometheus postsrsd; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
# t-70-docs: the documented metrics commands use curl.
if ! command -v curl >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "test/deps.sh: installing curl"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl >/dev/null
fi
