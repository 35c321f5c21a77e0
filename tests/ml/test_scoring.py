"""The reasons column of ml/scoring.py: which features, in what order, and their values as text.

Pure numpy/Arrow (no model, no JVM): the values of a batch's reasons are gathered per feature and
formatted per kind in one call each, and must still land on their own row and feature.
"""

import numpy as np
import pandas as pd

from ml.scoring import format_values, reasons_array

FEATS = ["charges", "tickets", "plan", "score_obj", "big_int"]
DESCRIBED = {"charges": "Monthly charges", "plan": "Plan"}


def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["a", "b", "c", "d"],
        "charges": [70.345678, 1234567.8, np.nan, 0.000123456789],  # float64
        "tickets": np.array([3, 0, 12, 7], dtype=np.int64),  # integers: exact
        "plan": np.array(["basic", None, "pro", "basic"], dtype=object),  # text
        "score_obj": np.array([1.5, None, 2.25, 99.9999999], dtype=object),  # numbers held as objects
        "big_int": np.array([1234567, 2, 3, 4], dtype=np.int64),
    })


def test_values_are_formatted_per_kind_and_stay_on_their_row_and_feature():
    # contributions chosen so rows mix kinds in different orders; row d has a negative one (never a reason)
    values = np.array([
        [0.9, 0.1, 0.5, 0.0, 0.3],   # a: charges, plan, big_int
        [0.2, 0.0, 0.8, 0.6, 0.0],   # b: plan (missing), score_obj (missing), charges
        [0.7, 0.9, 0.0, 0.8, 0.0],   # c: tickets, score_obj, charges (missing)
        [0.4, -0.2, 0.0, 0.0, 0.5],  # d: big_int, charges
    ])
    reasons = reasons_array(values, frame(), FEATS, DESCRIBED).to_pylist()
    got = [[(r["feature"], r["value"]) for r in row] for row in reasons]
    assert got == [
        [("charges", "70.3457"), ("plan", "basic"), ("big_int", "1234567")],
        [("plan", None), ("score_obj", None), ("charges", "1234570")],
        [("tickets", "12"), ("score_obj", "2.25"), ("charges", None)],
        [("big_int", "4"), ("charges", "0.000123457")],
    ]
    assert reasons[0][0]["description"] == "Monthly charges" and reasons[0][2]["description"] == "big_int"
    assert [r["contribution"] for r in reasons[1]] == [0.8, 0.6, 0.2]


def test_a_row_without_a_positive_contribution_has_no_reasons():
    reasons = reasons_array(np.array([[-0.1, 0.0, -2.0, 0.0, 0.0]]), frame().iloc[:1], FEATS, {})
    assert reasons.to_pylist() == [[]]


def test_format_values_of_each_kind():
    assert format_values(np.array([70.35, 3.0, 1234567.8, np.nan, -0.5])).to_pylist() == [
        "70.35", "3", "1234570", None, "-0.5"]
    assert format_values(np.array([1234567, 0], dtype=np.int32)).to_pylist() == ["1234567", "0"]
    assert format_values(np.array(["x", None], dtype=object)).to_pylist() == ["x", None]
    assert format_values(np.array([None, 2.5], dtype=object)).to_pylist() == [None, "2.5"]


def test_one_row_at_a_time_gives_the_reasons_of_the_whole_batch():
    """The online path scores a request of one row, the nightly batches of thousands: the reasons of a
    row must not depend on the company it is scored in (small and large frames are gathered differently)."""
    rng = np.random.default_rng(3)
    big = pd.concat([frame()] * 30, ignore_index=True)  # 120 rows: the batch way
    big["charges"] = rng.normal(60, 30, len(big)).round(4)
    values = rng.normal(0, 1, (len(big), len(FEATS)))
    batch = reasons_array(values, big, FEATS, DESCRIBED).to_pylist()
    alone = [reasons_array(values[i:i + 1], big.iloc[i:i + 1].astype(object), FEATS, DESCRIBED).to_pylist()[0]
             for i in range(len(big))]
    assert alone == batch
    assert sum(len(r) for r in batch) > 2 * len(big)  # most rows have several reasons of several kinds


def test_online_records_are_the_batch_tables_rows():
    """``score_records`` (online, Python dicts) and ``score_table`` (nightly, Arrow) lay out the one
    computation: for a batch, and for each row alone as the predictor builds it (an object frame of
    floats, NaN for missing, and text), they give the same probabilities, bands and reasons."""
    import datetime as dt

    from ml.model import FeatureSpec, Preprocessor, TrainParams, fit
    from ml.scoring import score_records, score_table

    rng = np.random.default_rng(7)
    n = 400
    data = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)],
        "charges": rng.normal(60, 30, n).round(3),
        "tickets": rng.integers(0, 9, n).astype(float),
        "plan": rng.choice(["basic", "pro", "max"], n).astype(object),
    })
    data.loc[::17, "charges"] = np.nan
    data.loc[::13, "plan"] = None
    # churn follows tickets, and a missing charge or plan (so missing values are among the reasons)
    risk = data["tickets"] - 4 + 2 * (data["charges"].isna() | data["plan"].isna())
    data["y"] = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(int)
    prep = Preprocessor.fit(data, [FeatureSpec("charges", "numeric"), FeatureSpec("tickets", "numeric"),
                                   FeatureSpec("plan", "categorical")])
    model = fit(data[:300], data[300:], "y", prep, TrainParams(num_boost_round=40, early_stopping_rounds=40,
                                                                 max_depth=3, nthread=1))
    rows = data.drop(columns="y")
    table = [{k: v for k, v in r.items() if k not in ("customer_id", "score_date")}
             for r in score_table(model, rows, dt.date(2026, 1, 31), DESCRIBED, [0.3, 0.6]).to_pylist()]
    assert score_records(model, rows, DESCRIBED, [0.3, 0.6]) == table
    alone = [score_records(model, rows.iloc[i:i + 1].astype(object), DESCRIBED, [0.3, 0.6])[0] for i in range(n)]
    assert alone == table
    assert {r["risk_band"] for r in table} >= {"low", "high"} and sum(len(r["reasons"]) for r in table) > n
    assert any(x["value"] is None for r in table for x in r["reasons"])  # missing values among the reasons
    assert score_records(model, rows.iloc[:0], DESCRIBED, [0.3, 0.6]) == []
