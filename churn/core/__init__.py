"""The base layer: what every other part of the platform shares and nothing of theirs.

Settings (``settings``), errors, dates, the raw exports' contracts (``sources``), the customer
features (``feature_defs``) and what a score is (``scores``), the lakehouse's tables (``lake``),
single-table snapshot specs (``specs``), PostgreSQL's location (``pg``) and the pipelines,
declared once (``pipelines.yaml``, read by ``pipeline``). It imports no engine: no Spark, MLflow,
XGBoost or KServe (``.importlinter`` checks this).
"""
