"""Evaluation figures on hand-checkable inputs, and the plots and report they render."""

import numpy as np
import pytest

from ml.evaluate import calibration_table, decile_table, metrics


def test_lift_and_capture_at_the_top():
    # 100 customers, 10 churners; the model puts 5 of them in its top 5 and 8 in its top 10
    p = np.linspace(1, 0, 100)
    y = np.zeros(100, dtype=int)
    y[[0, 1, 2, 3, 4, 5, 7, 9, 50, 90]] = 1
    out = metrics(y, p)
    assert out["capture_top_5"] == pytest.approx(0.5)
    assert out["lift_top_5"] == pytest.approx((5 / 5) / 0.1)
    assert out["capture_top_10"] == pytest.approx(0.8)
    assert out["capture_top_20"] == pytest.approx(0.8)
    assert out["base_rate"] == pytest.approx(0.1) and out["positives"] == 10


def test_perfect_and_random_scores():
    y = np.array([0] * 90 + [1] * 10)
    assert metrics(y, y * 0.9 + 0.05)["roc_auc"] == 1.0
    rng = np.random.default_rng(0)
    yy = rng.integers(0, 2, 20000)
    assert metrics(yy, rng.random(20000))["roc_auc"] == pytest.approx(0.5, abs=0.02)


def test_calibration_error_is_zero_for_calibrated_scores_and_large_when_scaled():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 0.3, 200_000)
    y = (rng.random(len(p)) < p).astype(int)
    assert metrics(y, p)["calibration_error"] < 0.005
    assert metrics(y, np.minimum(p * 2, 1))["calibration_error"] > 0.1
    cal = calibration_table(y, p)
    assert cal["n"].sum() == len(p) and cal["mean_predicted"].is_monotonic_increasing


def test_deciles_cover_everyone_riskiest_first():
    rng = np.random.default_rng(2)
    p = rng.random(1003)
    y = (rng.random(1003) < p).astype(int)
    d = decile_table(y, p)
    assert d["customers"].sum() == 1003 and d["churners"].sum() == y.sum()
    assert d["mean_predicted"].is_monotonic_decreasing
    assert d["cumulative_capture"].iloc[-1] == pytest.approx(1.0)


def test_metrics_per_segment_and_the_tenure_band():
    import pandas as pd

    from ml.evaluate import Evaluation, segment_metric_names, segment_metrics

    rng = np.random.default_rng(3)
    n = 4000
    frame = pd.DataFrame({"contract": rng.choice(["month", "year"], n), "tenure_months": rng.uniform(0, 60, n),
                          "region": rng.choice(["north", None], n)})
    y = rng.random(n) < np.where(frame["contract"] == "month", 0.3, 0.05)
    p = np.where(y, 0.6, 0.2) + rng.normal(0, 0.15, n)
    p = np.where(frame["contract"] == "year", rng.random(n), p)  # no signal at all on yearly contracts
    seg = segment_metrics(y, np.clip(p, 0, 1), frame, ["contract", "tenure_band", "region"])
    by = seg.set_index(["segment", "value"])
    assert by.loc[("contract", "month"), "roc_auc"] > 0.85 and 0.4 < by.loc[("contract", "year"), "roc_auc"] < 0.6
    assert set(seg.loc[seg["segment"] == "tenure_band", "value"]) == {"0-6m", "6-12m", "12-24m", "24-48m", "48m+"}
    assert set(seg.loc[seg["segment"] == "region", "value"]) == {"north", "<missing>"}
    for name, part in seg.groupby("segment"):
        assert part["n"].sum() == n and part["share"].sum() == pytest.approx(1.0)
    flat = segment_metric_names(seg)
    assert flat["segment.contract.month.roc_auc"] == pytest.approx(by.loc[("contract", "month"), "roc_auc"])
    assert "segment.region._missing_.share" in flat
    with pytest.raises(Exception, match="segment column 'plan' is not in the evaluation rows"):
        segment_metrics(y, p, frame, ["plan"])
    # the table survives a save and load (the pipeline passes evaluations between steps as files)
    ev = Evaluation({}, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), {}, {}, seg)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        ev.save(tmp)
        back = pd.read_csv(f"{tmp}/segments.csv")
        assert len(back) == len(seg)
