#!/usr/bin/env bash
# The platform on a local kind cluster, for users who have Docker (not run by the test suite, which
# has no Docker engine: it renders and validates the same chart offline).
#   1. a kind cluster (local/kind/cluster.yaml)
#   2. the operators the chart's custom resources need: spark-operator, cert-manager + KServe,
#      the Prometheus operator (kube-prometheus-stack, with Grafana's dashboard sidecar), CloudNativePG
#   3. the platform's images, built here and loaded into the cluster
#   4. the Secrets the chart names, with generated passwords (README, "Deploying": every key)
#   5. the platform chart (values-dev.yaml) and the official Airflow chart (helm/airflow)
# Versions are pinned; override with the variables below.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NS=${CHURN_NAMESPACE:-churn}
TAG=${CHURN_VERSION:-0.1.0}
SPARK_OPERATOR=${SPARK_OPERATOR_VERSION:-2.3.0}
KSERVE=${KSERVE_VERSION:-v0.15.2}
CERT_MANAGER=${CERT_MANAGER_VERSION:-v1.18.2}
PROMETHEUS_STACK=${PROMETHEUS_STACK_VERSION:-77.5.0}
CNPG=${CNPG_VERSION:-0.26.0}
AIRFLOW_CHART=${AIRFLOW_CHART_VERSION:-1.18.0}

need() { command -v "$1" >/dev/null || { echo "local/kind/up.sh needs $1 on PATH" >&2; exit 1; }; }
need docker; need kind; need kubectl; need helm

kind get clusters | grep -qx churn || kind create cluster --config "$ROOT/local/kind/cluster.yaml"

helm repo add spark-operator https://kubeflow.github.io/spark-operator >/dev/null
helm repo add prometheus-community https://prometheus-community.github.io/helm-charts >/dev/null
helm repo add cnpg https://cloudnative-pg.github.io/charts >/dev/null
helm repo add apache-airflow https://airflow.apache.org >/dev/null
helm repo update >/dev/null

kubectl apply -f "https://github.com/cert-manager/cert-manager/releases/download/$CERT_MANAGER/cert-manager.yaml"
kubectl -n cert-manager rollout status deploy/cert-manager-webhook --timeout=5m
helm upgrade --install spark-operator spark-operator/spark-operator -n spark-operator --create-namespace \
  --version "$SPARK_OPERATOR" --set "spark.jobNamespaces={$NS}" --wait
helm upgrade --install kube-prometheus prometheus-community/kube-prometheus-stack -n monitoring --create-namespace \
  --version "$PROMETHEUS_STACK" --set grafana.sidecar.dashboards.enabled=true --wait
helm upgrade --install cnpg cnpg/cloudnative-pg -n cnpg-system --create-namespace --version "$CNPG" --wait
kubectl apply --server-side -f "https://github.com/kserve/kserve/releases/download/$KSERVE/kserve.yaml"
kubectl apply --server-side -f "https://github.com/kserve/kserve/releases/download/$KSERVE/kserve-cluster-resources.yaml"

docker build -f "$ROOT/docker/platform.Dockerfile" -t "ghcr.io/churn-platform/platform:$TAG" "$ROOT"
docker build -f "$ROOT/docker/airflow.Dockerfile" --target airflow -t "ghcr.io/churn-platform/airflow:$TAG" "$ROOT"
kind load docker-image --name churn "ghcr.io/churn-platform/platform:$TAG" "ghcr.io/churn-platform/airflow:$TAG"

kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
pw() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
secret() {  # secret NAME KEY=VALUE...: created once, never overwritten
  kubectl -n "$NS" get secret "$1" >/dev/null 2>&1 || kubectl -n "$NS" create secret generic "$@"
}
MINIO_USER=churn MINIO_PW=$(kubectl -n "$NS" get secret churn-minio-root -o jsonpath='{.data.rootPassword}' 2>/dev/null | base64 -d || true)
MINIO_PW=${MINIO_PW:-$(pw)}
secret churn-minio-root --from-literal=rootUser="$MINIO_USER" --from-literal=rootPassword="$MINIO_PW"
for role in jobs predictor crm mlflow; do
  kubectl -n "$NS" get secret "churn-pg-$role" >/dev/null 2>&1 || kubectl -n "$NS" create secret generic "churn-pg-$role" \
    --type=kubernetes.io/basic-auth --from-literal=username="churn_$role" --from-literal=password="$(pw)"
done
pg() { kubectl -n "$NS" get secret "churn-pg-$1" -o jsonpath='{.data.password}' | base64 -d; }
MLFLOW_ADMIN=$(pw)
secret churn-mlflow-server \
  --from-literal=MLFLOW_BACKEND_STORE_URI="postgresql://mlflow:$(pg mlflow)@churn-pg-rw:5432/mlflow" \
  --from-literal=AWS_ACCESS_KEY_ID="$MINIO_USER" --from-literal=AWS_SECRET_ACCESS_KEY="$MINIO_PW" \
  --from-literal=MLFLOW_FLASK_SERVER_SECRET_KEY="$(pw)" \
  --from-literal=basic_auth.ini="$(printf '[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:////tmp/basic_auth.db\nadmin_username = admin\nadmin_password = %s\n' "$MLFLOW_ADMIN")"
secret churn-jobs-settings --from-literal=CHURN_LAKE_URI=s3a://lake/churn --from-literal=CHURN_RAW_URI=s3a://lake/raw \
  --from-literal=CHURN_S3_ENDPOINT=http://churn-minio:9000 --from-literal=CHURN_S3_ACCESS_KEY="$MINIO_USER" \
  --from-literal=CHURN_S3_SECRET_KEY="$MINIO_PW" --from-literal=CHURN_MLFLOW_URI=http://churn-mlflow:5000 \
  --from-literal=MLFLOW_TRACKING_USERNAME=admin --from-literal=MLFLOW_TRACKING_PASSWORD="$MLFLOW_ADMIN" \
  --from-literal=CHURN_REPORTS_DIR=s3://reports/churn
secret churn-jobs-database --from-literal=CHURN_PG_URL="postgresql://churn_jobs:$(pg jobs)@churn-pg-rw:5432/churn"
secret churn-predictor-settings --from-literal=CHURN_MLFLOW_URI=http://churn-mlflow:5000 \
  --from-literal=MLFLOW_TRACKING_USERNAME=admin --from-literal=MLFLOW_TRACKING_PASSWORD="$MLFLOW_ADMIN" \
  --from-literal=CHURN_PG_URL="postgresql://churn_predictor:$(pg predictor)@churn-pg-rw:5432/churn"
# Airflow's metadata database: the Airflow chart's bundled PostgreSQL here (a cluster of record uses its own)
AIRFLOW_DB_PW=$(kubectl -n "$NS" get secret airflow-metadata-password -o jsonpath='{.data.password}' 2>/dev/null | base64 -d || true)
AIRFLOW_DB_PW=${AIRFLOW_DB_PW:-$(pw)}
secret airflow-metadata-password --from-literal=password="$AIRFLOW_DB_PW"
secret airflow-metadata --from-literal=connection="postgresql://postgres:$AIRFLOW_DB_PW@airflow-postgresql:5432/postgres"
secret airflow-fernet-key --from-literal=fernet-key="$(python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')"
secret airflow-api-secret --from-literal=api-secret-key="$(pw)"
secret airflow-jwt-secret --from-literal=jwt-secret="$(pw)"

helm upgrade --install churn "$ROOT/helm/churn-platform" -n "$NS" -f "$ROOT/helm/churn-platform/values-dev.yaml" \
  --set "image.tag=$TAG" --set "airflow.image.tag=$TAG" --wait --timeout 15m
helm upgrade --install airflow apache-airflow/airflow -n "$NS" --version "$AIRFLOW_CHART" \
  -f "$ROOT/helm/airflow/values.yaml" --set-file podTemplate="$ROOT/helm/airflow/pod-template.yaml" \
  --set "images.airflow.tag=$TAG" --set postgresql.enabled=true \
  --set-string postgresql.auth.postgresPassword="$AIRFLOW_DB_PW" --wait --timeout 15m
echo "churn platform installed in namespace $NS: kubectl -n $NS get pods"
