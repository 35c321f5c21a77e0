"""import-snapshot: a single-table customer snapshot (CSV) -> feature and label Delta tables
(``gold/snapshots/<name>/{features,labels}``). The spec and the mapping are ``churn.core.specs``;
this step writes the mapped rows as Delta tables, with each feature's kind in the column metadata.
"""

from __future__ import annotations

import logging

from churn.core.settings import Settings
from churn.core.specs import SnapshotSpec, map_snapshot, read_source

log = logging.getLogger("spark_jobs.import_snapshot")


def run(spark, settings: Settings, spec: SnapshotSpec) -> dict:
    from pyspark.sql import functions as F

    mapped = map_snapshot(read_source(spec), spec)
    feats = spark.createDataFrame(mapped.features)
    for c, kind in mapped.kinds.items():
        feats = feats.withColumn(c, F.col(c).cast("double" if kind == "numeric" else "string"))
    feats = feats.select(
        "customer_id", F.col("snapshot_date").cast("date").alias("snapshot_date"),
        *[F.col(c).alias(c, metadata={"churn.kind": k}) for c, k in mapped.kinds.items()],
    )
    labels = spark.createDataFrame(mapped.labels).withColumn("snapshot_date", F.col("snapshot_date").cast("date"))
    uris = {"features": settings.table_uri("gold", f"snapshots/{spec.name}/features"),
            "labels": settings.table_uri("gold", f"snapshots/{spec.name}/labels")}
    predicate = f"snapshot_date = DATE'{spec.snapshot_date}'"
    for kind, df in (("features", feats), ("labels", labels)):
        (df.write.format("delta").mode("overwrite").option("replaceWhere", predicate)
         .option("overwriteSchema", "false").partitionBy("snapshot_date").save(uris[kind]))
    positives = int(mapped.labels["churned"].sum())
    log.info("imported %s: %d customers, %d churned, %d features (%d categorical)", spec.source, len(mapped.labels),
             positives, len(mapped.kinds), sum(k == "categorical" for k in mapped.kinds.values()))
    return {"name": spec.name, "rows": len(mapped.labels), "churned": positives, "tables": uris,
            "features": mapped.kinds, "snapshot_date": spec.snapshot_date}
