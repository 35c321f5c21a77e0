"""Training sets: leakage checks, out-of-time and stratified splits, and reading the gold tables."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from churn.core.errors import InputError
from ml.dataset import check_leakage, from_spec, lakehouse_features, out_of_time_split, stratified_split
from ml.model import FeatureSpec
from tests.conftest import ROOT, TELCO

D = dt.date(2026, 3, 1)


def snapshots(n_dates=8, customers=400, every=7, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_dates):
        for c in range(customers):
            rows.append({"customer_id": f"c{c:04d}", "snapshot_date": D + dt.timedelta(days=k * every),
                         "usage": rng.gamma(2, 5), "plan": rng.choice(["a", "b"]), "churned": int(rng.random() < 0.1)})
    return pd.DataFrame(rows)


FEATS = [FeatureSpec("usage", "numeric"), FeatureSpec("plan", "categorical")]


def test_a_feature_copying_the_label_fails_the_check():
    df = snapshots(2)
    check_leakage(df, FEATS)  # honest features pass
    with pytest.raises(InputError, match=r"label leakage: feature\(s\) churn_copy"):
        check_leakage(df.assign(churn_copy=df["churned"] * 3.0), FEATS + [FeatureSpec("churn_copy", "numeric")])
    text = df["churned"].map({1: "left", 0: "stayed"})
    with pytest.raises(InputError, match="outcome_text"):
        check_leakage(df.assign(outcome_text=text), FEATS + [FeatureSpec("outcome_text", "categorical")])
    with pytest.raises(InputError, match="are label columns"):
        check_leakage(df.assign(cancel_date=1.0), FEATS + [FeatureSpec("cancel_date", "numeric")])


def test_the_platform_feature_list_holds_no_label_column():
    from ml.dataset import LABEL_COLUMNS

    assert not {f.name for f in lakehouse_features()} & LABEL_COLUMNS


def test_out_of_time_split_trains_only_on_closed_horizons_before_the_test_date():
    df = snapshots(8)
    out, info = out_of_time_split(df, horizon_days=14)
    test_date = D + dt.timedelta(days=49)
    assert info["test_snapshots"] == [str(test_date)]
    train_dates = {dt.date.fromisoformat(x) for x in info["train_snapshots"]}
    assert max(train_dates) + dt.timedelta(days=14) <= test_date
    assert info["excluded_snapshots"] == [str(D + dt.timedelta(days=42))]  # its horizon overlaps the test date
    assert set(out.loc[out.split == "test", "snapshot_date"]) == {test_date}
    # the validation slice is whole customers: none of them is also in the training slice
    valid, train = set(out.loc[out.split == "valid", "customer_id"]), set(out.loc[out.split == "train", "customer_id"])
    assert valid and train and not valid & train
    assert info["n_train"] + info["n_valid"] + info["n_test"] == len(out)
    again, _ = out_of_time_split(df, horizon_days=14)
    assert again.equals(out)  # seeded


def test_out_of_time_split_refuses_windows_it_cannot_split():
    with pytest.raises(InputError, match="at least two labelled snapshot dates"):
        out_of_time_split(snapshots(1), 14)
    with pytest.raises(InputError, match="horizon closes by the test snapshot"):
        out_of_time_split(snapshots(2), 14)


def test_stratified_split_keeps_the_churn_rate():
    df = snapshots(1, customers=5000)
    out, info = stratified_split(df, seed=3)
    rates = out.groupby("split")["churned"].mean()
    assert abs(rates["test"] - rates["train"]) < 0.005
    assert info["n_test"] == 1000


def test_telco_spec_maps_into_a_training_set(make_settings, tmp_path):
    ts = from_spec(make_settings(tmp_path), ROOT / "local/specs/telco.yaml")
    assert ts.name == "churn-telco" and len(ts.frame) == 7043
    assert {f.name for f in ts.features} >= {"contract", "tenure_months", "total_charges"}
    assert ts.lineage[0]["table"] == str(TELCO) and ts.lineage[0]["version"].startswith("sha256:")
    assert ts.frame["churned"].sum() == 1869


def test_gold_tables_missing_or_lacking_feature_columns_are_named(make_settings, tmp_path):
    import pyarrow as pa
    from deltalake import write_deltalake

    from ml.dataset import from_lakehouse

    s = make_settings(tmp_path)
    with pytest.raises(InputError, match="gold/customer_features does not exist"):
        from_lakehouse(s)
    old = pd.DataFrame({"customer_id": ["a"], "snapshot_date": [D], "contract": ["Two year"]})
    write_deltalake(s.table_uri("gold", "customer_features"), pa.Table.from_pandas(old, preserve_index=False))
    write_deltalake(s.table_uri("gold", "labels"), pa.Table.from_pandas(
        pd.DataFrame({"customer_id": ["a"], "snapshot_date": [D], "churned": [0]}), preserve_index=False))
    with pytest.raises(InputError, match=r"lacks feature column\(s\) gender, senior_citizen.*rebuild it"):
        from_lakehouse(s)
