#!/usr/bin/env bash
# `make demo`: the whole product on one machine, embedded profile.
# Generates a customer base with realistic defects, builds the lakehouse history (bronze ->
# quarantine -> silver -> gold features and labels), imports the real Telco snapshot, trains a model
# and promotes it to champion (MLflow), starts a local PostgreSQL under CHURN_HOME unless
# CHURN_PG_URL is set, then runs the churn_nightly DAG through Airflow (local profile) for the last
# few days: score everyone with the champion, publish to PostgreSQL for CRM teams and watch the
# model. The generator raises prices on the first of those nights: the monitor's drift report flags
# it and requests a retrain, which churn_training answers (the gate decides). Last, starts
# `churn serve` (KServe) for a moment and asks it for one customer over v1 and over v2.
# Knobs: DEMO_CUSTOMERS, DEMO_DAYS, DEMO_NIGHTS, CHURN_HOME, CHURN_PG_URL, CHURN_LABEL_HORIZON_DAYS, CHURN_TUNE_TRIALS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CHURN_HOME=${CHURN_HOME:-$ROOT/.churn/demo}
# a short history needs a short label horizon for an out-of-time split (the product default is 30)
export CHURN_LABEL_HORIZON_DAYS=${CHURN_LABEL_HORIZON_DAYS:-14}
# the retraining the demo triggers tunes first (churn_training runs the pipeline with --tune): a
# short search on a small demo; the product default is 40 trials
export CHURN_TUNE_TRIALS=${CHURN_TUNE_TRIALS:-10}
CHURN="$ROOT/.venv/platform/bin/churn"
PY="$ROOT/.venv/platform/bin/python"
AIRFLOW="$ROOT/.venv/airflow/bin/airflow"
CUSTOMERS=${DEMO_CUSTOMERS:-5000}
DAYS=${DEMO_DAYS:-70}
NIGHTS=${DEMO_NIGHTS:-3}
START=$(date -u -d "-$((DAYS + 2)) days" +%F)
END=$(date -u -d "$START +$((DAYS - 1)) days" +%F)
HISTORY_END=$(date -u -d "$END -$NIGHTS days" +%F)
DRIFT_DATE=$(date -u -d "$HISTORY_END +1 day" +%F)  # the first night Airflow runs: prices rise 10 %

# a demo run is one generated history: start its lake, reports, models and Airflow state afresh
# (only the demo's own home; a PostgreSQL named by CHURN_PG_URL is never emptied)
rm -rf "$CHURN_HOME/lake" "$CHURN_HOME/raw" "$CHURN_HOME/oracle" "$CHURN_HOME/reports" "$CHURN_HOME/mlflow" "$CHURN_HOME/airflow"
mkdir -p "$CHURN_HOME/airflow"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/9 generating $CUSTOMERS customers, $DAYS daily drops from $START, a price rise on $DRIFT_DATE (CHURN_HOME=$CHURN_HOME)"
$CHURN generate --customers "$CUSTOMERS" --start "$START" --days "$DAYS" --seed 42 \
  --defects all --defect-rate 0.005 --drift price_rise --drift-date "$DRIFT_DATE" > "$CHURN_HOME/generate.json"

step "2/9 building the lakehouse history $START..$HISTORY_END (weekly snapshots, $CHURN_LABEL_HORIZON_DAYS-day labels)"
$CHURN run --start "$START" --end "$HISTORY_END" --every 7

step "3/9 importing the real IBM Telco snapshot through local/specs/telco.yaml"
$CHURN import-snapshot --spec local/specs/telco.yaml > /dev/null
$CHURN tables 2>/dev/null

step "4/9 training on the lakehouse (out-of-time split), MLflow registry and promotion gate"
if $PY -c "from churn.core.settings import load_settings; from ml.registry import Registry; import sys; \
s = load_settings(); sys.exit(0 if Registry(s).alias_version(s.model_name, 'champion') else 1)" 2>/dev/null; then
  echo "a champion exists: keeping it"
else
  $CHURN train
fi

step "5/9 PostgreSQL for the published scores"
OWN_PG=0
if [ -z "${CHURN_PG_URL:-}" ]; then
  OWN_PG=1
  export CHURN_PG_URL=$($CHURN db start | $PY -c 'import json,sys; print(json.load(sys.stdin)["url"])')
  # the demo's database holds the demo's history only: clear the last demo's publications
  $PY - <<'PYEOF'
import os, psycopg
with psycopg.connect(os.environ["CHURN_PG_URL"], autocommit=True) as conn:
    conn.execute("DROP SCHEMA IF EXISTS churn CASCADE")
    conn.execute("DROP SCHEMA IF EXISTS churn_staging CASCADE")
PYEOF
  echo "local PostgreSQL under $CHURN_HOME/postgres: $CHURN_PG_URL"
else
  echo "publishing to CHURN_PG_URL ($($CHURN settings | $PY -c 'import json,sys; print(json.load(sys.stdin)["pg_url"])'))"
fi
$CHURN db upgrade

step "6/9 the churn_nightly DAG through Airflow (local profile) for $NIGHTS nights up to $END"
export AIRFLOW_HOME="$CHURN_HOME/airflow" AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags" AIRFLOW__CORE__LOAD_EXAMPLES=False
export CHURN_AIRFLOW_PROFILE=local CHURN_PLATFORM_PYTHON="$PY"
export CHURN_LAKE_URI=${CHURN_LAKE_URI:-$CHURN_HOME/lake}
# one warm Spark JVM for every step of every night (each step still runs as its own process)
export CHURN_SPARK_GATEWAY="$CHURN_HOME/spark-gateway.json"
rm -f "$CHURN_SPARK_GATEWAY"  # a file left by an interrupted demo names no running JVM
$CHURN spark-gateway > "$CHURN_HOME/spark-gateway.log" 2>&1 &
GATEWAY_PID=$!
trap 'kill $GATEWAY_PID 2>/dev/null || true' EXIT
bash local/airflow.sh init  # the metadata database and the lake writers' one-slot pool
# the gateway announces itself (writes its file) once its JVM is warm: wait for it, or the first
# Spark task would start a JVM of its own
for _ in $(seq 180); do
  [ -f "$CHURN_SPARK_GATEWAY" ] && break
  kill -0 $GATEWAY_PID 2>/dev/null || { echo "churn spark-gateway exited; its log: $CHURN_HOME/spark-gateway.log" >&2; exit 1; }
  sleep 1
done
for i in $(seq "$NIGHTS" -1 1); do
  D=$(date -u -d "$END -$((i - 1)) days" +%F)
  echo "-- night of $D (log: $AIRFLOW_HOME/dags-test-$D.log)"
  t0=$(date +%s)
  "$AIRFLOW" dags test churn_nightly "$D" 2>&1 | tee "$AIRFLOW_HOME/dags-test-$D.log" \
    | grep --line-buffered -E "INFO  (spark_jobs|churn|ml)[.:a-z_]*: .*(done in|published|applied|up to date|features drifted)|ERROR|Traceback" \
    | sed -u -E 's/^.*INFO  /   /; s/ \[airflow[^]]*\] loc=.*$//' | cut -c1-160 || true
  if ! grep -q "state=success" "$AIRFLOW_HOME/dags-test-$D.log"; then
    echo "churn_nightly failed for $D; the task logs are in $AIRFLOW_HOME/dags-test-$D.log" >&2
    exit 1
  fi
  echo "   night of $D: every task succeeded in $(( $(date +%s) - t0 )) s"
done

step "7/9 the model watched: drift per night, the retrain it requested, and the gate's answer"
$PY - <<'PYEOF'
import os, psycopg
with psycopg.connect(os.environ["CHURN_PG_URL"]) as conn:
    print("drift per night (churn.drift_nights; per feature: churn.drift_metrics):")
    for d, version, share, importance, features, report in conn.execute(
            "SELECT score_date, model_version, drifted_share, drifted_importance, drifted_features, report_uri "
            "FROM churn.drift_nights ORDER BY score_date"):
        print(f"  {d}  model v{version}: {float(share):.0%} of features drifted, carrying {float(importance):.0%} "
              f"of its importance ({features or 'none'})")
    print(f"  the last night's report: {report}")
PYEOF
$CHURN models history | grep -E "retrain_request|^model" | cut -c1-220
if $CHURN models history | grep -q retrain_request; then
  echo "-- a retrain was requested: churn_training answers it (Kubeflow pipeline, local runner; the gate decides)"
  "$AIRFLOW" dags test churn_training "$(date -u +%F)" > "$AIRFLOW_HOME/dags-test-training.log" 2>&1 || true
  if ! grep -q "state=success" "$AIRFLOW_HOME/dags-test-training.log"; then
    echo "churn_training failed; its log: $AIRFLOW_HOME/dags-test-training.log" >&2
    exit 1
  fi
  $CHURN models history | tail -3 | cut -c1-260
fi

step "8/9 what the CRM team sees"
PSQL=$(ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | tail -1 || true)
PSQL=${PSQL:-psql}
CRM_URL=$CHURN_PG_URL
if [ "$OWN_PG" = 1 ]; then
  # a login for the analyst, member of the read-only role the migrations created (demo server only:
  # trust auth on loopback; a real deployment gives CRM users their own logins and passwords)
  $PY -c "import os, psycopg; c = psycopg.connect(os.environ['CHURN_PG_URL'], autocommit=True); \
c.execute(\"DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'crm_analyst') THEN \
CREATE ROLE crm_analyst LOGIN IN ROLE churn_crm_reader; END IF; END \$\$\")"
  CRM_URL=${CHURN_PG_URL/postgres@/crm_analyst@}
fi
$PY - "$CRM_URL" <<'PYEOF'
import sys, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    print("published nights (churn.scoring_runs):")
    for d, status, n, secs in conn.execute(
            "SELECT score_date, status, rows_published, round((load_seconds + publish_seconds)::numeric, 1) "
            "FROM churn.scoring_runs ORDER BY started_at"):
        print(f"  {d}  {status:9}  {n:>7,} customers  {secs} s")
    print("top 5 risk customers today (churn.customer_scores_latest) and why:")
    for cid, p, band, reasons in conn.execute(
            "SELECT customer_id, churn_probability, risk_band, reasons FROM churn.customer_scores_latest "
            "ORDER BY churn_probability DESC LIMIT 5"):
        why = "; ".join(f"{r['description']}: {r['value']}" for r in reasons)
        print(f"  {cid}  p={p:.3f} {band:6}  {why}")
PYEOF
step "9/9 online: \`churn serve\` (KServe ModelServer) answers by customer id, v1 and v2 protocols"
kill $GATEWAY_PID 2>/dev/null || true  # the nightly's JVM is not needed any more
SERVE_PORT=${DEMO_SERVE_PORT:-$($PY -c 'from churn.core.net import free_port; print(free_port())')}
$CHURN serve --port "$SERVE_PORT" > "$CHURN_HOME/serve.log" 2>&1 &
SERVE_PID=$!
trap 'kill $GATEWAY_PID $SERVE_PID 2>/dev/null || true' EXIT
$PY - "$SERVE_PORT" "$SERVE_PID" "$CHURN_HOME/serve.log" <<'PYEOF'
import json, os, sys, time, urllib.request
from churn.core.pg import connect
from churn.core.settings import load_settings
port, pid, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
base = f"http://127.0.0.1:{port}"
def call(path, body=None):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode() if body else None,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())
deadline = time.time() + 180
while True:
    try:
        call("/v2/models/churn/ready"); break
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit(f"churn serve exited; its log: {log}")
        if time.time() > deadline:
            sys.exit(f"churn serve did not become ready in 180 s; its log: {log}")
        time.sleep(0.5)
with connect(load_settings()) as conn:
    (cid,) = conn.execute("SELECT customer_id FROM churn.customer_scores_latest "
                          "ORDER BY churn_probability DESC LIMIT 1").fetchone()
v1 = call("/v1/models/churn:predict", {"instances": [{"customer_id": cid},
          {"customer_id": cid, "overrides": {"contract": "Two year"}}]})["predictions"]
for label, r in zip(("as stored", "what if: two-year contract"), v1):
    why = "; ".join(f"{x['description']}: {x['value']}" for x in r["reasons"])
    print(f"  v1 {cid} {label:27} p={r['churn_probability']:.3f} {r['risk_band']:6}  model v{r['model_version']}, "
          f"features of {r['feature_snapshot_date']}  ({why})"[:220])
v2 = call("/v2/models/churn/infer", {"inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [1],
                                                 "data": [cid]}]})
outs = {o["name"]: o["data"][0] for o in v2["outputs"]}
print(f"  v2 {cid} churn_probability={outs['churn_probability']:.3f} risk_band={outs['risk_band']} "
      f"model_version={v2['model_version']}")
PYEOF
kill $SERVE_PID 2>/dev/null || true
wait $SERVE_PID 2>/dev/null || true

echo
echo "Scores (Delta):  $CHURN_LAKE_URI/gold/customer_scores   (one partition per night)"
echo "Scores (CRM):    churn.customer_scores (history), churn.customer_scores_latest, churn.scoring_runs"
echo "A CRM analyst:   $PSQL \"$CRM_URL\" -c \"SELECT customer_id, churn_probability, risk_band, reasons FROM churn.customer_scores_latest ORDER BY churn_probability DESC LIMIT 20\""
echo "Validation:      $CHURN_HOME/reports/validation/data_docs/index.html (GX data docs)"
echo "Drift:           $CHURN_HOME/reports/drift/<night>/drift.html (Evidently), churn.drift_nights / churn.drift_metrics"
echo "Evaluation:      $(ls -d "$CHURN_HOME"/reports/training/churn/* | tail -1)/report.html"
echo "MLflow UI:       .venv/platform/bin/mlflow ui --backend-store-uri sqlite:///$CHURN_HOME/mlflow/mlflow.db"
echo "Online:          CHURN_HOME=$CHURN_HOME .venv/platform/bin/churn serve --port 8080   (then the curl calls in the README)"
echo "Airflow:         AIRFLOW_HOME=$AIRFLOW_HOME .venv/airflow/bin/airflow dags list-runs churn_nightly"
if [ "$OWN_PG" = 1 ]; then
  echo "PostgreSQL is left running for you; stop it with: CHURN_HOME=$CHURN_HOME $CHURN db stop"
fi
