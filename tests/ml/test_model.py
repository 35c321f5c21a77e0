"""The model object on small frames: preprocessing, persistence, contributions, determinism."""

import numpy as np
import pandas as pd
import pytest

from churn.core.errors import InputError
from ml.model import ChurnModel, FeatureSpec, Preprocessor, TrainParams, fit

FEATURES = [FeatureSpec("plan", "categorical"), FeatureSpec("usage", "numeric"), FeatureSpec("tenure", "numeric")]


def frame(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro"], n)
    usage = rng.gamma(2.0, 10.0, n)
    tenure = rng.integers(0, 72, n).astype(float)
    logit = -2 + 1.2 * (plan == "basic") - 0.05 * usage - 0.03 * tenure
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "plan": plan, "usage": usage,
                         "tenure": tenure, "churned": y})


@pytest.fixture(scope="module")
def model():
    df = frame()
    prep = Preprocessor.fit(df, FEATURES)
    return fit(df.iloc[:2400], df.iloc[2400:], "churned", prep, TrainParams(num_boost_round=200, early_stopping_rounds=20))


def test_categories_are_fixed_at_training_and_unknown_values_become_missing(model):
    rows = pd.DataFrame({"plan": ["basic", "enterprise", None], "usage": [5.0, 5.0, 5.0], "tenure": [3.0, 3.0, 3.0]})
    x = model.prep.transform(rows)
    assert list(x["plan"].cat.categories) == ["basic", "plus", "pro"]
    assert x["plan"].isna().tolist() == [False, True, True]
    assert model.prep.unknown_categories(rows) == {"plan": 1}
    p = model.predict(rows)
    assert p[1] == pytest.approx(p[2])  # an unseen plan is treated exactly as a missing one


@pytest.mark.parametrize("n", [1, 7, 500])  # the small-batch (dict) and large-batch (index) encodings
def test_prediction_matrix_gives_what_xgboost_gives_on_the_pandas_categoricals(model, n):
    """Training hands XGBoost pandas categoricals; scoring builds the matrix itself. Same numbers."""
    import xgboost as xgb

    rows = frame(n, seed=5).astype({"plan": object, "usage": object, "tenure": object})
    rows.loc[rows.index[1::3], "tenure"] = None
    rows.loc[rows.index[::3], "plan"] = "enterprise"  # unseen: missing
    rows.loc[rows.index[1::4], "plan"] = None
    rows.loc[rows.index[2::5], "usage"] = None
    rows.loc[rows.index[::2], "usage"] = rows["usage"][::2].map(lambda v: None if v is None else str(v))
    reference = xgb.DMatrix(model.prep.transform(rows), enable_categorical=True)
    ours = model.prep.matrix(rows)
    # ours carries no column names (the model's order by construction): predicted without the name check
    assert np.array_equal(model.booster.predict(reference), model.booster.predict(ours, validate_features=False))
    assert np.array_equal(model.booster.predict(reference, pred_contribs=True),
                          model.booster.predict(ours, pred_contribs=True, validate_features=False))


def test_column_order_and_extra_columns_do_not_matter(model):
    df = frame(50, seed=1)
    shuffled = df[["tenure", "churned", "customer_id", "usage", "plan"]]
    assert np.array_equal(model.predict(df), model.predict(shuffled))


def test_missing_and_non_numeric_columns_are_named(model):
    with pytest.raises(InputError, match="missing feature column.*usage"):
        model.predict(frame(5).drop(columns=["usage"]))
    bad = frame(5).astype({"usage": object})
    bad.loc[2, "usage"] = "lots"
    with pytest.raises(InputError, match="numeric feature usage.*lots"):
        model.predict(bad)


def test_save_and_load_give_identical_predictions(model, tmp_path):
    df = frame(500, seed=2)
    again = ChurnModel.load(model.save(tmp_path / "m"))
    assert np.array_equal(model.predict(df), again.predict(df))
    assert again.info["best_iteration"] == model.info["best_iteration"]


def test_contributions_sum_to_the_margin(model):
    df = frame(200, seed=3)
    contrib = model.contributions(df)
    assert list(contrib.columns) == ["plan", "usage", "tenure", "bias"]
    margin = np.log(model.predict(df) / (1 - model.predict(df)))
    assert np.allclose(contrib.sum(axis=1), margin, atol=1e-4)


def test_fit_is_deterministic_for_a_seed():
    df = frame(2000, seed=4)
    prep = Preprocessor.fit(df, FEATURES)
    params = TrainParams(num_boost_round=100, early_stopping_rounds=10, seed=7)
    a = fit(df.iloc[:1600], df.iloc[1600:], "churned", prep, params)
    b = fit(df.iloc[:1600], df.iloc[1600:], "churned", prep, params)
    assert np.array_equal(a.predict(df), b.predict(df))
    assert bytes(a.booster.save_raw()) == bytes(b.booster.save_raw())


def test_a_single_class_cannot_be_fitted():
    df = frame(300).assign(churned=0)
    with pytest.raises(InputError, match="single class"):
        fit(df.iloc[:200], df.iloc[200:], "churned", Preprocessor.fit(df, FEATURES), TrainParams())


def test_unknown_training_parameter_is_named():
    with pytest.raises(InputError, match="max_dept"):
        TrainParams.from_overrides({"max_dept": "3"})
    assert TrainParams.from_overrides({"max_depth": "5"}).max_depth == 5
