"""The lakehouse's tables, and reading them without a JVM (delta-rs): small tools, training, publishing."""

from __future__ import annotations

from churn.core.settings import Settings
from churn.core.sources import SOURCES


def delta_table(settings: Settings, layer: str, name: str, version: int | None = None):
    """A delta-rs handle on a lakehouse table (local folder or S3), or None when it does not exist."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    uri = settings.table_uri(layer, name)
    rs_uri = "s3://" + uri.split("://", 1)[1] if uri.startswith("s3a://") else uri
    try:
        return DeltaTable(rs_uri, version=version,
                          storage_options=settings.s3_storage_options() if settings.is_s3 else None)
    except TableNotFoundError:
        return None


def read_batches(dataset, columns: list[str] | None, flt, batch_rows: int):
    """The rows of a pyarrow ``dataset`` matching ``flt``, ``batch_rows`` at a time, reading one file
    and one batch ahead: a reader's memory is a few batches whatever the table's size (Arrow's
    defaults read 4 files and 16 batches ahead: publish peaked at 4.7 GB at 10M customers)."""
    return dataset.to_batches(columns=columns, filter=flt, batch_size=batch_rows, batch_readahead=1,
                              fragment_readahead=1)


def _files(settings: Settings, layer: str, name: str, column: str) -> list[tuple]:
    """(partition value, rows or None) of every data file of a table, from its Delta log only (no
    data is read); empty when the table does not exist."""
    import pyarrow as pa

    table = delta_table(settings, layer, name)
    if table is None:
        return []
    actions = pa.table(table.get_add_actions(flatten=True))
    if not actions.num_rows:
        return []
    return list(zip(actions.column(f"partition.{column}").to_pylist(), actions.column("num_records").to_pylist()))


def partition_values(settings: Settings, layer: str, name: str, column: str) -> set:
    """The values of a partition column present in a table."""
    return {value for value, _ in _files(settings, layer, name, column)}


def partition_rows(settings: Settings, layer: str, name: str, column: str) -> dict:
    """Rows per value of a partition column, from the files' statistics; values whose files carry
    no statistics are left out."""
    out: dict = {}
    unknown = set()
    for value, n in _files(settings, layer, name, column):
        if n is None:
            unknown.add(value)
        else:
            out[value] = out.get(value, 0) + n
    return {k: v for k, v in out.items() if k not in unknown}


def ingested_dates(settings: Settings) -> set:
    """Every date whose drop is in bronze (any source: a day may export no rows of some sources)."""
    out: set = set()
    for source in SOURCES:
        out |= partition_values(settings, "bronze", source, "ingest_date")
    return out


#: Every table the nightly pipeline builds, layer by layer (``churn tables`` lists them).
LAKE_TABLES: list[tuple[str, str]] = (
    [("bronze", n) for n in SOURCES] + [("quarantine", "rejected_rows")] + [("silver", n) for n in SOURCES]
    + [("gold", "customer_features"), ("gold", "labels"), ("gold", "customer_scores")]
)
