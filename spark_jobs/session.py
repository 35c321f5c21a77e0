"""The one way the platform makes a SparkSession: Delta enabled, jars from the cache, s3a set up.

Local profile: ``local[*]`` with a small shuffle partition count (2 cores). Cluster profile: the same
function with ``CHURN_SPARK_MASTER`` and the jars baked into the image; nothing else changes.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import signal
import sys
from pathlib import Path

from spark_jobs.jars import jar_paths
from churn.core.settings import Settings

log = logging.getLogger(__name__)


def spark_conf(settings: Settings, app_name: str = "churn") -> dict[str, str]:
    jars = jar_paths(settings)
    pg_jar = next(j for j in jars if Path(j).name.startswith("postgresql-"))
    local = settings.spark_master.startswith("local")
    conf = {
        "spark.app.name": app_name,
        "spark.master": settings.spark_master,
        # On a cluster, spark.jars ships the jars to the executors. In local mode the executor is the
        # driver's JVM, and spark.jars would make every new SparkContext copy all of them (about
        # 670 MB: Delta, hadoop-aws, the AWS SDK) into a temp folder it never removes if killed: a
        # step attached to the warm JVM paid that copy each time, and killed steps filled /tmp. On
        # the JVM's class path from its start instead.
        **({} if local else {"spark.jars": ",".join(jars)}),
        # the JDBC driver must also be on the driver's class path for DriverManager to see it
        "spark.driver.extraClassPath": ":".join(jars) if local else pg_jar,
        "spark.executor.extraClassPath": pg_jar,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.driver.memory": settings.spark_driver_memory,
        **({"spark.executor.memory": settings.spark_executor_memory} if settings.spark_executor_memory else {}),
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Delta rebuilds table state with this many tasks at every commit; the default (50) costs
        # about 8 s per commit on 2 cores. Measured: 12 s -> 3 s per replaceWhere.
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.codegen.wholeStage": str(settings.spark_codegen).lower(),
        # Spark's switch for expression code generation (CODEGEN_ONLY/FALLBACK/NO_CODEGEN), the one its
        # own test suites flip; FALLBACK is Spark's default
        "spark.sql.codegen.factoryMode": "FALLBACK" if settings.spark_codegen else "NO_CODEGEN",
        "spark.driver.extraJavaOptions": "-Dderby.system.home=" + str(Path(settings.home) / "derby"),
        "spark.sql.warehouse.dir": str(Path(settings.home) / "spark-warehouse"),
    }
    if settings.s3_endpoint or settings.is_s3 or settings.raw_uri.startswith("s3"):
        conf.update(
            {
                "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
                "spark.hadoop.fs.s3a.path.style.access": str(settings.s3_path_style).lower(),
                "spark.hadoop.fs.s3a.endpoint.region": settings.s3_region,
                "spark.hadoop.fs.s3a.aws.credentials.provider":
                    "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
                "spark.hadoop.fs.s3a.access.key": settings.s3_access_key,
                "spark.hadoop.fs.s3a.secret.key": settings.s3_secret_key,
                # Delta on S3: one writer per table at a time (S3SingleDriverLogStore, the default
                # for s3a). Concurrent writers from several clusters need a DynamoDB log store;
                # see the README section "Delta on S3".
                "spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore",
            }
        )
        if settings.s3_endpoint:
            conf["spark.hadoop.fs.s3a.endpoint"] = settings.s3_endpoint
            conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(
                settings.s3_endpoint.startswith("https")
            ).lower()
    return conf


def get_spark(settings: Settings, app_name: str = "churn"):
    """Return the process's SparkSession, creating it on first use."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # started by spark-submit (a SparkApplication's driver in the kubernetes profile): the launcher
    # chose the master and the driver's JVM options; the job must not override them
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ
    shared = not submitted and settings.spark_gateway and _attach_gateway(Path(settings.spark_gateway))
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    Path(settings.home).mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder
    launch_only = ("spark.master", "spark.driver.memory", "spark.driver.extraJavaOptions", "spark.driver.extraClassPath",
                   "spark.executor.memory")
    for k, v in spark_conf(settings, app_name).items():
        if not (submitted and k in launch_only):
            builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    if shared:
        atexit.register(spark.stop)  # the JVM outlives this process; its SparkContext must not
    log.info("Spark %s started (%s%s)", spark.version, spark.conf.get("spark.master", settings.spark_master),
             f", shared JVM {settings.spark_gateway}" if shared else "")
    return spark


# -- the local profile's warm JVM ---------------------------------------------------------------
# A Spark step started as its own process spends most of a small day's run warming a new JVM
# (class loading and JIT: ~50 s per step on 2 cores for a few hundred customers). `churn
# spark-gateway` keeps one JVM warm; a step attaches to it through PySpark's own hand-over
# (PYSPARK_GATEWAY_PORT/SECRET, how spark-submit hands its JVM to a Python driver), creates its
# SparkContext, and stops it at exit. Steps take turns (a file lock); a step killed with -9 leaves
# its context behind, and the next step stops it before starting its own.


def serve_gateway(settings: Settings, path: Path) -> None:
    """Start a warm Spark JVM, write how to attach to it to ``path`` (mode 600), serve until killed."""
    from pyspark import SparkConf
    from pyspark.java_gateway import launch_gateway

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    path.parent.mkdir(parents=True, exist_ok=True)
    starting = _starting(path)
    starting.write_text(str(os.getpid()))  # steps that start meanwhile wait for this JVM (_attach_gateway)
    conf = SparkConf(loadDefaults=False)
    for k, v in spark_conf(settings, "churn-shared-jvm").items():
        conf.set(k, v)
    gateway = launch_gateway(conf)
    _warm_up(settings, gateway)
    params = gateway.gateway_parameters
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"port": params.port, "secret": params.auth_token, "pid": os.getpid()}, f)
    tmp.replace(path)
    starting.unlink(missing_ok=True)

    def stop(*_):
        path.unlink(missing_ok=True)
        starting.unlink(missing_ok=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("warm Spark JVM ready: steps with CHURN_SPARK_GATEWAY=%s attach to it", path)
    while True:
        signal.pause()


def _warm_up(settings: Settings, gateway) -> None:
    """Before any step attaches: a tiny Delta write, MERGE and read in the new JVM, in a context
    stopped afterwards like a step's. The classes every step uses (Delta, Parquet, the file system)
    are then loaded and compiled once here, not by the night's first step (measured: a first
    ingest of 35 s against 15-25 s for later steps)."""
    import tempfile
    import time

    from delta.tables import DeltaTable
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    t0 = time.time()
    SparkContext._ensure_initialized(gateway=gateway)
    builder = SparkSession.builder
    for k, v in spark_conf(settings, "churn-jvm-warm-up").items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    try:
        with tempfile.TemporaryDirectory(prefix="churn-jvm-warm-up-") as folder:
            uri = str(Path(folder) / "t")
            rows = spark.range(200).selectExpr("id", "cast(id % 7 as string) AS k", "current_date() AS day")
            rows.write.format("delta").partitionBy("day").save(uri)
            (DeltaTable.forPath(spark, uri).alias("t").merge(rows.alias("s"), "t.id = s.id")
             .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
            spark.read.format("delta").load(uri).groupBy("k").count().collect()
    finally:
        spark.stop()
    log.info("warmed the JVM (Delta write, MERGE, read) in %.1fs", time.time() - t0)


def _starting(path: Path) -> Path:
    """Where a gateway that is still warming up keeps its pid."""
    return path.with_name(path.name + ".starting")


def _wait_while_warming(path: Path, limit_s: float = 180.0) -> None:
    """A gateway still warming up (``make airflow`` starts it beside the scheduler, whose first task
    may come sooner): wait for it rather than warm a second JVM on the same cores (measured: a first
    ingest of 63 s, against 15 s attached)."""
    import time

    deadline, told = time.monotonic() + limit_s, False
    while not path.exists() and time.monotonic() < deadline:
        try:
            os.kill(int(_starting(path).read_text()), 0)
        except (OSError, ValueError):
            return  # nothing warming (or it died): the caller decides
        if not told:
            log.info("waiting for the shared JVM %s to finish warming up", path)
            told = True
        time.sleep(0.5)


def _attach_gateway(path: Path) -> bool:
    """Point PySpark at the warm JVM of ``path``; False (own JVM) when it is not running."""
    _wait_while_warming(path)
    try:
        info = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError) as e:
        log.warning("CHURN_SPARK_GATEWAY=%s: no warm JVM there (%s); starting this step's own", path, e)
        return False
    lock = open(path.with_name(path.name + ".lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("waiting for the step using the shared JVM %s", path)
        fcntl.flock(lock, fcntl.LOCK_EX)
    atexit.register(lock.close)  # registered first, so it runs after the context is stopped
    os.environ["PYSPARK_GATEWAY_PORT"] = str(info["port"])
    os.environ["PYSPARK_GATEWAY_SECRET"] = info["secret"]
    # SIGTERM (Airflow's timeout or a cleared task) must stop our context too, not just exit
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    SparkContext._ensure_initialized()
    left = SparkSession._get_j_spark_session_class(SparkContext._jvm).getDefaultSession()
    if left.isDefined() and not left.get().sparkContext().isStopped():
        log.warning("stopping the SparkContext a killed step left in the shared JVM")
        left.get().sparkContext().stop()
    return True
