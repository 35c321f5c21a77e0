"""The in-process runner against the faults of running it twice: a second writer on the same lake
while a build holds it, and nights run out of date order (a backfill run backwards)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading

import pandas as pd
import pytest

from churn.core.errors import InputError
from churn.core.lake import delta_table
from churn.core.lock import LakeLock, current_holder
from churn.core.sources import SOURCES
from churn.runner import build_lakehouse
from tests.conftest import generate_base

D0 = dt.date(2026, 4, 1)
D1, D2 = D0 + dt.timedelta(days=1), D0 + dt.timedelta(days=2)
TABLES = [("silver", n) for n in SOURCES] + [("gold", "customer_features"), ("gold", "labels"),
                                             ("quarantine", "rejected_rows")]


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    home = tmp_path_factory.mktemp("runner-raw")
    generate_base(home, 300, D0, 3, seed=21, horizon=1, defects=("nulls", "duplicates", "bad_dates"),
                  defect_rate=0.02, defect_mode="add")
    return home / "raw"


def lake_of(make_settings, tmp_path_factory, raw, name):
    """A lake of its own over the module's raw drops (read in place: quarantine rows name the same files)."""
    return make_settings(tmp_path_factory.mktemp(name), raw_uri=str(raw), label_horizon_days=1)


def contents(settings, layer, name) -> pd.DataFrame:
    df = delta_table(settings, layer, name).to_pandas()
    df = df[sorted(df.columns)].astype(str)
    return df.sort_values(list(df.columns)).reset_index(drop=True)


@pytest.fixture(scope="module")
def sequential(spark, make_settings, tmp_path_factory, raw):
    """D0..D2 built in one run while two other writers try the same lake: `churn run` and a step command."""
    s = lake_of(make_settings, tmp_path_factory, raw, "runner-sequential")
    holding, attempts_done, errors = threading.Event(), threading.Event(), []

    def build():
        try:
            with LakeLock(s, "churn run --start 2026-04-01 --end 2026-04-03"):
                holding.set()
                build_lakehouse(s, D0, D2, spark=spark)
                attempts_done.wait(120)  # hold the lake until the other writers have tried it
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            holding.set()

    writer = threading.Thread(target=build)
    writer.start()
    assert holding.wait(60)
    env = {**os.environ, **s.as_env()}
    attempts = {}
    try:
        procs = {name: subprocess.Popen([sys.executable, *cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
                 for name, cmd in {"churn run": ["-m", "churn", "run", "--start", str(D0), "--end", str(D2)],
                                   "ingest step": ["-m", "spark_jobs.ingest", "--date", str(D2)]}.items()}
        for name, proc in procs.items():
            _, err = proc.communicate(timeout=120)
            attempts[name] = subprocess.CompletedProcess(proc.args, proc.returncode, "", err)
    finally:
        attempts_done.set()
        writer.join(300)
    assert not errors, errors
    return s, attempts


def test_a_second_writer_is_refused_while_a_run_holds_the_lake_and_the_tables_are_one_runs(sequential, raw):
    s, attempts = sequential
    for name, proc in attempts.items():
        assert proc.returncode == 75, (name, proc.stderr[-2000:])
        assert f":{os.getpid()} running `churn run --start 2026-04-01 --end 2026-04-03`" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert current_holder(s) is None  # released once the run ended
    # what the one run built, and nothing else: one commit per table per step run, from it alone
    for layer, name in TABLES:
        history = delta_table(s, layer, name).history()
        assert len(history) == 1, (layer, name, [h["operation"] for h in history])
    features = delta_table(s, "gold", "customer_features").to_pandas()
    for d in (D0, D1, D2):
        oracle = pd.read_parquet(raw.parent / "oracle" / f"snapshot_date={d}")
        assert sorted(features[features.snapshot_date == d].customer_id) == sorted(oracle.customer_id)


def test_nights_out_of_order_give_the_tables_of_nights_in_order(sequential, spark, make_settings, tmp_path_factory, raw):
    s_seq = sequential[0]
    s = lake_of(make_settings, tmp_path_factory, raw, "runner-backwards")
    build_lakehouse(s, D0, D0, spark=spark)
    # D2 before D1: refused, D1 was never ingested and D2's features would lose what it first brought
    with pytest.raises(InputError, match=f"(?s)refusing to ingest {D2}: the drop\\(s\\) of {D1} .*--force"):
        build_lakehouse(s, D2, D2, spark=spark)
    assert delta_table(s, "bronze", "usage").version() == 0  # nothing was written
    build_lakehouse(s, D2, D2, spark=spark, force=True)
    first_seen_d2 = {n: delta_table(s, "silver", n).to_pandas() for n in ("invoices", "tickets")}
    build_lakehouse(s, D1, D1, spark=spark)
    # entities first exported on D1 were first seen on D2 until D1 ran: their first-seen date moved back
    moved = 0
    for n, before in first_seen_d2.items():
        key = SOURCES[n].key
        after = delta_table(s, "silver", n).to_pandas().merge(before, on=key, suffixes=("", "_before"))
        moved += int(((after["_first_ingest_date_before"] == D2) & (after["_first_ingest_date"] == D1)).sum())
    assert moved > 0, "the scenario never exercised an entity seen on D1 and D2"
    for table in TABLES[:len(SOURCES)]:  # silver: the same state whatever the order
        pd.testing.assert_frame_equal(contents(s, *table), contents(s_seq, *table), obj=str(table))
    feats = delta_table(s, "gold", "customer_features").to_pandas(filters=[("snapshot_date", "=", D1)])
    want = delta_table(s_seq, "gold", "customer_features").to_pandas(filters=[("snapshot_date", "=", D1)])
    cols = sorted(want.columns)
    pd.testing.assert_frame_equal(feats[cols].sort_values("customer_id").reset_index(drop=True),
                                  want[cols].sort_values("customer_id").reset_index(drop=True))
    # D2, forced before D1, is built again once D1 is in (its features and labels: ingest, validate
    # and silver would only replace D2's partitions with the same rows): every table equals the nights in order
    build_lakehouse(s, D2, D2, spark=spark, steps=["features", "labels"])
    for table in TABLES:
        pd.testing.assert_frame_equal(contents(s, *table), contents(s_seq, *table), obj=str(table))
