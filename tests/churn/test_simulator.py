import datetime as dt
import hashlib
import json

import pandas as pd
import pytest

from churn.core.errors import InputError
from churn.simulator import GeneratorConfig, generate
from churn.core.sources import MARKER, SOURCES
from tests.conftest import generate_base

START = dt.date(2026, 1, 1)


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != "_manifest.json":
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_layout_one_folder_per_source_and_day(tmp_path):
    generate_base(tmp_path, 300, START, 5)
    raw = tmp_path / "raw"
    for source, spec in SOURCES.items():
        days = sorted(p.name for p in (raw / source).iterdir())
        assert days == [f"ingest_date={START + dt.timedelta(days=i)}" for i in range(5)]
        ext = "csv" if spec.fmt == "csv" else "json"
        assert all(list((raw / source / d).glob(f"part-*.{ext}")) for d in days)
        for d in days:  # each drop is sealed by its completion marker, naming every file and its rows
            marker = json.loads((raw / source / d / MARKER).read_text())
            files = sorted(p.name for p in (raw / source / d).iterdir() if not p.name.startswith("_"))
            assert sorted(marker["files"]) == files and marker["source"] == source
            for name, rows in marker["files"].items():
                lines = (raw / source / d / name).read_text().splitlines()
                assert rows == len(lines) - (spec.fmt == "csv"), (source, d, name)
    header = (raw / "customers" / f"ingest_date={START}" / "part-0000.csv").read_text().splitlines()[0]
    assert header.replace('"', "").split(",") == SOURCES["customers"].names
    first_day = pd.read_csv(raw / "customers" / f"ingest_date={START}" / "part-0000.csv")
    assert len(first_day) == 300 and first_day.customer_id.is_unique


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    generate_base(tmp_path / "a", 400, START, 6, seed=1)
    generate_base(tmp_path / "b", 400, START, 6, seed=1)
    generate_base(tmp_path / "c", 400, START, 6, seed=2)
    assert _digest(tmp_path / "a" / "raw") == _digest(tmp_path / "b" / "raw")
    assert _digest(tmp_path / "a" / "raw") != _digest(tmp_path / "c" / "raw")


def test_churn_process_and_oracle(tmp_path):
    m = generate_base(tmp_path, 3000, START, 60)
    # a subscription business: a few percent cancel per month, and the base stays roughly stable
    assert 0.03 < m.churned / m.customers_total < 0.25
    oracle = pd.read_parquet(tmp_path / "oracle" / f"snapshot_date={START + dt.timedelta(days=10)}")
    assert oracle.customer_id.is_unique and oracle.p_churn.between(0, 1).all()
    # the hidden process is not uniform: month-to-month customers are far riskier
    cust = pd.read_csv(tmp_path / "raw" / "customers" / f"ingest_date={START}" / "part-0000.csv")
    o0 = pd.read_parquet(tmp_path / "oracle" / f"snapshot_date={START}").merge(cust, on="customer_id")
    by_contract = o0.groupby("contract").p_churn.mean()
    assert by_contract["Month-to-month"] > 3 * by_contract["Two year"]
    # cancellations are real events: every cancelled customer existed and cancels once
    cancels = pd.concat(pd.read_csv(p) for p in (tmp_path / "raw" / "cancellations").rglob("*.csv"))
    assert cancels.customer_id.is_unique and len(cancels) == m.churned


def test_defects_are_injected_and_counted(tmp_path):
    m = generate_base(tmp_path, 1000, START, 10, defects=("nulls", "duplicates", "bad_dates", "late_rows"),
                      defect_rate=0.02)
    manifest = json.loads((tmp_path / "raw" / "_manifest.json").read_text())
    assert manifest["defects"]["usage.nulls.sessions"] > 50
    assert manifest["defects"]["usage.duplicates"] > 50
    usage = pd.concat(pd.read_csv(p, dtype=str) for p in (tmp_path / "raw" / "usage").rglob("*.csv"))
    # duplicates are injected after nulls and bad dates, so a duplicated row may repeat one
    nulls, dups = manifest["defects"]["usage.nulls.sessions"], manifest["defects"]["usage.duplicates"]
    assert nulls <= usage.sessions.isna().sum() <= nulls + dups
    bad = manifest["defects"]["usage.bad_dates.usage_date"]
    assert bad <= (usage.usage_date == "31/02/2026").sum() <= bad + dups
    assert m.defects["usage.late_rows"] > 0


def test_added_defects_leave_every_true_row_in_the_export(tmp_path):
    """defect_mode="add": the corrupted rows are extra copies, so a clean run's rows all arrive (late
    rows a few days late): what the session's test lakehouse relies on to stay learnable."""
    from churn.core.sources import DEFECT_KINDS

    generate_base(tmp_path / "clean", 300, START, 8)
    m = generate_base(tmp_path / "added", 300, START, 8, defects=DEFECT_KINDS, defect_rate=0.05, defect_mode="add")
    for source in ("usage", "customers"):  # the CSV exports
        def rows(kind):
            frames = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in (tmp_path / kind / "raw" / source).rglob("*.csv")]
            return pd.concat(frames).drop_duplicates()
        clean, added = rows("clean"), rows("added")
        merged = clean.merge(added, how="left", indicator=True)
        assert (merged["_merge"] == "both").all(), (source, merged[merged["_merge"] != "both"].head())
        assert len(added) > len(clean), source  # and the corrupted copies come on top
    assert m.defects["usage.nulls.sessions"] > 0 and m.defects["usage.late_rows"] > 0
    assert m.defects["customers.unknown_categories.payment_method"] > 0


def test_drift_raises_prices(tmp_path):
    generate_base(tmp_path, 500, START, 12, drift="price_rise", drift_date=START + dt.timedelta(days=5))
    changes = pd.read_csv(tmp_path / "raw" / "plan_changes" / f"ingest_date={START + dt.timedelta(days=5)}" / "part-0000.csv")
    rises = changes[changes.change_type == "price_change"]
    assert len(rises) > 400
    assert (rises.new_monthly_charges > rises.old_monthly_charges).all()


@pytest.mark.parametrize("kw, message", [
    ({"customers": 0}, "--customers"),
    ({"days": 0}, "--days"),
    ({"drift": "meteor"}, "--drift"),
    ({"drift": "price_rise"}, "--drift-date"),
    ({"defects": ("gremlins",)}, "gremlins"),
])
def test_bad_knobs(tmp_path, kw, message):
    base = dict(customers=10, start=START, days=2, out=str(tmp_path / "raw"), oracle_dir=None)
    with pytest.raises(InputError, match=message):
        generate(GeneratorConfig(**{**base, **kw}))
