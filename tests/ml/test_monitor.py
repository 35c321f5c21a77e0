"""The nightly monitor on the session's lakehouse, whose generator raised every price on day 64
(tests/conftest.py): the night before the rise is quiet, the night after it is reported and requests
a retrain, once; realized performance of a night whose horizon closed; the rows in PostgreSQL, the
report in the reports store and in MLflow, and the HTML report as a browser renders it."""

import datetime as dt
import json
from pathlib import Path

import psycopg
import pytest
from deltalake import DeltaTable

from tests.conftest import ML_D0, ML_DRIFT_DATE, ML_HORIZON

pytestmark = pytest.mark.slow
QUIET = ML_D0 + dt.timedelta(days=63)  # the last weekly snapshot before the price rise
DRIFTED = ML_D0 + dt.timedelta(days=69)  # five days after it
LABELLED = QUIET - dt.timedelta(days=ML_HORIZON)  # its horizon closes on QUIET: realized that night


@pytest.fixture(scope="module")
def monitored(spark, champion, make_settings, postgres, tmp_path_factory):
    from churn.warehouse.db import upgrade
    from ml import monitor
    from spark_jobs import score

    assert QUIET < ML_DRIFT_DATE <= DRIFTED
    s0, trained = champion
    db = "monitor_tests"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db}")
        conn.execute(f"CREATE DATABASE {db}")
    pg_url = postgres.url.rsplit("/", 1)[0] + f"/{db}"
    home = tmp_path_factory.mktemp("monitor")
    s = make_settings(home, lake_uri=s0.lake_uri, mlflow_uri=s0.mlflow_tracking_uri, label_horizon_days=ML_HORIZON,
                      pg_url=pg_url)
    upgrade(s)
    for d in (LABELLED, QUIET, DRIFTED):
        score.run(spark, s, d)
    results = {d: monitor.monitor(s, d) for d in (QUIET, DRIFTED)}
    rerun = monitor.monitor(s, DRIFTED)
    return s, trained, results, rerun


def test_the_night_before_the_price_rise_is_quiet_and_the_night_after_requests_a_retrain(monitored):
    s, trained, results, _ = monitored
    quiet, drifted = results[QUIET], results[DRIFTED]
    print({d: {k: r[k] for k in ("drifted_share", "drifted_importance", "drifted_features", "score_drifted")}
           for d, r in results.items()})
    assert quiet["model_version"] == drifted["model_version"] == trained["version"]
    assert "monthly_charges" not in quiet["drifted_features"] and "monthly_charges" in drifted["drifted_features"]
    assert quiet["drifted_importance"] < s.drift_retrain_share <= drifted["drifted_importance"]
    assert quiet["retrain"] == {"requested": False, "reasons": []}
    assert drifted["retrain"]["requested"] is True
    (reason,) = drifted["retrain"]["reasons"]
    assert reason.startswith("drift: features carrying") and "monthly_charges" in reason
    # the sample is the whole night here (10k customers, under drift_sample_rows)
    features = DeltaTable(s.table_uri("gold", "customer_features")).to_pandas(filters=[("snapshot_date", "=", DRIFTED)])
    assert drifted["rows_current"] == drifted["rows_night"] == len(features)


def test_a_rerun_of_the_night_replaces_its_rows_and_requests_nothing_new(monitored):
    from ml.registry import Registry

    s, _, results, rerun = monitored
    assert rerun["retrain"]["requested"] is False and "cooldown" in rerun["retrain"]["suppressed_by"]
    assert rerun["drifted_features"] == results[DRIFTED]["drifted_features"]
    hist = Registry(s).history(s.model_name)
    requests = hist[hist["event"] == "retrain_request"]
    assert requests["night"].tolist() == [str(DRIFTED)], hist[["event", "night", "reason"]]
    with psycopg.connect(s.pg_url) as conn:
        per_night = dict(conn.execute("SELECT score_date, count(*) FROM churn.drift_metrics GROUP BY 1").fetchall())
    n_columns = len(results[DRIFTED]["columns"])
    assert per_night == {QUIET: n_columns, DRIFTED: n_columns}


def test_the_cooldown_holds_back_requests_for_its_days(monitored):
    """After the drifted night's request, nights within CHURN_RETRAIN_COOLDOWN_DAYS request nothing;
    the first night past it does."""
    from ml.monitor import request_retrain

    s, *_ = monitored
    assert s.retrain_cooldown_days == 7
    reasons = ["drift: as on the night before"]
    within = request_retrain(s, DRIFTED + dt.timedelta(days=6), reasons, {})
    assert within["requested"] is False and within["suppressed_by"].startswith(f"the request of night {DRIFTED}")
    after = request_retrain(s, DRIFTED + dt.timedelta(days=7), reasons, {})
    assert after == {"requested": True, "reasons": reasons, "night": str(DRIFTED + dt.timedelta(days=7))}


def test_postgres_holds_the_verdicts_the_latest_night_and_the_realized_performance(monitored):
    from ml.evaluate import metrics

    s, _, results, _ = monitored
    with psycopg.connect(s.pg_url) as conn:
        conn.execute("SET ROLE churn_publisher")  # what the monitor writes as may read them back
        rows = conn.execute("SELECT feature, kind, test, statistic, drifted, importance FROM churn.drift_metrics "
                            "WHERE score_date = %s", (DRIFTED,)).fetchall()
        latest = conn.execute("SELECT DISTINCT score_date FROM churn.drift_metrics_latest").fetchall()
        nights = {r[0]: r[1:] for r in conn.execute(
            "SELECT score_date, drifted_share, drifted_importance, score_drifted FROM churn.drift_nights")}
        perf = conn.execute("SELECT score_date, model_version, rows, roc_auc, lift_top_10, calibration_error, "
                            "evaluated_on FROM churn.model_performance").fetchall()
    want = {c["feature"]: c for c in results[DRIFTED]["columns"]}
    assert {r[0] for r in rows} == set(want) and ("churn_probability", "score") in {(r[0], r[1]) for r in rows}
    for feature, kind, test, stat, drifted, importance in rows:
        assert (test, drifted) == (want[feature]["test"], want[feature]["drifted"]), feature
        assert stat == pytest.approx(want[feature]["statistic"]) if stat is not None else True
    assert latest == [(DRIFTED,)]
    for d, r in results.items():
        share, importance, score_drifted = nights[d]
        assert float(share) == pytest.approx(r["drifted_share"], abs=1e-3)
        assert float(importance) == pytest.approx(r["drifted_importance"], abs=1e-3)
        assert score_drifted == r["score_drifted"]
    # the night whose horizon closed on QUIET: its scores against the labels, computed independently
    (row,) = perf
    assert row[0] == LABELLED and row[6] == QUIET
    scores = DeltaTable(s.table_uri("gold", "customer_scores")).to_pandas(filters=[("score_date", "=", LABELLED)])
    labels = DeltaTable(s.table_uri("gold", "labels")).to_pandas(filters=[("snapshot_date", "=", LABELLED)])
    joined = scores.merge(labels, on="customer_id")
    m = metrics(joined["churned"].to_numpy(), joined["churn_probability"].to_numpy())
    assert row[2] == len(joined) and row[3] == pytest.approx(m["roc_auc"]) and row[4] == pytest.approx(m["lift_top_10"])
    assert row[3] > 0.75 and results[QUIET]["realized"]["roc_auc"] == pytest.approx(m["roc_auc"])


def test_the_report_is_stored_logged_and_renders_without_errors(monitored):
    """The HTML report opens in headless Chromium without a console error; the screenshot is saved
    beside it (what the README shows)."""
    from mlflow import MlflowClient

    from tests.support.browser import render

    s, _, results, _ = monitored
    report = Path(results[DRIFTED]["report"])
    assert report == Path(s.reports_dir) / "drift" / str(DRIFTED) / "drift.html"
    data = json.loads(report.with_name("drift.json").read_text())
    assert data["drifted_features"] == results[DRIFTED]["drifted_features"] and len(data["columns"]) > 40
    client = MlflowClient(s.mlflow_tracking_uri)
    run = client.get_run(results[DRIFTED]["mlflow_run"])
    assert run.data.tags["night"] == str(DRIFTED) and run.data.metrics["drifted_importance"] == pytest.approx(
        results[DRIFTED]["drifted_importance"], abs=1e-4)
    assert {a.path for a in client.list_artifacts(run.info.run_id, "drift")} == {"drift/drift.html", "drift/drift.json"}
    shot = report.with_name("drift.png")
    page = render(report, shot)
    assert page["errors"] == [], page["errors"]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    # the page is not blank: many distinct colours (plots and tables drawn)
    from PIL import Image

    with Image.open(shot) as img:
        colours = img.convert("RGB").resize((200, 300)).getcolors(maxcolors=100_000)
    assert colours is not None and len(colours) > 50


def test_realized_performance_is_printed_and_plotted(monitored, capsys, monkeypatch):
    from churn.cli import main

    s, *_ = monitored
    for k, v in {"HOME": s.home, "PG_URL": s.pg_url, "LABEL_HORIZON_DAYS": str(ML_HORIZON)}.items():
        monkeypatch.setenv(f"CHURN_{k}", v)
    assert main(["models", "performance"]) == 0
    out = capsys.readouterr().out
    assert str(LABELLED) in out and "ROC-AUC" in out
    png = Path(out.split("plot: ")[1].strip())
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
