"""Nightly scoring with the champion: every active customer of D, reasons, deciles, idempotent reruns."""

import datetime as dt

import numpy as np
import pytest
from deltalake import DeltaTable

from churn.core.errors import InputError
from ml.registry import NoChampion
from spark_jobs import score
from tests.conftest import ML_D0

pytestmark = pytest.mark.slow
D = ML_D0 + dt.timedelta(days=63)  # a weekly snapshot whose label horizon is still open: scoring's day


@pytest.fixture(scope="module")
def scored(spark, champion):
    s, result = champion
    out = score.run(spark, s, D)
    table = DeltaTable(s.table_uri("gold", "customer_scores"))
    return s, result, out, table.to_pandas(filters=[("score_date", "=", D)]), table.version()


def test_every_active_customer_is_scored_once_with_the_champion(scored):
    s, result, out, rows, _ = scored
    features = DeltaTable(s.table_uri("gold", "customer_features")).to_pandas(filters=[("snapshot_date", "=", D)])
    assert out["rows"] == len(rows) == len(features) and rows["customer_id"].is_unique
    assert set(rows["customer_id"]) == set(features["customer_id"])
    assert (rows["model_version"] == result["version"]).all() and (rows["model_run_id"] == result["run_id"]).all()
    assert rows["churn_probability"].between(0, 1).all()


def test_probabilities_equal_the_model_applied_directly(scored):
    s, result, _, rows, _ = scored
    from ml.registry import Registry

    model = Registry(s).load(s.model_name, "champion")
    features = DeltaTable(s.table_uri("gold", "customer_features")).to_pandas(filters=[("snapshot_date", "=", D)])
    direct = dict(zip(features["customer_id"], model.predict(features)))
    got = rows.set_index("customer_id")["churn_probability"]
    assert np.allclose(got.to_numpy(), [direct[c] for c in got.index], atol=1e-6)


def test_reasons_are_the_largest_risk_raising_contributions(scored):
    _, _, _, rows, _ = scored
    n_reasons = rows["reasons"].map(len)
    assert n_reasons.max() == 3 and (n_reasons > 0).mean() > 0.9
    for reasons in rows["reasons"].head(200):
        contribs = [r["contribution"] for r in reasons]
        assert contribs == sorted(contribs, reverse=True) and all(c > 0 for c in contribs)
        assert all(r["description"] and r["feature"] for r in reasons)


def test_deciles_and_bands(scored):
    s, _, _, rows, _ = scored
    sizes = rows.groupby("risk_decile").size()
    assert sorted(sizes.index) == list(range(1, 11))
    assert sizes.max() - sizes.min() <= 0.02 * len(rows)
    means = rows.groupby("risk_decile")["churn_probability"].mean()
    assert means.is_monotonic_decreasing  # decile 1 = the riskiest
    low, high = s.risk_band_list
    expect = np.where(rows["churn_probability"] >= high, "high", np.where(rows["churn_probability"] >= low, "medium", "low"))
    assert (rows["risk_band"].to_numpy() == expect).all()


def test_rerun_replaces_the_date(spark, scored):
    s, _, _, rows, version = scored
    again = score.run(spark, s, D)
    table = DeltaTable(s.table_uri("gold", "customer_scores"))
    assert table.version() == version + 1
    after = table.to_pandas(filters=[("score_date", "=", D)])
    assert again["rows"] == len(after) == len(rows)


def test_scoring_fails_clearly(spark, champion, make_settings, tmp_path):
    s, _ = champion
    with pytest.raises(InputError, match="no rows for 2026-12-01"):
        score.run(spark, s, dt.date(2026, 12, 1))
    nobody = make_settings(tmp_path, lake_uri=s.lake_uri)
    with pytest.raises(NoChampion, match="has no champion"):
        score.run(spark, nobody, D)
    features = spark.read.format("delta").load(s.table_uri("gold", "customer_features")).drop("contract")
    payload = {"name": "churn", "version": "1", "features": ["contract", "tenure_months"],
               "prep": {"features": [{"name": "contract", "kind": "categorical"}]}}
    with pytest.raises(InputError, match="expects feature column.*contract"):
        score.check_signature(features, payload, "gold/customer_features")
