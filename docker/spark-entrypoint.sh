#!/bin/bash
# Entrypoint of the platform image. spark-operator starts Spark's pods with `driver ...` or
# `executor` (the contract of Spark's own Kubernetes images); anything else runs as given
# (`churn serve`, `python -m ...`, `mlflow server`, a Kubeflow component).
set -euo pipefail

classpath="${SPARK_HOME}/jars/*${SPARK_EXTRA_CLASSPATH:+:$SPARK_EXTRA_CLASSPATH}"
if [ -n "${SPARK_CONF_DIR:-}" ]; then classpath="$SPARK_CONF_DIR:$classpath"; fi

case "${1:-}" in
  driver)
    shift
    exec "$SPARK_HOME/bin/spark-submit" \
      --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS}" \
      --deploy-mode client "$@"
    ;;
  executor)
    shift
    # the JVM options Spark passes as SPARK_JAVA_OPT_0, _1, ... in their order
    opts=()
    while IFS= read -r line; do opts+=("${line#*=}"); done < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n || true)
    exec "$JAVA_HOME/bin/java" "${opts[@]}" \
      "-Xms${SPARK_EXECUTOR_MEMORY}" "-Xmx${SPARK_EXECUTOR_MEMORY}" \
      -cp "$classpath" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" \
      --cores "$SPARK_EXECUTOR_CORES" --app-id "$SPARK_APPLICATION_ID" \
      --hostname "$SPARK_EXECUTOR_POD_IP" --resourceProfileId "$SPARK_RESOURCE_PROFILE_ID" \
      --podName "$SPARK_EXECUTOR_POD_NAME"
    ;;
  *)
    exec "$@"
    ;;
esac
