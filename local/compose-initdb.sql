-- Databases of the compose stack beside the platform's own (churn): MLflow's backend store and
-- Airflow's metadata. Run once by the postgres image on an empty data volume.
CREATE DATABASE mlflow;
CREATE DATABASE airflow;
