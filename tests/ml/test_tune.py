"""The tune step (ml/tune.py): a seeded search that never sees the holdout, its budget and folds."""

import numpy as np
import pandas as pd
import pytest

from churn.core.errors import ConfigError, InputError
from churn.core.settings import load_settings
from churn.core.specs import load_spec
from ml.dataset import TrainingSet, from_spec
from ml.model import TrainParams
from ml.tune import SPACE, Budget, folds_of, sample_customers, search_rows, tune
from tests.conftest import ROOT

TELCO_SPEC = ROOT / "local/specs/telco.yaml"


def _trials(shards):
    return [(t["number"], t["state"], t["value"], t["params"]) for s in shards for t in s["trials"]]


def test_the_search_never_sees_the_holdout_and_is_reproducible(tmp_path):
    """Scrambling the test rows' labels and features changes no trial's score and no chosen parameter;
    a search that read the test rows in any way would score its trials differently."""
    s = load_settings(env={"CHURN_HOME": str(tmp_path)})
    ts = from_spec(s, TELCO_SPEC, seed=7)
    budget = Budget(trials=3, seconds=300, folds=2)  # the defaults and two sampled trials
    chosen, summary, shards = tune(ts, TrainParams(seed=7), budget, seed=7)

    frame = ts.frame.copy()
    test = frame["split"] == "test"
    rng = np.random.default_rng(0)
    frame.loc[test, "churned"] = rng.permutation(frame.loc[test, "churned"].to_numpy())
    for col in ("tenure_months", "monthly_charges", "contract"):
        frame.loc[test, col] = rng.permutation(frame.loc[test, col].to_numpy())
    assert (frame.loc[test, "churned"].to_numpy() != ts.frame.loc[test, "churned"].to_numpy()).sum() > 100
    scrambled = TrainingSet(frame, ts.features, ts.name, ts.lineage, ts.split, ts.source, ts.segments)
    chosen2, summary2, shards2 = tune(scrambled, TrainParams(seed=7), budget, seed=7)

    assert _trials(shards) == _trials(shards2)
    assert chosen == chosen2 and summary["chosen"] == summary2["chosen"]
    # the defaults are the first trial, so the choice never scores below them on the same folds
    first = shards[0]["trials"][0]
    assert first["params"] == {k: getattr(TrainParams(), k) for k in SPACE}
    assert summary["best_auc"] >= summary["default_auc"]
    assert summary["rows"] == summary["customers"] == ts.split["n_train"] + ts.split["n_valid"]
    assert len(shards[0]["trials"]) == 3 and summary["completed"] + summary["pruned"] == 3


def test_search_rows_and_folds():
    frame = pd.DataFrame({"customer_id": np.repeat(np.arange(200), 3), "churned": np.tile([0, 0, 1], 200),
                          "split": np.repeat(np.where(np.arange(200) < 150, "train",
                                                      np.where(np.arange(200) < 170, "valid", "test")), 3)})
    ts = TrainingSet(frame, [], "m", split={"kind": "out_of_time"})
    rows = search_rows(ts)
    assert set(rows["split"]) == {"train", "valid"} and len(rows) == 510
    # out-of-time: one fold, the validation slice (carved by customer)
    [(fit_at, score_at)] = folds_of(rows.reset_index(drop=True), "out_of_time", 3, 0)
    assert set(rows.iloc[score_at]["split"]) == {"valid"} and set(rows.iloc[fit_at]["split"]) == {"train"}
    # a snapshot: k folds by customer, no customer on both sides of any fold
    folds = folds_of(rows.reset_index(drop=True), "stratified", 3, 0)
    assert len(folds) == 3
    ids = rows["customer_id"].to_numpy()
    for fit_at, score_at in folds:
        assert not set(ids[fit_at]) & set(ids[score_at])
    # sampling draws whole customers, about the asked rows, seeded
    sample = sample_customers(rows, 150, seed=1)
    assert sample.groupby("customer_id").size().eq(3).all() and 120 <= len(sample) <= 180
    assert sample.equals(sample_customers(rows, 150, seed=1))


def test_budget_spec_and_settings_are_checked(tmp_path):
    b = Budget()
    assert b.with_overrides({"trials": 9, "workers": 2}, "x").shares() == [5, 4]
    with pytest.raises(InputError, match="spec s.yaml: unknown tune field\\(s\\) trails"):
        b.with_overrides({"trails": 5}, "spec s.yaml")
    with pytest.raises(InputError, match="tune.trials must be an integer, got 2.5"):
        b.with_overrides({"trials": 2.5}, "spec")
    with pytest.raises(InputError, match="tune folds must be between 2 and 10, got 1"):
        b.with_overrides({"folds": 1}, "spec")
    with pytest.raises(ConfigError, match="tune_seconds must be > 0"):
        load_settings(env={"CHURN_HOME": str(tmp_path), "CHURN_TUNE_SECONDS": "0"})
    spec = tmp_path / "s.yaml"
    spec.write_text("source: x.csv\nid: id\nlabel: {column: c, positive: 'y'}\ntune: sometimes\n")
    with pytest.raises(InputError, match="'tune' must be true, false or a mapping"):
        load_spec(spec)
    spec.write_text("source: x.csv\nid: id\nlabel: {column: c, positive: 'y'}\ntune: true\nsegments: [Plan]\n")
    assert load_spec(spec).tune == {} and load_spec(spec).segments == ["Plan"]
    # a segment must be a feature: not a dropped column
    pd.DataFrame({"id": range(40), "Plan": ["a", "b"] * 20, "Notes": "x", "c": ["y", "n", "n", "n"] * 10}).to_csv(
        tmp_path / "x.csv", index=False)
    spec.write_text("source: x.csv\nid: id\nlabel: {column: c, positive: 'y'}\ndrop: [Notes]\nsegments: [Plan, Notes]\n")
    with pytest.raises(InputError, match="'segments' names column\\(s\\) Notes that are not features"):
        from_spec(load_settings(env={"CHURN_HOME": str(tmp_path)}), spec)
