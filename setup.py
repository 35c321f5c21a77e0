"""Installs the platform packages and the `churn` command into the platform environment.

Dependencies are pinned in requirements/platform.lock and installed from it by `make setup`;
install_requires lists only what the code imports directly, unpinned, so the lock decides.
"""

from setuptools import find_packages, setup

setup(
    name="churn-platform",
    version="0.1.0",
    description="Batch-first churn prediction platform: Spark + Delta lakehouse, XGBoost, MLflow, KServe",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["churn", "churn.*", "spark_jobs", "spark_jobs.*", "ml", "ml.*"]),
    package_data={"spark_jobs": ["expectations/*.json", "jars/pom.xml"], "churn": ["warehouse/migrations/*.sql", "core/pipelines.yaml"]},
    install_requires=[
        "pyspark", "delta-spark", "pandas", "pyarrow", "numpy", "pyyaml",
        "great-expectations", "deltalake", "xgboost-cpu", "mlflow", "kfp", "scikit-learn", "matplotlib", "psycopg",
    ],
    entry_points={"console_scripts": ["churn=churn.cli:main"]},
)
