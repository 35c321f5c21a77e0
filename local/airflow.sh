#!/usr/bin/env bash
# Airflow of the embedded profile, prepared the way the platform needs it.
#   local/airflow.sh init   migrate the metadata database and create the lake writers' one-slot pool
#                           (churn/core/pipelines.yaml: platform.lake_writers_pool), idempotent.
# `make demo` and the DAG tests run it; a cluster gets the same pool from the Helm chart.
# Environment: AIRFLOW_HOME (default $CHURN_HOME/airflow, CHURN_HOME defaulting to .churn).
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

case "${1:-}" in
  init) init ;;
  *) echo "usage: local/airflow.sh init" >&2; exit 2 ;;
esac
