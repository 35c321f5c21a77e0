# syntax=docker/dockerfile:1
# The Airflow image: the official apache/airflow 3.3 image, the providers pinned by
# requirements/airflow.lock, and the churn DAGs with the pipeline declaration they read.
# Build from the repository root:
#   docker build -f docker/airflow.Dockerfile --target airflow -t ghcr.io/churn-platform/airflow:0.1.0 .
# Targets:
#   airflow        the cluster image (KubernetesExecutor, CHURN_AIRFLOW_PROFILE=kubernetes): tasks run
#                  as pods and SparkApplications of the platform image, so no platform code is here.
#   airflow-local  the one-workstation image of local/docker-compose.yaml (LocalExecutor, the local
#                  profile): it adds the platform's environment, Java and jars from the platform image
#                  (PLATFORM_IMAGE) beside Airflow's, as two separate virtual environments, the
#                  same split as `make setup`: Airflow and the platform never share one.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
ARG PLATFORM_IMAGE=ghcr.io/churn-platform/platform:0.1.0

FROM ${PLATFORM_IMAGE} AS platform

FROM ${AIRFLOW_IMAGE} AS airflow
# the providers at the versions of the lock; Airflow itself stays the image's own
COPY requirements/airflow.lock /tmp/airflow.lock
RUN pip install --no-cache-dir --constraint /tmp/airflow.lock \
      "apache-airflow==3.3.2" apache-airflow-providers-cncf-kubernetes apache-airflow-providers-postgres \
      apache-airflow-providers-standard "psycopg[binary]"
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root churn/core/pipelines.yaml /opt/airflow/churn/pipelines.yaml
ENV CHURN_PIPELINES_FILE=/opt/airflow/churn/pipelines.yaml \
    CHURN_AIRFLOW_PROFILE=kubernetes \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
USER 50000

FROM airflow AS airflow-local
COPY --from=platform /opt/java/openjdk /opt/java/openjdk
COPY --from=platform /opt/churn /opt/churn
ENV CHURN_AIRFLOW_PROFILE=local \
    CHURN_PLATFORM_PYTHON=/opt/churn/venv/bin/python \
    CHURN_JARS_DIR=/opt/churn/jars \
    JAVA_HOME=/opt/java/openjdk
