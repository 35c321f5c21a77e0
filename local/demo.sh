#!/usr/bin/env bash
# `make demo`: the platform's main job end to end on one machine, embedded profile.
# Generates a customer base with realistic defects, builds the lakehouse for a range of dates
# (bronze -> quarantine -> silver -> gold features and labels), imports the real Telco snapshot,
# and prints the tables. Knobs: DEMO_CUSTOMERS, DEMO_DAYS, CHURN_HOME.
set -euo pipefail
cd "$(dirname "$0")/.."
export CHURN_HOME=${CHURN_HOME:-$PWD/.churn/demo}
CHURN=".venv/platform/bin/churn"
CUSTOMERS=${DEMO_CUSTOMERS:-5000}
DAYS=${DEMO_DAYS:-45}
START=$(date -u -d "-$((DAYS + 5)) days" +%F)
END=$(date -u -d "$START +$((DAYS - 1)) days" +%F)

# a demo run is one generated history: start its lake and reports afresh (only the demo's own home)
rm -rf "$CHURN_HOME/lake" "$CHURN_HOME/reports"
mkdir -p "$CHURN_HOME"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "1/4 generating $CUSTOMERS customers, $DAYS daily drops from $START (CHURN_HOME=$CHURN_HOME)"
$CHURN generate --customers "$CUSTOMERS" --start "$START" --days "$DAYS" --seed 42 \
  --defects all --defect-rate 0.005 > "$CHURN_HOME/generate.json"
step "2/4 building the lakehouse $START..$END (weekly snapshots)"
$CHURN run --start "$START" --end "$END" --every 7
step "3/4 importing the real IBM Telco snapshot through local/specs/telco.yaml"
$CHURN import-snapshot --spec local/specs/telco.yaml > /dev/null
step "4/4 tables"
$CHURN tables 2>/dev/null
echo
echo "Lake:        $CHURN_HOME/lake"
echo "Validation:  $CHURN_HOME/reports/validation/data_docs/index.html (GX data docs)"
echo "Quarantine:  $CHURN_HOME/lake/quarantine/rejected_rows (reasons per rejected row)"
