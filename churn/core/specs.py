"""Single-table customer snapshots (CSV) mapped onto the platform's profile names through a YAML spec:
parsing the spec and mapping the rows (pandas). ``spark_jobs.import_snapshot`` writes the result as
Delta tables; ``churn train --spec`` trains on it directly.

Real customer data often arrives as one table: an id, profile columns, a churn flag. A YAML spec
declares how to read it::

    name: telco                       # table names: gold/snapshots/<name>/{features,labels}
    source: ../data/customers.csv    # relative to the spec file, or absolute
    id: customerID
    label: {column: Churn, positive: "Yes"}
    snapshot_date: 2026-01-31         # optional (default: today, UTC)
    rename: {tenure: tenure_months}   # optional: source column -> platform profile name
    drop: [SomeColumn]                # optional
    categorical: [SeniorCitizen]      # optional; types are inferred when not declared
    numeric: [TotalCharges]
    tune: {trials: 30, seconds: 120}  # optional: tune before training (any of trials, seconds,
                                      # sample_rows, folds, workers; `tune: true` for the settings')
    segments: [Contract, InternetService]  # optional: categorical columns to report and gate per segment

Every column left after ``id``, ``label`` and ``drop`` becomes a feature: declared numeric
columns must parse as numbers (blank means missing), declared categorical ones are kept as text,
others are numeric when every non-blank value parses as a number, else categorical. Each feature
column's kind is stored in the Delta schema's column metadata (as for gold/customer_features), so
training reads the feature list from the table. Any mistake gets an error naming the spec field,
the column and, for values, the offending rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from churn.core.errors import InputError

_ALLOWED = {"name", "source", "id", "label", "snapshot_date", "rename", "drop", "categorical", "numeric", "description",
            "tune", "segments"}


@dataclass
class SnapshotSpec:
    path: Path
    name: str
    source: Path
    id: str
    label_column: str
    positive: str
    snapshot_date: dt.date
    rename: dict[str, str] = field(default_factory=dict)
    drop: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    tune: dict | None = None  # None: no tuning unless asked (``churn train --tune``); {}: the settings' budget
    segments: list[str] = field(default_factory=list)


def _list(spec: dict, key: str, path: Path) -> list[str]:
    v = spec.get(key) or []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InputError(f"spec {path}: '{key}' must be a list of column names")
    return v


def load_spec(path: str | Path) -> SnapshotSpec:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"spec {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"spec {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InputError(f"spec {path}: expected a mapping with source, id and label")
    unknown = sorted(set(raw) - _ALLOWED)
    if unknown:
        raise InputError(f"spec {path}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_ALLOWED))}")
    for key in ("source", "id", "label"):
        if key not in raw:
            raise InputError(f"spec {path}: missing required field '{key}'")
    label = raw["label"]
    if not isinstance(label, dict) or "column" not in label or "positive" not in label:
        raise InputError(f"spec {path}: 'label' must be a mapping with 'column' and 'positive'")
    source = Path(raw["source"])
    if not source.is_absolute():
        source = (path.parent / source).resolve()
    rename = raw.get("rename") or {}
    if not isinstance(rename, dict):
        raise InputError(f"spec {path}: 'rename' must map source column names to new names")
    try:
        snap = raw.get("snapshot_date")
        snapshot_date = (snap if isinstance(snap, dt.date) else dt.date.fromisoformat(str(snap))) if snap else \
            dt.datetime.now(dt.timezone.utc).date()
    except ValueError:
        raise InputError(f"spec {path}: snapshot_date must be YYYY-MM-DD, got {raw.get('snapshot_date')!r}") from None
    tune = raw.get("tune")
    if tune is True:
        tune = {}
    elif tune is False:
        tune = None
    elif tune is not None and not isinstance(tune, dict):
        raise InputError(f"spec {path}: 'tune' must be true, false or a mapping (trials, seconds, sample_rows, folds, "
                         f"workers), got {tune!r}")
    name = str(raw.get("name") or path.stem)
    if not name.replace("_", "").isalnum():
        raise InputError(f"spec {path}: name {name!r} must be letters, digits and underscores")
    return SnapshotSpec(
        path=path, name=name, source=source, id=str(raw["id"]), label_column=str(label["column"]),
        positive=str(label["positive"]), snapshot_date=snapshot_date, rename={str(k): str(v) for k, v in rename.items()},
        drop=_list(raw, "drop", path), categorical=_list(raw, "categorical", path), numeric=_list(raw, "numeric", path),
        tune=tune, segments=_list(raw, "segments", path),
    )


@dataclass
class MappedSnapshot:
    features: pd.DataFrame  # customer_id, snapshot_date, feature columns
    labels: pd.DataFrame  # customer_id, snapshot_date, churned
    kinds: dict[str, str]  # feature -> "numeric" | "categorical"


def read_source(spec: SnapshotSpec) -> pd.DataFrame:
    if not spec.source.is_file():
        raise InputError(f"spec {spec.path}: source {spec.source} does not exist")
    try:
        df = pd.read_csv(spec.source, dtype=str, keep_default_na=False, skipinitialspace=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{spec.source}: cannot be read as CSV: {exc}") from None
    if df.empty:
        raise InputError(f"{spec.source}: has a header but no rows")
    return df


def map_snapshot(df: pd.DataFrame, spec: SnapshotSpec) -> MappedSnapshot:
    """Apply the spec's column mapping to a raw snapshot table (all values as text)."""
    where = f"{spec.source} (spec {spec.path})"
    cols = list(df.columns)
    named = {"id": [spec.id], "label.column": [spec.label_column], "drop": spec.drop, "rename": list(spec.rename),
             "categorical": spec.categorical, "numeric": spec.numeric, "segments": spec.segments}
    for key, names in named.items():
        missing = [c for c in names if c not in cols]
        if missing:
            raise InputError(f"{where}: '{key}' names column(s) {', '.join(missing)} not in the file; "
                             f"columns are: {', '.join(cols)}")
    both = set(spec.categorical) & set(spec.numeric)
    if both:
        raise InputError(f"spec {spec.path}: column(s) {', '.join(sorted(both))} declared both categorical and numeric")
    ids = df[spec.id].str.strip()
    if (ids == "").any():
        rows = (ids[ids == ""].index[:5] + 2).tolist()
        raise InputError(f"{where}: id column {spec.id} is blank on line(s) {rows}")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise InputError(f"{where}: id column {spec.id} has {len(dup)} duplicate value(s), e.g. {dup.iloc[:5].tolist()}")
    label_raw = df[spec.label_column].str.strip()
    values = sorted(set(label_raw))
    if spec.positive not in values:
        raise InputError(f"{where}: label column {spec.label_column} never equals positive value "
                         f"{spec.positive!r}; values seen: {values[:10]}")
    blank = label_raw == ""
    if blank.any():
        raise InputError(f"{where}: label column {spec.label_column} is blank on line(s) {(label_raw[blank].index[:5] + 2).tolist()}")
    if len(values) < 2:
        raise InputError(f"{where}: label column {spec.label_column} has a single class {values}")

    feature_cols = [c for c in cols if c not in {spec.id, spec.label_column, *spec.drop}]
    out = pd.DataFrame({"customer_id": ids})
    kinds: dict[str, str] = {}
    for c in feature_cols:
        text = df[c].str.strip()
        nums = pd.to_numeric(text.where(text != ""), errors="coerce")
        bad = nums.isna() & (text != "")
        new = spec.rename.get(c, c)
        if new in out.columns or new in kinds:
            raise InputError(f"spec {spec.path}: rename gives two columns the name {new!r}")
        if c in spec.numeric or (c not in spec.categorical and not bad.any()):
            if bad.any():
                rows = (bad[bad].index[:5] + 2).tolist()
                raise InputError(f"{where}: column {c} is declared numeric but {int(bad.sum())} value(s) are not "
                                 f"numbers, e.g. {text[bad].iloc[:3].tolist()} on line(s) {rows}")
            out[new] = nums.astype("float64")
            kinds[new] = "numeric"
        else:
            out[new] = text.where(text != "", None)
            kinds[new] = "categorical"
    out.insert(1, "snapshot_date", spec.snapshot_date)
    labels = pd.DataFrame({"customer_id": ids, "snapshot_date": spec.snapshot_date,
                           "churned": (label_raw == spec.positive).astype("int32")})
    return MappedSnapshot(out, labels, kinds)
