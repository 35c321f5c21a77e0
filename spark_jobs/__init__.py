"""Lakehouse jobs. Each step is a command keyed on a date (or a date range for backfills):

    python -m spark_jobs.ingest --date 2026-01-31
    python -m spark_jobs.validate --date 2026-01-31
    python -m spark_jobs.silver --date 2026-01-31
    python -m spark_jobs.build_features --date 2026-01-31
    python -m spark_jobs.labels --date 2026-01-31

and ``churn run`` chains them in one process. Every step replaces exactly its own partitions or
rows (Delta replaceWhere / MERGE), so reruns and backfills never duplicate anything.
"""
