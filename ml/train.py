"""``churn train``: prepare -> (tune) -> fit -> evaluate -> register and gate.

The steps are plain functions over a ``TrainingSet``, a ``ChurnModel`` and an ``Evaluation``;
``run`` chains them in one process, and the Kubeflow pipeline (``ml/pipelines/training.py``) runs
the very same functions as components, passing the objects as artifacts (``*_step`` below).

A failed run never touches the champion: the alias moves only in the last step, after the model is
logged, registered, given its model card (ml/card.py) and compared with the champion on the same
evaluation rows, overall and per segment.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path

import pandas as pd

from churn.core.settings import Settings
from ml.dataset import LABEL, TrainingSet, from_lakehouse, from_spec
from ml.evaluate import Evaluation, evaluate, oracle_comparison, write_outputs
from ml.gate import Policy, decide
from ml.model import ChurnModel, Preprocessor, TrainParams, fit

log = logging.getLogger("ml.train")


def prepare(settings: Settings, start: dt.date | None = None, end: dt.date | None = None, spec: str | None = None,
            seed: int = 42) -> TrainingSet:
    if spec:
        return from_spec(settings, spec, seed=seed)
    if start and end and end < start:
        from churn.core.errors import InputError

        raise InputError(f"--end {end} is before --start {start}")
    return from_lakehouse(settings, start, end, seed=seed)


def tune_budget(settings: Settings, ts: TrainingSet, tune: bool = False):
    """The search budget when this training tunes (asked for, or the spec has a ``tune:`` section), else None."""
    from ml.tune import Budget

    if not tune and ts.tune is None:
        return None
    where = f"spec of {ts.source}" if ts.tune else "settings"
    return Budget.from_settings(settings).with_overrides(ts.tune, where)


def tune_params(ts: TrainingSet, params: TrainParams, budget, seed: int, registry=None) -> tuple[TrainParams, dict]:
    """Search (never on the test rows), record every trial in MLflow when a registry is given."""
    from ml.tune import log_to_mlflow, tune

    chosen, summary, shards = tune(ts, params, budget, seed)
    if registry is not None and shards:
        summary["run_id"] = log_to_mlflow(registry, ts.name, summary, shards, seed)
    return chosen, summary


def fit_model(ts: TrainingSet, params: TrainParams, tuning: dict | None = None) -> ChurnModel:
    train, valid = ts.part("train"), ts.part("valid")
    prep = Preprocessor.fit(pd.concat([train, valid]), ts.features)
    t0 = time.time()

    def progress(epoch, losses):
        if epoch % 100 == 0:
            log.info("fit: round %d, log loss train %.5f valid %.5f (%.0fs)", epoch, losses.get("train", 0),
                     losses.get("valid", 0), time.time() - t0)

    model = fit(train, valid, LABEL, prep, params, progress)
    model.info.update({"fit_seconds": round(time.time() - t0, 3), "n_train": len(train), "n_valid": len(valid)})
    if tuning:
        model.info["tuning"] = tuning
    log.info("fit: %d rows in %.1fs, best round %d of %d (valid log loss %.5f, AUC %.4f)", len(train), time.time() - t0,
             model.info["best_iteration"], model.info["rounds_run"], model.info["valid_logloss"], model.info["valid_auc"])
    return model


def evaluate_model(settings: Settings, ts: TrainingSet, model: ChurnModel, out_dir: str | Path) -> Evaluation:
    test = ts.part("test")
    ev, _ = evaluate(model, test, segments=ts.segments)
    ev.extra["split"] = ts.split
    if model.info.get("tuning"):
        ev.extra["tuning"] = model.info["tuning"]
    if ts.source == "lakehouse":
        oracle = oracle_comparison(settings.oracle_dir, test, ev.metrics["roc_auc"])
        if oracle:
            ev.extra["oracle"] = oracle
            ev.metrics["auc_share_of_oracle"] = oracle["auc_share_of_oracle"]
    context = {"model": ts.name, "source": ts.source, **{k: v for k, v in ts.split.items() if not isinstance(v, list)},
               "test snapshots": ", ".join(ts.split.get("test_snapshots", [])) or "-",
               "inputs": "; ".join(f"{x['table']}@{x['version']}" for x in ts.lineage),
               "best round": model.info.get("best_iteration")}
    paths = write_outputs(ev, out_dir, f"Churn model evaluation: {ts.name}", context)
    m = ev.metrics
    log.info("evaluate: ROC-AUC %.4f, PR-AUC %.4f, log loss %.4f, Brier %.4f, ECE %.4f, lift@10%% %.2f on %d rows; "
             "report %s", m["roc_auc"], m["pr_auc"], m["log_loss"], m["brier"], m["calibration_error"], m["lift_top_10"],
             m["n"], paths["report"])
    return ev


def register_and_gate(settings: Settings, ts: TrainingSet, model: ChurnModel, ev: Evaluation, out_dir: str | Path,
                      registry=None) -> dict:
    """Log and register the model (challenger), score the champion on the same rows, apply the gate."""
    from ml.evaluate import metrics as compute_metrics, segment_metric_names, segment_metrics
    from ml.gate import pair_segments
    from ml.registry import CHAMPION, Registry

    registry = registry or Registry(settings)
    test = ts.part("test")
    params = {**model.info["params"], "best_iteration": model.info["best_iteration"],
              **{f"split.{k}": (",".join(str(x) for x in v) if isinstance(v, list) else v) for k, v in ts.split.items()}}
    tags = {"source": ts.source, "run_name": f"train {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M}",
            "features": len(ts.features), "n_train": ts.split.get("n_train"), "n_test": ts.split.get("n_test")}
    # the champion first: a registry that cannot answer (5xx, timeout) stops the run before anything
    # is registered or any alias moves; "no champion" only when MLflow says there is none
    champion_version = registry.alias_version(ts.name, CHAMPION)
    from ml.monitor import reference_sample

    fit_rows = pd.concat([ts.part("train"), ts.part("valid")])
    if model.info.get("tuning"):
        params.update({"tune.source": model.info["tuning"].get("source"), "tune.trials": model.info["tuning"].get("trials")})
        tags["tune.run_id"] = model.info["tuning"].get("run_id", "")
    reg = registry.log_training(ts.name, model, params, {**ev.metrics, **segment_metric_names(ev.segments)}, tags,
                                ts.lineage, Path(out_dir),
                                test[model.feature_names].head(5),
                                reference=reference_sample(fit_rows, model, settings.drift_sample_rows))
    trigger = pending_request(registry.history(ts.name))
    champion_metrics, champion_error, segments = None, None, None
    if champion_version and champion_version != reg.version:
        try:
            champion = registry.load(ts.name, champion_version)
            p_champion = champion.predict(test, "evaluation rows")
            champion_metrics = compute_metrics(test[LABEL].to_numpy(), p_champion)
            if len(ev.segments):
                theirs = segment_metrics(test[LABEL].to_numpy(), p_champion, test, sorted(set(ev.segments["segment"])))
                segments = pair_segments(ev.segments, theirs)
        except Exception as exc:  # noqa: BLE001 - recorded as the reason; the gate then refuses
            champion_error = f"{type(exc).__name__}: {exc}"
    decision = decide(ev.metrics, champion_metrics, Policy.from_settings(settings), champion_error, segments)
    if segments:
        decision.champion["segments"] = segments
    decision.challenger["version"] = reg.version
    if decision.champion is not None or champion_version:
        decision.champion = {**(decision.champion or {}), "version": champion_version}
    from ml import card

    sections = card.build(ts.name, reg.version, ts, model, ev, decision.as_dict(), reg.run_id, Path(out_dir))
    registry.log_card(ts.name, reg.version, reg.run_id, card.write(sections, Path(out_dir) / "model_card"))
    registry.client.set_tag(reg.run_id, "gate.outcome", decision.outcome)
    registry.client.set_tag(reg.run_id, "gate.reasons", " | ".join(decision.reasons)[:4900])
    registry.client.log_dict(reg.run_id, decision.as_dict(), "promotion_decision.json")
    Path(out_dir, "promotion_decision.json").write_text(json.dumps(decision.as_dict(), indent=1, default=str))
    if decision.promote:
        registry.set_champion(ts.name, reg.version, "gate", decision.summary(), decision.as_dict(), reg.run_id,
                              expected_previous=champion_version, trigger=trigger)
    else:
        registry.record(ts.name, "gate", reg.version, champion_version, decision.summary(), decision.as_dict(), reg.run_id,
                        trigger=trigger)
    log.info("gate: %s", decision.summary())
    return {"model": ts.name, "version": reg.version, "run_id": reg.run_id, "decision": decision.outcome,
            "reasons": decision.reasons, "champion": registry.alias_version(ts.name, CHAMPION),
            "mlflow_seconds": round(reg.seconds, 2)}


def pending_request(history: pd.DataFrame) -> str:
    """The retrain request (night and reason) no gate has answered yet: the newest one recorded after
    the last gate decision, or "" (a scheduled training)."""
    if history is None or not len(history):
        return ""
    gates = history.index[history["event"] == "gate"]
    after = history.iloc[gates[-1] + 1:] if len(gates) else history
    requests = after[after["event"] == "retrain_request"]
    if not len(requests):
        return ""
    last = requests.iloc[-1]
    return f"night {last['night']}: {last['reason']}"


def _stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")


def output_dir(settings: Settings, name: str) -> Path:
    """A local folder for one training's evaluation outputs (a local reports store)."""
    return Path(settings.reports_dir) / "training" / name / _stamp()


def run(settings: Settings, start: dt.date | None = None, end: dt.date | None = None, spec: str | None = None,
        seed: int = 42, params: TrainParams | None = None, register: bool = True, tune: bool = False) -> dict:
    """The whole training run in one process (``churn train``): prepare, tune (when asked), fit,
    evaluate, register and gate."""
    timings = {}
    t = time.time()
    registry = None
    if register:
        from ml.registry import Registry

        registry = Registry(settings)  # fails fast when the tracking server is unreachable
        timings["mlflow_connect"] = time.time() - t
    t = time.time()
    ts = prepare(settings, start, end, spec, seed)
    timings["prepare"] = time.time() - t
    params = params or TrainParams(seed=seed)
    budget, tuning = tune_budget(settings, ts, tune), None
    if budget is not None:
        t = time.time()
        params, tuning = tune_params(ts, params, budget, seed, registry)
        timings["tune"] = time.time() - t
    t = time.time()
    model = fit_model(ts, params, tuning)
    timings["fit"] = time.time() - t
    from churn.core.reports import report_uri, staged

    rel = f"training/{ts.name}/{_stamp()}"
    with staged(settings, rel) as out:  # the reports store's folder, or one uploaded to S3 at the end
        t = time.time()
        ev = evaluate_model(settings, ts, model, out)
        timings["evaluate"] = time.time() - t
        result = {**{k: ev.metrics[k] for k in ("roc_auc", "pr_auc", "log_loss", "brier", "calibration_error",
                                               "lift_top_10", "capture_top_10")},
                  "n_train": ts.split["n_train"], "n_valid": ts.split["n_valid"], "n_test": ts.split["n_test"],
                  "split": ts.split, "inputs": ts.lineage, "report": report_uri(settings, f"{rel}/report.html")}
        if tuning:
            result["tuning"] = {k: tuning.get(k) for k in ("source", "trials", "completed", "pruned", "seconds",
                                                           "best_auc", "default_auc", "chosen", "run_id", "rows")}
        if "oracle" in ev.extra:
            result["oracle_roc_auc"] = ev.extra["oracle"]["oracle_roc_auc"]
            result["auc_share_of_oracle"] = ev.extra["oracle"]["auc_share_of_oracle"]
        if register:
            t = time.time()
            result.update(register_and_gate(settings, ts, model, ev, out, registry))
            timings["register_and_gate"] = time.time() - t
    result["seconds"] = {k: round(v, 2) for k, v in timings.items()}
    return result


# ---- the same steps over artifacts (Kubeflow components) -----------------------------------
def prepare_step(settings: Settings, start: str, end: str, spec: str, seed: int, out: str) -> dict:
    from churn.core.dates import parse_date

    ts = prepare(settings, parse_date(start, "start") if start else None, parse_date(end, "end") if end else None,
                 spec or None, seed)
    ts.save(out)
    return ts.split


def tune_plan_step(settings: Settings, data: str, tune: bool) -> list[int]:
    """The shards of the search (at least one; a shard of an untuned run searches nothing)."""
    budget = tune_budget(settings, TrainingSet.load(data), tune)
    return list(range(len(budget.shares()))) if budget is not None else [0]


def tune_shard_step(settings: Settings, data: str, params_json: str, seed: int, tune: bool, worker: int) -> dict:
    from ml.tune import run_shard

    ts = TrainingSet.load(data)
    budget = tune_budget(settings, ts, tune)
    params = TrainParams.from_overrides({**json.loads(params_json or "{}"), "seed": seed})
    if budget is None or budget.trials == 0:
        return {"worker": worker, "trials": [], "best": None, "rows": 0, "customers": 0, "folds": 0, "seconds": 0.0}
    return run_shard(ts, params, budget, seed, worker)


def tune_pick_step(settings: Settings, data: str, params_json: str, seed: int, tune: bool, shards: list) -> dict:
    """The chosen parameters (as overrides for ``fit_step``) and the search's summary, logged to MLflow."""
    from ml.registry import Registry
    from ml.tune import log_to_mlflow, pick

    ts = TrainingSet.load(data)
    budget = tune_budget(settings, ts, tune)
    params = TrainParams.from_overrides({**json.loads(params_json or "{}"), "seed": seed})
    shards = [json.loads(x) if isinstance(x, str) else x for x in shards]
    if budget is None or not any(sh["trials"] for sh in shards):
        return {"params": json.loads(params_json or "{}"), "tuning": None}
    chosen, summary = pick(params, shards, budget)
    summary["run_id"] = log_to_mlflow(Registry(settings), ts.name, summary, shards, seed)
    from dataclasses import asdict

    return {"params": {k: v for k, v in asdict(chosen).items() if k != "seed"}, "tuning": summary}


def fit_step(data: str, params_json: str, seed: int, out: str, tuning_json: str = "") -> dict:
    ts = TrainingSet.load(data)
    params = TrainParams.from_overrides({**json.loads(params_json or "{}"), "seed": seed})
    model = fit_model(ts, params, json.loads(tuning_json) if tuning_json else None)
    model.save(out)
    return model.info


def evaluate_step(settings: Settings, data: str, model_dir: str, out: str) -> dict:
    ev = evaluate_model(settings, TrainingSet.load(data), ChurnModel.load(model_dir), out)
    return ev.metrics


def gate_step(settings: Settings, data: str, model_dir: str, evaluation_dir: str) -> dict:
    ts = TrainingSet.load(data)
    return register_and_gate(settings, ts, ChurnModel.load(model_dir), Evaluation.load(evaluation_dir), evaluation_dir)
