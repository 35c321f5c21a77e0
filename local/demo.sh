#!/usr/bin/env bash
# `make demo`: the platform's main job end to end on one machine, embedded profile.
# Generates a customer base with realistic defects, builds the lakehouse for a range of dates
# (bronze -> quarantine -> silver -> gold features and labels), imports the real Telco snapshot,
# trains a model (MLflow, promoted to champion if it passes the gate) and scores the last day.
# Knobs: DEMO_CUSTOMERS, DEMO_DAYS, CHURN_HOME, CHURN_LABEL_HORIZON_DAYS.
set -euo pipefail
cd "$(dirname "$0")/.."
export CHURN_HOME=${CHURN_HOME:-$PWD/.churn/demo}
# a short history needs a short label horizon for an out-of-time split (the product default is 30)
export CHURN_LABEL_HORIZON_DAYS=${CHURN_LABEL_HORIZON_DAYS:-14}
CHURN=".venv/platform/bin/churn"
PY=".venv/platform/bin/python"
CUSTOMERS=${DEMO_CUSTOMERS:-5000}
DAYS=${DEMO_DAYS:-70}
START=$(date -u -d "-$((DAYS + 5)) days" +%F)
END=$(date -u -d "$START +$((DAYS - 1)) days" +%F)

# a demo run is one generated history: start its lake, reports and models afresh (only the demo's own home)
rm -rf "$CHURN_HOME/lake" "$CHURN_HOME/reports" "$CHURN_HOME/mlflow"
mkdir -p "$CHURN_HOME"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "1/6 generating $CUSTOMERS customers, $DAYS daily drops from $START (CHURN_HOME=$CHURN_HOME)"
$CHURN generate --customers "$CUSTOMERS" --start "$START" --days "$DAYS" --seed 42 \
  --defects all --defect-rate 0.005 > "$CHURN_HOME/generate.json"
step "2/6 building the lakehouse $START..$END (weekly snapshots, $CHURN_LABEL_HORIZON_DAYS-day labels)"
$CHURN run --start "$START" --end "$END" --every 7
step "3/6 importing the real IBM Telco snapshot through local/specs/telco.yaml"
$CHURN import-snapshot --spec local/specs/telco.yaml > /dev/null
step "4/6 tables"
$CHURN tables 2>/dev/null
step "5/6 training on the lakehouse (out-of-time split), MLflow registry and promotion gate"
$CHURN train
step "6/6 scoring every active customer on $END with the champion"
$CHURN score --date "$END" > /dev/null
$PY - "$END" <<'PYEOF'
import sys
from churn.lake import delta_table
from churn.settings import load_settings
s = load_settings()
rows = delta_table(s, "gold", "customer_scores").to_pandas(filters=[("score_date", "=", __import__("datetime").date.fromisoformat(sys.argv[1]))])
print(f"{len(rows):,} customers scored; risk bands: {rows['risk_band'].value_counts().to_dict()}")
print("top 5 risk customers and why:")
for _, r in rows.nlargest(5, "churn_probability").iterrows():
    why = "; ".join(f"{x['feature']}={x['value']}" for x in r["reasons"])
    print(f"  {r['customer_id']}  p={r['churn_probability']:.3f}  decile {r['risk_decile']}  {why}")
PYEOF
echo
echo "Lake:        $CHURN_HOME/lake   (scores: gold/customer_scores)"
echo "Validation:  $CHURN_HOME/reports/validation/data_docs/index.html (GX data docs)"
echo "Quarantine:  $CHURN_HOME/lake/quarantine/rejected_rows (reasons per rejected row)"
echo "Evaluation:  $(ls -d "$CHURN_HOME"/reports/training/churn/* | tail -1)/report.html"
echo "MLflow UI:   .venv/platform/bin/mlflow ui --backend-store-uri sqlite:///$CHURN_HOME/mlflow/mlflow.db"
