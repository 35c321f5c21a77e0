"""The DAG tests share the session's Airflow metadata database (tests/conftest.py: airflow_home)."""
