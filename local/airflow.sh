#!/usr/bin/env bash
# Airflow of the embedded profile, prepared and run the way the platform needs it.
#   local/airflow.sh init    migrate the metadata database and create the lake writers' one-slot pool
#                            (churn/core/pipelines.yaml: platform.lake_writers_pool), idempotent.
#   local/airflow.sh up      init, then start Airflow in the background: scheduler (LocalExecutor),
#                            dag-processor and API server with the UI on http://127.0.0.1:$CHURN_AIRFLOW_PORT
#                            (8080), plus one warm Spark JVM the steps attach to; the churn DAGs
#                            unpaused, so the nightly runs on its schedule and backfills run.
#   local/airflow.sh status  which of those run, and Airflow's own health report
#   local/airflow.sh down    stop them (SIGTERM, then SIGKILL after 20 s)
# `make airflow` is `up`. `make demo` and the DAG tests use init (the demo runs nights with
# `airflow dags test`); a cluster gets the same pool from the Helm chart.
# Environment: AIRFLOW_HOME (default $CHURN_HOME/airflow, CHURN_HOME defaulting to .churn), the
# CHURN_* settings the steps read, CHURN_AIRFLOW_PORT. Logs and pid files: $AIRFLOW_HOME/run/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CHURN_HOME=${CHURN_HOME:-$ROOT/.churn}
export AIRFLOW_HOME=${AIRFLOW_HOME:-$CHURN_HOME/airflow}
export AIRFLOW__CORE__DAGS_FOLDER=${AIRFLOW__CORE__DAGS_FOLDER:-$ROOT/dags}
export AIRFLOW__CORE__LOAD_EXAMPLES=False
AIRFLOW_BIN="$ROOT/.venv/airflow/bin"
AIRFLOW_PY="$AIRFLOW_BIN/python"

init() {
  mkdir -p "$AIRFLOW_HOME"
  local pool
  pool=$("$AIRFLOW_PY" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["platform"]["lake_writers_pool"])' \
         "$ROOT/churn/core/pipelines.yaml")
  if ! { "$AIRFLOW_BIN/airflow" db migrate && "$AIRFLOW_BIN/airflow" pools set "$pool" 1 \
           "One writer per lake: every lake-writing task of the churn DAGs"; } > "$AIRFLOW_HOME/init.log" 2>&1; then
    echo "Airflow init failed; its log: $AIRFLOW_HOME/init.log" >&2
    tail -20 "$AIRFLOW_HOME/init.log" >&2
    exit 1
  fi
  echo "Airflow ready in $AIRFLOW_HOME (pool $pool: 1 slot)"
}

RUN="$AIRFLOW_HOME/run"
PORT=${CHURN_AIRFLOW_PORT:-8080}
COMPONENTS="spark-gateway dag-processor scheduler api-server"

running() {  # running <component>: its process group is alive
  [ -f "$RUN/$1.pid" ] && kill -0 -- "-$(cat "$RUN/$1.pid")" 2>/dev/null
}

health() {
  "$AIRFLOW_PY" - "$PORT" <<'PYEOF'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/v2/monitor/health", timeout=5) as r:
        h = json.load(r)
except OSError as exc:
    print(f"api-server: not answering ({exc})"); sys.exit(1)
print(", ".join(f"{k}: {(v or {}).get('status')}" for k, v in h.items() if k != "triggerer"))
sys.exit(0 if all((h.get(k) or {}).get("status") == "healthy" for k in ("metadatabase", "scheduler", "dag_processor")) else 1)
PYEOF
}

up() {
  for c in $COMPONENTS; do
    if running "$c"; then echo "Airflow already runs under $AIRFLOW_HOME ($c); local/airflow.sh down first" >&2; exit 1; fi
  done
  init
  mkdir -p "$RUN"
  # the API server signs the tokens tasks use to talk back to it: one secret per AIRFLOW_HOME,
  # made here, never in the repository
  if [ -z "${AIRFLOW__API_AUTH__JWT_SECRET:-}" ]; then
    [ -s "$AIRFLOW_HOME/jwt_secret" ] || (umask 077; "$AIRFLOW_PY" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$AIRFLOW_HOME/jwt_secret")
    AIRFLOW__API_AUTH__JWT_SECRET=$(cat "$AIRFLOW_HOME/jwt_secret")
  fi
  export AIRFLOW__API_AUTH__JWT_SECRET
  export AIRFLOW__CORE__EXECUTOR=LocalExecutor
  export AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$PORT
  export AIRFLOW__API__BASE_URL=http://127.0.0.1:$PORT
  export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$PORT/execution/
  # the UI on loopback only, every visitor an admin: the embedded profile is one person's machine
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True
  export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
  export CHURN_AIRFLOW_PROFILE=local CHURN_PLATFORM_PYTHON="$ROOT/.venv/platform/bin/python"
  export CHURN_SPARK_GATEWAY="$RUN/spark-gateway.json"
  rm -f "$CHURN_SPARK_GATEWAY"
  for c in $COMPONENTS; do
    if [ "$c" = spark-gateway ]; then
      setsid "$CHURN_PLATFORM_PYTHON" -m churn spark-gateway --file "$CHURN_SPARK_GATEWAY" > "$RUN/$c.log" 2>&1 < /dev/null &
    else
      setsid "$AIRFLOW_BIN/airflow" "$c" > "$RUN/$c.log" 2>&1 < /dev/null &
    fi
    echo $! > "$RUN/$c.pid"
  done
  local waited=0
  # (the Spark JVM keeps warming up in the background: a step that starts before it is warm
  # starts a JVM of its own)
  until health > /dev/null 2>&1; do
    for c in $COMPONENTS; do
      if ! running "$c"; then echo "Airflow's $c exited; its log: $RUN/$c.log" >&2; tail -20 "$RUN/$c.log" >&2; down; exit 1; fi
    done
    if [ $waited -ge 180 ]; then echo "Airflow did not become healthy in 180 s: $(health)" >&2; down; exit 1; fi
    sleep 1; waited=$((waited + 1))
  done
  # ready means the DAGs are parsed (a backfill can name them) and unpaused as intended: a DAG
  # new to the database starts unpaused (above), one paused in an earlier session is unpaused here
  if ! "$AIRFLOW_PY" - > "$RUN/dags.log" 2>&1 <<'PYEOF'
import os, pathlib, re, sys, time
from airflow.models.dag import DagModel
from airflow.models.errors import ParseImportError
from airflow.utils.session import create_session

folder = pathlib.Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
wanted = {m for f in folder.glob("*.py") for m in re.findall(r'dag_id="([^"]+)"', f.read_text())}
deadline = time.time() + 180
while True:
    with create_session() as session:
        found = session.query(DagModel).filter(DagModel.dag_id.in_(wanted)).all()
        for dag in found:
            if dag.is_paused:
                dag.is_paused = False
                print(f"unpaused {dag.dag_id}")
        names = {dag.dag_id for dag in found}
        broken = session.query(ParseImportError).all()
    if names == wanted:
        print(f"parsed and unpaused: {', '.join(sorted(names))}")
        break
    if broken:  # a DAG file that does not import will not appear: say why now
        last = broken[-1]
        sys.exit(f"{last.filename} does not import: {(last.stacktrace or '').strip().splitlines()[-1]}")
    if time.time() > deadline:
        sys.exit(f"DAGs not parsed in 180 s: {', '.join(sorted(wanted - names))} (see the dag-processor's log)")
    time.sleep(1)
PYEOF
  then
    echo "the churn DAGs did not appear in Airflow; $(tail -1 "$RUN/dags.log")" >&2; down; exit 1
  fi
  echo "Airflow runs under $AIRFLOW_HOME: UI and API http://127.0.0.1:$PORT ($(health))"
  echo "  backfill: AIRFLOW_HOME=$AIRFLOW_HOME $AIRFLOW_BIN/airflow backfill create --dag-id churn_nightly --from-date FIRST --to-date DAY_AFTER_LAST --max-active-runs 1"
  echo "  stop:     local/airflow.sh down    (logs in $RUN)"
}

down() {
  local c pids=""
  for c in $COMPONENTS; do
    if running "$c"; then kill -TERM -- "-$(cat "$RUN/$c.pid")" 2>/dev/null || true; pids="$pids $c"; fi
  done
  for _ in $(seq 20); do
    local left=""
    for c in $pids; do running "$c" && left="$left $c"; done
    [ -z "$left" ] && break
    sleep 1
  done
  for c in $COMPONENTS; do
    running "$c" && kill -KILL -- "-$(cat "$RUN/$c.pid")" 2>/dev/null || true
    rm -f "$RUN/$c.pid"
  done
  echo "Airflow under $AIRFLOW_HOME stopped"
}

status() {
  local c
  for c in $COMPONENTS; do
    if running "$c"; then echo "$c: running (pid $(cat "$RUN/$c.pid"))"; else echo "$c: stopped"; fi
  done
  health || true
}

case "${1:-}" in
  init) init ;;
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: local/airflow.sh init|up|status|down" >&2; exit 2 ;;
esac
