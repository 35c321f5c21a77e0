"""The JVM jars Spark needs beyond PySpark's own: resolved once from Maven Central, then reused.

``churn jars fetch`` (run by ``make setup``) asks Maven to copy the runtime dependencies declared in
``spark_jobs/jars/pom.xml`` into the jar cache (``CHURN_JARS_DIR``). Every SparkSession then gets
them as ``spark.jars`` and never resolves anything at start. The job images run the same pom.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from churn.core.errors import SetupError
from churn.core.settings import POM_PATH, Settings

#: File-name prefixes that must be present for Delta, s3a and JDBC to work.
REQUIRED_PREFIXES = ("delta-spark_", "delta-storage-", "hadoop-aws-", "bundle-", "postgresql-")
_MARKER = ".complete"


def jar_paths(settings: Settings) -> list[str]:
    """The cached jars, or a SetupError telling the user how to fetch them."""
    folder = Path(settings.jars_dir)
    if not (folder / _MARKER).exists():
        raise SetupError(
            f"Spark's JVM jars are not in {folder}. Run `make setup` (or `churn jars fetch`) once; "
            "it resolves Delta Lake, hadoop-aws and the PostgreSQL driver from Maven Central."
        )
    jars = sorted(str(p) for p in folder.glob("*.jar"))
    missing = [p for p in REQUIRED_PREFIXES if not any(Path(j).name.startswith(p) for j in jars)]
    if missing:
        raise SetupError(f"jar cache {folder} lacks {', '.join(missing)}*.jar; run `churn jars fetch --force`")
    return jars


def fetch(settings: Settings, force: bool = False) -> list[str]:
    """Resolve the pom's runtime dependencies into the jar cache (idempotent)."""
    folder = Path(settings.jars_dir)
    if (folder / _MARKER).exists() and not force:
        return jar_paths(settings)
    mvn = shutil.which("mvn")
    if not mvn:
        raise SetupError("Maven (`mvn`) is needed once to fetch Spark's jars: apt-get install maven")
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [
        mvn, "-q", "-B", "-f", str(POM_PATH),
        "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={tmp}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"Maven could not resolve {POM_PATH}:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    (tmp / _MARKER).write_text("resolved from " + str(POM_PATH) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)  # publish the cache only when complete
    return jar_paths(settings)
