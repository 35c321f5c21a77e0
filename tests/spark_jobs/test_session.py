"""The one SparkSession the platform builds: Delta, the cached jars, and the PostgreSQL JDBC driver."""

from pathlib import Path

import pytest

from churn.core.errors import SetupError
from spark_jobs.jars import jar_paths
from spark_jobs.session import spark_conf
from churn.core.settings import load_settings

pytestmark = pytest.mark.slow


def test_jars_come_from_the_cache_not_a_download(spark, make_settings, tmp_path):
    conf = spark.sparkContext.getConf()
    assert "spark.jars.packages" not in dict(conf.getAll())
    # local mode: on the JVM's class path from its start, never copied per SparkContext
    assert conf.get("spark.jars", None) is None
    jars = conf.get("spark.driver.extraClassPath")
    for name in ("delta-spark_", "hadoop-aws-", "postgresql-"):
        assert name in jars
    assert not list(Path(spark.sparkContext._jvm.org.apache.spark.SparkFiles.getRootDirectory()).glob("*.jar"))
    # on a cluster the executors get them shipped
    cluster = spark_conf(make_settings(tmp_path, spark_master="spark://master:7077"))
    assert all(name in cluster["spark.jars"] for name in ("delta-spark_", "hadoop-aws-", "postgresql-"))


def test_missing_jar_cache_says_how_to_fix(tmp_path):
    s = load_settings(env={"CHURN_HOME": str(tmp_path), "CHURN_JARS_DIR": str(tmp_path / "nojars")})
    with pytest.raises(SetupError, match="make setup"):
        jar_paths(s)


def test_spark_writes_and_reads_postgresql_over_jdbc(spark, postgres):
    df = spark.createDataFrame([(1, "a"), (2, "b")], "id int, name string")
    url = f"jdbc:postgresql://127.0.0.1:{postgres.port}/postgres"
    props = {"user": "postgres", "driver": "org.postgresql.Driver"}
    df.write.jdbc(url, "spark_roundtrip", mode="overwrite", properties=props)
    back = spark.read.jdbc(url, "spark_roundtrip", properties=props)
    assert sorted(tuple(r) for r in back.collect()) == [(1, "a"), (2, "b")]
