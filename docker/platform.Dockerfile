# syntax=docker/dockerfile:1
# The platform image (ghcr.io/churn-platform/platform): one image for everything that runs platform
# code in a cluster. Build from the repository root:
#   docker build -f docker/platform.Dockerfile -t ghcr.io/churn-platform/platform:0.1.0 .
# It runs
#   * Spark drivers and executors of the SparkApplications (spark-operator calls the entrypoint
#     with `driver` or `executor`: docker/spark-entrypoint.sh);
#   * the pod steps (`python -m churn.warehouse.publish --date D`, ...), the Kubeflow Pipelines
#     components (training), `churn serve` (the KServe predictor) and `mlflow server`.
# Spark is PySpark's own distribution (its jars include spark-kubernetes); the Delta, hadoop-aws/AWS
# SDK and JDBC jars come from the same pom `make setup` resolves (spark_jobs/jars/pom.xml); Python
# packages come from requirements/runtime.lock alone (no test tools). Bases are pinned by version.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG JAVA_IMAGE=eclipse-temurin:17.0.16_8-jre-jammy
ARG MAVEN_IMAGE=maven:3.9.11-eclipse-temurin-17

# --- the jars of spark_jobs/jars/pom.xml, from Maven Central ---------------------------------------
FROM ${MAVEN_IMAGE} AS jars
WORKDIR /build
COPY spark_jobs/jars/pom.xml pom.xml
RUN mvn -B -q -f pom.xml dependency:copy-dependencies -DoutputDirectory=/jars -DincludeScope=runtime

# --- a Java 17 runtime ----------------------------------------------------------------------------
FROM ${JAVA_IMAGE} AS java

# --- the platform's virtual environment, from the runtime lock --------------------------------------
FROM ${PYTHON_IMAGE} AS venv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1 PIP_NO_CACHE_DIR=1
RUN python -m pip install --no-cache-dir uv==0.13.9 && uv venv /opt/churn/venv
COPY requirements/runtime.lock /tmp/runtime.lock
RUN uv pip install --python /opt/churn/venv/bin/python -r /tmp/runtime.lock
WORKDIR /opt/churn
COPY setup.py README.md ./
COPY churn churn
COPY spark_jobs spark_jobs
COPY ml ml
RUN uv pip install --python /opt/churn/venv/bin/python --no-deps . \
 && /opt/churn/venv/bin/churn --help > /dev/null

# --- the image ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.source="https://github.com/churn-platform/churn-platform" \
      org.opencontainers.image.description="Churn platform: Spark jobs, training components, predictor" \
      org.opencontainers.image.licenses="Apache-2.0"
# tini reaps Spark's child processes and forwards signals (a killed task stops its driver)
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --gid 0 --home-dir /opt/churn --no-create-home --shell /usr/sbin/nologin churn
ENV JAVA_HOME=/opt/java/openjdk \
    SPARK_HOME=/opt/churn/venv/lib/python3.11/site-packages/pyspark \
    PYSPARK_PYTHON=/opt/churn/venv/bin/python \
    PYSPARK_DRIVER_PYTHON=/opt/churn/venv/bin/python \
    CHURN_JARS_DIR=/opt/churn/jars \
    SPARK_EXTRA_CLASSPATH=/opt/churn/jars/* \
    CHURN_HOME=/tmp/churn \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/churn/venv/bin:/opt/java/openjdk/bin:/usr/local/bin:/usr/bin:/bin
COPY --from=java /opt/java/openjdk /opt/java/openjdk
COPY --from=jars /jars /opt/churn/jars
COPY --from=venv /opt/churn /opt/churn
COPY --chmod=0755 docker/spark-entrypoint.sh /opt/churn/bin/spark-entrypoint.sh
WORKDIR /opt/churn
USER 10001
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "/opt/churn/bin/spark-entrypoint.sh"]
CMD ["churn", "--help"]
