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
