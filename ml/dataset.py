"""Training sets: which rows a model learns from and is judged on, and where they came from.

Two sources, one shape (``TrainingSet``):

* the lakehouse: ``gold/customer_features`` joined with ``gold/labels`` over a range of snapshot
  dates, read with delta-rs (no JVM) at pinned table versions, with the feature list and dtypes of
  ``churn.features.FEATURES``. Split out of time: the newest labelled snapshot(s) are the test
  set; training uses only snapshots whose label horizon closed on or before the first test
  snapshot, so no training label was unknown on the test date.
* a single-table snapshot through a spec (``churn train --spec``): the column mapping of
  ``churn import-snapshot``; seeded stratified 80/20 split.

In both, a validation slice for early stopping is carved from the training rows (by customer in
the lakehouse, so one customer's snapshots never sit on both sides).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from churn.core.errors import InputError
from churn.core.lake import delta_table
from churn.core.settings import Settings
from churn.core.feature_defs import CATEGORICAL
from ml.model import FeatureSpec

log = logging.getLogger("ml.dataset")
LABEL = "churned"
KEYS = ["customer_id", "snapshot_date"]
#: Columns of gold/labels (and label-like names) that must never be a feature.
LABEL_COLUMNS = {"churned", "cancel_date", "horizon_days", "labeled_on", "label", "churn", "target"}
#: A feature that separates the classes this well on its own is a copy of the label, not a signal.
LEAKAGE_AUC = 0.99
LEAKAGE_SAMPLE = 200_000
#: A spec's snapshot needs this many rows of each class to split into train / validation / test.
MIN_PER_CLASS = 10


@dataclass
class TrainingSet:
    frame: pd.DataFrame  # KEYS + feature columns + LABEL + "split" (train / valid / test)
    features: list[FeatureSpec]
    name: str  # model / experiment name
    lineage: list[dict] = field(default_factory=list)  # tables read: name, uri, version
    split: dict = field(default_factory=dict)  # how the rows were split, for the record
    source: str = "lakehouse"
    segments: list[str] = field(default_factory=list)  # columns quality is reported and gated per segment
    tune: dict | None = None  # a spec's ``tune:`` section (None: tune only when asked)

    def part(self, which: str) -> pd.DataFrame:
        return self.frame[self.frame["split"] == which]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.frame.to_parquet(folder / "rows.parquet", index=False)
        meta = {"features": [asdict(f) for f in self.features], "name": self.name, "lineage": self.lineage,
                "split": self.split, "source": self.source,
                "segments": self.segments, "tune": self.tune}
        (folder / "training_set.json").write_text(json.dumps(meta, indent=1, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "TrainingSet":
        folder = Path(folder)
        meta = json.loads((folder / "training_set.json").read_text())
        frame = pd.read_parquet(folder / "rows.parquet")
        return cls(frame, [FeatureSpec(**f) for f in meta["features"]], meta["name"], meta["lineage"],
                   meta["split"], meta["source"], meta.get("segments", []), meta.get("tune"))


# ---- reading the lakehouse -----------------------------------------------------------------
def lakehouse_features() -> list[FeatureSpec]:
    from churn.core.feature_defs import FEATURES

    return [FeatureSpec(f.name, f.kind) for f in FEATURES]


def load_lakehouse(settings: Settings, start: dt.date | None, end: dt.date | None) -> tuple[pd.DataFrame, list[dict]]:
    """Labelled feature rows with snapshot_date in [start, end] (open ends: all), and the table versions read."""
    features = lakehouse_features()
    names = [f.name for f in features]
    tables = {}
    for name, hint in (("customer_features", "run `churn run` (the features step) first"),
                       ("labels", "labels appear once a snapshot's label horizon has closed (`churn run`)")):
        t = delta_table(settings, "gold", name)
        if t is None:
            raise InputError(f"gold/{name} does not exist at {settings.table_uri('gold', name)}: {hint}")
        tables[name] = t
    have = {f.name for f in tables["customer_features"].schema().fields}
    missing = [n for n in names if n not in have]
    if missing:
        raise InputError(f"gold/customer_features lacks feature column(s) {', '.join(missing)} that churn/core/feature_defs.py "
                         "defines: rebuild it with `churn run --steps features` for the training window")
    filters = []
    if start:
        filters.append(("snapshot_date", ">=", start))
    if end:
        filters.append(("snapshot_date", "<=", end))
    window = f"{start or 'the first snapshot'}..{end or 'the last snapshot'}"
    feats = tables["customer_features"].to_pandas(columns=KEYS + names, filters=filters or None)
    if feats.empty:
        raise InputError(f"empty training window: gold/customer_features has no rows for {window}")
    labels = tables["labels"].to_pandas(columns=KEYS + [LABEL], filters=filters or None)
    if labels.empty:
        newest = _newest_labelled(tables["labels"])
        raise InputError(f"no labels yet for {window}: a snapshot is labelled once its {settings.label_horizon_days}-day "
                         f"horizon has closed; the newest labelled snapshot is {newest or 'none'}")
    frame = feats.merge(labels, on=KEYS, how="inner", validate="one_to_one")
    frame = frame.sort_values(KEYS, kind="mergesort").reset_index(drop=True)
    lineage = [{"table": f"gold/{n}", "uri": settings.table_uri("gold", n), "version": int(t.version())}
               for n, t in tables.items()]
    log.info("training rows %s: %d labelled customer-snapshots over %d snapshot dates (%s)", window, len(frame),
             frame["snapshot_date"].nunique(), ", ".join(f"{x['table']}@v{x['version']}" for x in lineage))
    return frame, lineage


def _newest_labelled(table) -> dt.date | None:
    parts = [p for p in (table.partitions() or [])]
    dates = [dt.date.fromisoformat(p["snapshot_date"]) for p in parts if p.get("snapshot_date")]
    return max(dates) if dates else None


# ---- checks --------------------------------------------------------------------------------
def check_leakage(frame: pd.DataFrame, features: list[FeatureSpec], label: str = LABEL) -> None:
    """Refuse features that are the label under another name or separate the classes on their own."""
    named = [f.name for f in features if f.name.lower() in LABEL_COLUMNS | {label.lower()}]
    if named:
        raise InputError(f"feature(s) {', '.join(named)} are label columns: a model must never see its label")
    if len(frame) > LEAKAGE_SAMPLE:  # a seeded sample measures a 0.99 AUC just as well, in a fraction of the time
        frame = frame.sample(LEAKAGE_SAMPLE, random_state=0)
    y = frame[label].to_numpy()
    if len(np.unique(y)) < 2:
        return  # the single-class error is raised where it applies, with its own message
    from sklearn.metrics import roc_auc_score

    suspects = []
    for f in features:
        col = frame[f.name]
        if f.kind == CATEGORICAL:
            key = col.astype("object").where(col.notna(), "<null>")
            score = key.map(pd.Series(y, index=key.index).groupby(key).mean())  # in-sample class rate per value
            if key.nunique() > max(50, len(frame) // 20):  # id-like: in-sample rates are meaningless
                continue
        else:
            score = col.astype("float64").fillna(col.astype("float64").min() - 1 if col.notna().any() else 0)
        auc = roc_auc_score(y, score.to_numpy(dtype="float64"))
        if max(auc, 1 - auc) >= LEAKAGE_AUC:
            suspects.append(f"{f.name} (AUC {max(auc, 1 - auc):.3f} on its own)")
    if suspects:
        raise InputError(f"label leakage: feature(s) {', '.join(suspects)} separate churners from the rest almost "
                         "perfectly by themselves; a feature must be known at its snapshot, not derived from the outcome")


# ---- splits --------------------------------------------------------------------------------
def _valid_customers(customers: np.ndarray, fraction: float, seed: int) -> set:
    ids = np.sort(np.unique(customers))
    rng = np.random.default_rng(seed)
    return set(rng.choice(ids, max(1, int(round(len(ids) * fraction))), replace=False))


def out_of_time_split(frame: pd.DataFrame, horizon_days: int, test_snapshots: int = 1, valid_fraction: float = 0.15,
                      seed: int = 42) -> tuple[pd.DataFrame, dict]:
    dates = sorted(frame["snapshot_date"].unique())
    if len(dates) < 2:
        raise InputError(f"an out-of-time split needs at least two labelled snapshot dates, got {[str(d) for d in dates]}: "
                         "widen the training window")
    test_dates = dates[-test_snapshots:]
    cutoff = min(test_dates)
    train_dates = [d for d in dates if d + dt.timedelta(days=horizon_days) <= cutoff]
    gap = [d for d in dates if d not in train_dates and d not in test_dates]
    if not train_dates:
        raise InputError(f"no labelled snapshot's {horizon_days}-day horizon closes by the test snapshot {cutoff} "
                         f"(snapshots: {', '.join(str(d) for d in dates)}): widen the window to earlier dates")
    split = np.where(frame["snapshot_date"].isin(test_dates), "test",
                     np.where(frame["snapshot_date"].isin(train_dates), "train", "gap"))
    train_customers = frame.loc[split == "train", "customer_id"].to_numpy()
    valid = _valid_customers(train_customers, valid_fraction, seed)
    split = np.where((split == "train") & frame["customer_id"].isin(valid), "valid", split)
    out = frame.assign(split=split)
    out = out[out["split"] != "gap"].reset_index(drop=True)
    info = {"kind": "out_of_time", "train_snapshots": [str(d) for d in train_dates],
            "test_snapshots": [str(d) for d in test_dates], "excluded_snapshots": [str(d) for d in gap],
            "horizon_days": horizon_days, "valid_fraction": valid_fraction, "valid_by": "customer", "seed": seed,
            **{f"n_{k}": int((out["split"] == k).sum()) for k in ("train", "valid", "test")}}
    return out, info


def stratified_split(frame: pd.DataFrame, label: str = LABEL, test_size: float = 0.2, valid_fraction: float = 0.15,
                     seed: int = 42) -> tuple[pd.DataFrame, dict]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(frame))
    y = frame[label].to_numpy()
    counts = pd.Series(y).value_counts()
    if len(counts) < 2 or counts.min() < MIN_PER_CLASS:
        raise InputError(f"too few rows of one class for a stratified split: {label} counts are "
                         f"{counts.to_dict()}; each class needs at least {MIN_PER_CLASS} rows")
    train_idx, test_idx = train_test_split(idx, test_size=test_size, stratify=y, random_state=seed)
    fit_idx, valid_idx = train_test_split(train_idx, test_size=valid_fraction, stratify=y[train_idx], random_state=seed)
    split = np.empty(len(frame), dtype=object)
    split[fit_idx], split[valid_idx], split[test_idx] = "train", "valid", "test"
    out = frame.assign(split=split)
    info = {"kind": "stratified", "test_size": test_size, "valid_fraction": valid_fraction, "seed": seed,
            **{f"n_{k}": int((out["split"] == k).sum()) for k in ("train", "valid", "test")}}
    return out, info


# ---- the two entry points ------------------------------------------------------------------
def from_lakehouse(settings: Settings, start: dt.date | None = None, end: dt.date | None = None, seed: int = 42,
                   test_snapshots: int = 1) -> TrainingSet:
    frame, lineage = load_lakehouse(settings, start, end)
    features = lakehouse_features()
    check_leakage(frame, features)
    frame, info = out_of_time_split(frame, settings.label_horizon_days, test_snapshots, seed=seed)
    info["window"] = [str(start) if start else None, str(end) if end else None]
    from churn.core.feature_defs import SEGMENTS

    return TrainingSet(frame, features, settings.model_name, lineage, info, "lakehouse", list(SEGMENTS))


def from_spec(settings: Settings, spec_path: str | Path, seed: int = 42) -> TrainingSet:
    from churn.core.specs import load_spec, map_snapshot, read_source

    spec = load_spec(spec_path)
    mapped = map_snapshot(read_source(spec), spec)
    frame = mapped.features.merge(mapped.labels[["customer_id", LABEL]], on="customer_id", validate="one_to_one")
    features = [FeatureSpec(n, k) for n, k in mapped.kinds.items()]
    if not features:
        raise InputError(f"spec {spec.path}: no feature columns left after id, label and drop")
    check_leakage(frame, features)
    frame, info = stratified_split(frame, seed=seed)
    lineage = [{"table": str(spec.source), "uri": str(spec.source), "version": _file_digest(spec.source),
                "spec": str(spec.path)}]
    segments = [spec.rename.get(c, c) for c in spec.segments]
    dropped = [c for c, name in zip(spec.segments, segments) if name not in {f.name for f in features}]
    if dropped:
        raise InputError(f"spec {spec.path}: 'segments' names column(s) {', '.join(dropped)} that are not features "
                         "(listed under drop, or the id or label): a segment must be a column the model sees")
    return TrainingSet(frame, features, f"{settings.model_name}-{spec.name}", lineage, info, f"spec:{spec.name}",
                       segments, spec.tune)


def _file_digest(path: Path) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
