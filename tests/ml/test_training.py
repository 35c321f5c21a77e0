"""churn train on a generated lakehouse: quality against the oracle, MLflow lineage, the gate,
operator promote / rollback / history, and failures that leave the champion alone."""

import datetime as dt

import pytest

from churn.cli import main
from churn.core.errors import InputError
from ml import train
from ml.registry import CHAMPION, CHALLENGER, Registry, RegistryUnavailable
from tests.conftest import ML_D0 as D0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(ml_lake, make_settings, tmp_path_factory):
    """Two identical training runs in one MLflow store: the first becomes champion, the second is judged."""
    home = tmp_path_factory.mktemp("trained")
    (home / "oracle").symlink_to(ml_lake / "oracle")
    s = make_settings(home, lake_uri=str(ml_lake / "lake"), label_horizon_days=14)
    first = train.run(s, seed=42)
    second = train.run(s, seed=42)
    return s, first, second


def test_model_reaches_the_oracle(trained):
    _, first, _ = trained
    assert first["oracle_roc_auc"] > 0.7
    assert first["auc_share_of_oracle"] >= 0.97, first
    assert first["calibration_error"] < 0.02
    assert first["split"]["kind"] == "out_of_time" and first["n_test"] > 3000


def test_training_is_deterministic_for_a_seed_and_table_versions(trained):
    _, first, second = trained
    for k in ("roc_auc", "pr_auc", "log_loss", "brier"):
        assert first[k] == second[k]
    assert first["inputs"] == second["inputs"]


def test_run_records_params_metrics_lineage_plots_and_report(trained):
    s, first, _ = trained
    reg = Registry(s)
    run = reg.client.get_run(first["run_id"])
    assert run.data.metrics["roc_auc"] == pytest.approx(first["roc_auc"])
    assert run.data.params["max_depth"] == "3"
    versions = {x["table"]: x["version"] for x in first["inputs"]}
    assert run.data.tags["data.gold/customer_features"].endswith(f"@{versions['gold/customer_features']}")
    assert {i.dataset.name for i in run.inputs.dataset_inputs} == {"gold/customer_features", "gold/labels"}
    names = {a.path for a in reg.client.list_artifacts(first["run_id"], "evaluation")}
    for plot in ("roc", "pr", "calibration", "gains", "importance"):
        assert f"evaluation/{plot}.png" in names
    assert "evaluation/report.html" in names
    lineage = reg.mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/lineage.json")
    assert lineage["inputs"] == first["inputs"]


def test_first_model_is_champion_and_an_equal_challenger_is_not_promoted(trained):
    s, first, second = trained
    assert first["decision"] == "promoted" and first["champion"] == first["version"]
    assert second["decision"] == "rejected" and second["champion"] == first["version"]
    assert any("does not beat the champion" in r for r in second["reasons"])
    reg = Registry(s)
    assert reg.alias_version(s.model_name, CHAMPION) == first["version"]
    assert reg.alias_version(s.model_name, CHALLENGER) == second["version"]
    run = reg.client.get_run(second["run_id"])
    assert run.data.tags["gate.outcome"] == "rejected"
    decision = reg.mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/promotion_decision.json")
    assert decision["champion"]["version"] == first["version"]
    assert decision["champion"]["metrics"]["roc_auc"] == pytest.approx(first["roc_auc"])  # same rows, same model


def test_registered_model_loads_with_its_signature(trained):
    s, first, _ = trained
    from deltalake import DeltaTable

    reg = Registry(s)
    pyfunc = reg.mlflow.pyfunc.load_model(f"models:/{s.model_name}@champion")
    names = [c.name for c in pyfunc.metadata.get_input_schema().inputs]
    rows = DeltaTable(s.table_uri("gold", "customer_features")).to_pandas().head(20)
    out = pyfunc.predict(rows[names])
    assert list(out.columns) == ["churn_probability"] and out["churn_probability"].between(0, 1).all()
    same = reg.load(s.model_name, "champion").predict(rows)
    assert (abs(out["churn_probability"].to_numpy() - same) < 1e-12).all()


def use_settings(monkeypatch, s):
    """Point the `churn` command (run in-process) at the settings of a test."""
    for k, v in {"CHURN_HOME": s.home, "CHURN_LAKE_URI": s.lake_uri,
                 "CHURN_LABEL_HORIZON_DAYS": str(s.label_horizon_days)}.items():
        monkeypatch.setenv(k, v)


def test_operator_promote_rollback_and_history(trained, capsys, monkeypatch):
    s, first, second = trained
    use_settings(monkeypatch, s)
    reg = Registry(s)
    assert main(["promote", "--version", second["version"], "--reason", "A/B test winner"]) == 0
    assert reg.alias_version(s.model_name, CHAMPION) == second["version"]
    assert main(["rollback"]) == 0
    assert reg.alias_version(s.model_name, CHAMPION) == first["version"]
    assert main(["rollback"]) == 1  # the first champion has no predecessor: refused, nothing recorded
    assert main(["promote", "--version", "99"]) == 1
    capsys.readouterr()
    assert main(["models", "history"]) == 0
    out = capsys.readouterr().out
    hist = reg.history(s.model_name)
    assert hist["event"].tolist() == ["gate", "gate", "promote", "rollback"]
    assert hist["champion_after"].tolist() == [first["version"], first["version"], second["version"], first["version"]]
    assert hist["champion_until"].notna().tolist() == [True, True, True, False]  # the current one has no end
    assert "A/B test winner" in out and "rollback" in out
    # every version's model card, listed by the history
    for r in (first, second):
        assert f"version {r['version']:>4}  {reg.card_uri(s.model_name, r['version'])}" in out
        assert reg.card_uri(s.model_name, r["version"]).endswith(f"{r['run_id']}/artifacts/model_card/model_card.html")


def test_each_version_has_a_model_card_and_segments_are_measured_and_gated(trained):
    s, first, second = trained
    reg = Registry(s)
    run = reg.client.get_run(second["run_id"])
    # per-segment quality as MLflow metrics (contract, region, tenure band, internet service)
    segs = {k.split(".")[1] for k in run.data.metrics if k.startswith("segment.") and k.endswith(".roc_auc")}
    assert segs == {"contract", "region", "tenure_band", "internet_service"}
    # the gate compared the segments on the same rows; identical models: none worse
    decision = reg.mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/promotion_decision.json")
    compared = decision["champion"]["segments"]
    assert {c["segment"] for c in compared} == segs
    assert all(c["challenger"] == pytest.approx(c["champion"]) for c in compared if c["champion"] == c["champion"])
    assert any("segments compared" in r for r in second["reasons"])
    # the card: in the run (Markdown and HTML), as the version's description
    names = {a.path for a in reg.client.list_artifacts(second["run_id"], "model_card")}
    assert names == {"model_card/model_card.md", "model_card/model_card.html"}
    md = reg.client.get_model_version(s.model_name, second["version"]).description
    for part in (f"# Model card: {s.model_name} version {second['version']}", "## Data", "gold/customer_features",
                 "## Features", "## Quality per segment", "| contract |", "## Calibration",
                 "## Tuning and parameters", "Not tuned", "## Promotion gate", "**rejected**", "does not beat",
                 "## Known limits"):
        assert part in md, part
    assert len(md) <= 5000
    whole = reg.mlflow.artifacts.load_text(f"{run.info.artifact_uri}/model_card/model_card.md")
    assert "| sessions_trend_7_30 | numeric |" in whole  # every feature with its description, in the artifact
    page = reg.mlflow.artifacts.load_text(f"{run.info.artifact_uri}/model_card/model_card.html")
    assert "<h2>Quality per segment</h2>" in page and "data:image/png;base64" in page


def test_failed_runs_never_touch_the_champion(trained, make_settings, ml_lake, tmp_path):
    s, first, _ = trained
    reg = Registry(s)
    before = reg.alias_version(s.model_name, CHAMPION)
    late = D0 + dt.timedelta(days=63)  # a snapshot whose 14-day horizon is still open
    with pytest.raises(InputError, match="no labels yet"):
        train.run(s, start=late, end=late)
    with pytest.raises(InputError, match="empty training window"):
        train.run(s, start=dt.date(2025, 1, 1), end=dt.date(2025, 2, 1))
    with pytest.raises(InputError, match="at least two labelled snapshot dates"):
        train.run(s, start=D0, end=D0)
    assert reg.alias_version(s.model_name, CHAMPION) == before
    # an unreachable tracking server fails fast, before any training
    dead = make_settings(tmp_path, lake_uri=s.lake_uri, mlflow_uri="http://127.0.0.1:9", label_horizon_days=14)
    with pytest.raises(RegistryUnavailable, match="127.0.0.1:9 is unreachable"):
        train.run(dead)
    assert Registry(s).alias_version(s.model_name, CHAMPION) == before


def test_cli_refuses_a_reversed_window(ml_settings, monkeypatch, capsys):
    use_settings(monkeypatch, ml_settings())
    assert main(["train", "--start", "2026-03-01", "--end", "2026-02-01", "--no-register"]) == 1
    assert "--end 2026-02-01 is before --start 2026-03-01" in capsys.readouterr().err
    assert main(["train", "--spec", "x.yaml", "--start", "2026-03-01"]) == 1


PROMOTE = """
import sys
from churn.core.settings import load_settings
from ml.registry import ChampionMoved, Registry
s = load_settings()
print("ready", flush=True)
sys.stdin.readline()  # both processes start their move at the same moment
try:
    Registry(s).set_champion(s.model_name, sys.argv[1], "gate", "race", expected_previous=sys.argv[2])
    print("won", flush=True)
except ChampionMoved as exc:
    print("lost:", exc, flush=True)
"""


def test_two_gates_at_once_cannot_both_win_and_a_broken_version_is_never_promoted(trained, monkeypatch, capsys):
    """Two processes move the champion from the same version at once: exactly one wins (the move
    re-checks the champion it replaces, under the promotion lock) and the history records one move.
    A version that cannot be loaded and scored is refused before the alias moves."""
    import os
    import subprocess
    import sys

    s, first, second = trained
    reg = Registry(s)
    current = reg.alias_version(s.model_name, CHAMPION)
    src = reg.client.get_model_version(s.model_name, second["version"])
    third = reg.client.create_model_version(s.model_name, src.source, run_id=src.run_id).version  # a loadable copy
    moves = len(reg.history(s.model_name))
    env = {**os.environ, **s.as_env()}
    procs = [subprocess.Popen([sys.executable, "-c", PROMOTE, v, current], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for v in (second["version"], str(third))]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()[-2000:]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outcomes = [p.communicate(timeout=180)[0].strip() for p in procs]
    assert sorted(o.split(":")[0] for o in outcomes) == ["lost", "won"], outcomes
    winner = [v for v, o in zip((second["version"], str(third)), outcomes) if o == "won"][0]
    assert f"the champion moved from version {current} to {winner}" in [o for o in outcomes if o.startswith("lost")][0]
    assert reg.alias_version(s.model_name, CHAMPION) == winner
    hist = reg.history(s.model_name)
    assert len(hist) == moves + 1 and hist["champion_after"].iloc[-1] == winner
    assert hist["previous_champion"].iloc[-1] == current
    # a version whose model cannot be loaded: `churn promote` refuses it and the champion stays
    broken = reg.client.create_model_version(s.model_name, f"{s.home}/no-such-model", run_id=src.run_id).version
    use_settings(monkeypatch, s)
    capsys.readouterr()
    assert main(["promote", "--version", str(broken)]) == 1
    assert f"version {broken} cannot be loaded and scored" in capsys.readouterr().err
    assert reg.alias_version(s.model_name, CHAMPION) == winner
    assert len(reg.history(s.model_name)) == moves + 1
