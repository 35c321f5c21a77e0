"""Hyper-parameter search for the churn model: the ``tune`` step before ``train``.

A seeded Optuna search (TPE sampler, median pruner) over XGBoost's main parameters (``SPACE``),
each trial fitted with early stopping, within a budget of trials and seconds (``Budget``). It sees
the training rows only, never the test rows (``search_rows``):

* lakehouse (out-of-time split): each trial fits on the ``train`` slice and is scored (ROC-AUC at
  its early-stopping round) on the ``valid`` slice, which was carved from the training snapshots
  by customer;
* a spec's snapshot (stratified split): ``folds``-fold cross-validation over train + valid, folds
  split by customer and stratified by the label; the trial's score is the mean fold AUC.

At scale the search runs on a sample: whole customers (all their snapshots) drawn with the seed
until about ``sample_rows`` rows, so a customer never sits on both sides of a fold and the churn
rate stays the population's; the chosen parameters are then refitted on all training rows by the
``train`` step (its own early stopping picks the number of trees).

The default parameters are always the first trial of shard 0, so the search can only replace them
with something that scored better on the same folds. In a cluster the trials fan out: the Kubeflow
pipeline runs ``Budget.workers`` shards in a ``ParallelFor``, each an independent seeded search over
its share of the trials and the whole time budget, and ``pick`` keeps the best; on one machine the
same shards run one after the other in-process. ``log_to_mlflow`` records the search as a parent
run with one child run per trial.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import pandas as pd

from churn.core.errors import InputError
from ml.dataset import LABEL, TrainingSet
from ml.model import Preprocessor, TrainParams

log = logging.getLogger("ml.tune")

#: The search space: parameter -> (kind, low, high); "log" kinds are sampled on a log scale.
SPACE: dict[str, tuple[str, float, float]] = {
    "max_depth": ("int", 2, 8),
    "learning_rate": ("log", 0.01, 0.3),
    "min_child_weight": ("log", 0.5, 50.0),
    "subsample": ("float", 0.5, 1.0),
    "colsample_bytree": ("float", 0.3, 1.0),
    "reg_lambda": ("log", 0.1, 50.0),
}
#: Early stopping of a trial (rounds without a better validation log loss); the refit uses TrainParams'.
TRIAL_EARLY_STOPPING = 50


@dataclass(frozen=True)
class Budget:
    """How much search a tuning may spend. ``trials`` 0: no search, the given parameters stand."""

    trials: int = 40
    seconds: float = 480.0
    sample_rows: int = 200_000
    folds: int = 3
    workers: int = 1

    @classmethod
    def from_settings(cls, s) -> "Budget":
        return cls(s.tune_trials, s.tune_seconds, s.tune_sample_rows, s.tune_folds, s.tune_workers).checked("settings")

    def with_overrides(self, overrides: dict | None, where: str) -> "Budget":
        """A copy with a spec's ``tune:`` values (or any mapping) applied, every key and type checked."""
        if not overrides:
            return self
        known = {f.name: f.type for f in fields(self)}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise InputError(f"{where}: unknown tune field(s) {', '.join(unknown)}; allowed: {', '.join(known)}")
        values = {}
        for k, v in overrides.items():
            typ = int if known[k] in ("int", int) else float
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (typ is int and not float(v).is_integer()):
                raise InputError(f"{where}: tune.{k} must be a{'n integer' if typ is int else ' number'}, got {v!r}")
            values[k] = typ(v)
        return replace(self, **values).checked(where)

    def checked(self, where: str) -> "Budget":
        rules = [("trials", self.trials >= 0, ">= 0"), ("seconds", self.seconds > 0, "> 0"),
                 ("sample_rows", self.sample_rows >= 1000, ">= 1000"), ("folds", 2 <= self.folds <= 10, "between 2 and 10"),
                 ("workers", 1 <= self.workers <= 64, "between 1 and 64")]
        for name, ok, want in rules:
            if not ok:
                raise InputError(f"{where}: tune {name} must be {want}, got {getattr(self, name)!r}")
        return self

    def shares(self) -> list[int]:
        """Trials per shard: ``trials`` split as evenly as possible over ``workers``."""
        n = max(1, min(self.workers, self.trials or 1))
        return [self.trials // n + (1 if i < self.trials % n else 0) for i in range(n)]


# ---- the rows the search may see ------------------------------------------------------------
def search_rows(ts: TrainingSet) -> pd.DataFrame:
    """The training and validation rows: the only rows a search ever reads (never ``test``)."""
    rows = ts.frame[ts.frame["split"].isin(("train", "valid"))]
    if not len(rows):
        raise InputError(f"training set {ts.name}: no training rows to tune on")
    return rows


def sample_customers(rows: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """Whole customers drawn at random (seeded) until about ``max_rows`` rows; all rows when fewer."""
    if len(rows) <= max_rows:
        return rows
    ids = np.sort(rows["customer_id"].unique())
    rng = np.random.default_rng(seed)
    keep = rng.choice(ids, max(2, int(round(len(ids) * max_rows / len(rows)))), replace=False)
    return rows[rows["customer_id"].isin(keep)]


def folds_of(rows: pd.DataFrame, kind: str, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit, score) positions into ``rows``: the validation slice for out-of-time sets, else k folds."""
    if kind == "out_of_time":
        split = rows["split"].to_numpy()
        fit_at, score_at = np.flatnonzero(split == "train"), np.flatnonzero(split == "valid")
        if not len(fit_at) or not len(score_at):
            raise InputError("tuning an out-of-time training set needs both its train and valid slices")
        return [(fit_at, score_at)]
    from sklearn.model_selection import StratifiedGroupKFold

    y = rows[LABEL].to_numpy()
    if np.bincount(y.astype(int), minlength=2).min() < k:
        raise InputError(f"too few churners to tune with {k} folds: {int(y.sum())} positive of {len(y)} rows")
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(rows)), y, groups=rows["customer_id"].to_numpy()))


# ---- one shard of the search ----------------------------------------------------------------
def _suggest(trial, base: TrainParams) -> TrainParams:
    values = {}
    for name, (kind, lo, hi) in SPACE.items():
        if kind == "int":
            values[name] = trial.suggest_int(name, int(lo), int(hi))
        else:
            values[name] = trial.suggest_float(name, lo, hi, log=kind == "log")
    return replace(base, **values)


def run_shard(ts: TrainingSet, base: TrainParams, budget: Budget, seed: int, worker: int = 0) -> dict:
    """One seeded search over this shard's share of the trials; returns every trial and the best."""
    import optuna
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    share = budget.shares()[worker] if worker < len(budget.shares()) else 0
    t0 = time.time()
    everything = search_rows(ts)
    rows = sample_customers(everything, budget.sample_rows, seed)
    folds = folds_of(rows, ts.split.get("kind", "stratified"), budget.folds, seed)
    prep = Preprocessor.fit(rows, ts.features)
    x = prep.transform(rows, "tuning rows")
    y = rows[LABEL].to_numpy()
    data = []
    for fit_at, score_at in folds:
        dfit = xgb.QuantileDMatrix(x.iloc[fit_at], label=y[fit_at], enable_categorical=True, max_bin=base.max_bin)
        dscore = xgb.DMatrix(x.iloc[score_at], label=y[score_at], enable_categorical=True)
        data.append((dfit, dscore, y[score_at]))
    prepared = time.time() - t0
    log.info("tune shard %d: %d trials on %d rows (%d customers) of %d, %d fold(s), %.1fs to prepare", worker, share,
             len(rows), rows["customer_id"].nunique(), len(everything), len(folds), prepared)

    def objective(trial) -> float:
        params = _suggest(trial, base)
        aucs, rounds = [], []
        for i, (dfit, dscore, yscore) in enumerate(data):
            booster = xgb.train(params.xgb_params(), dfit, num_boost_round=params.num_boost_round,
                                evals=[(dscore, "valid")], early_stopping_rounds=TRIAL_EARLY_STOPPING, verbose_eval=False)
            best = int(booster.best_iteration)
            p = booster.predict(dscore, iteration_range=(0, best + 1))
            aucs.append(float(roc_auc_score(yscore, p)))
            rounds.append(best + 1)
            trial.report(float(np.mean(aucs)), i)
            if i < len(data) - 1 and trial.should_prune():
                raise optuna.TrialPruned()
        trial.set_user_attr("rounds", rounds)
        trial.set_user_attr("fold_auc", aucs)
        return float(np.mean(aucs))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed + worker),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0))
    if worker == 0 and share:
        study.enqueue_trial({k: getattr(base, k) for k in SPACE})
    last = [time.time()]

    def progress(study, trial):
        if time.time() - last[0] > 10 or trial.number + 1 == share:
            last[0] = time.time()
            best = study.best_value if any(t.value is not None for t in study.trials) else float("nan")
            log.info("tune shard %d: trial %d/%d %s (AUC %s), best %.4f after %.0fs", worker, trial.number + 1, share,
                     trial.state.name.lower(), f"{trial.value:.4f}" if trial.value is not None else "-", best,
                     time.time() - t0)

    if share:
        study.optimize(objective, n_trials=share, timeout=max(1.0, budget.seconds - prepared), callbacks=[progress],
                       gc_after_trial=False)
    trials = [{"number": t.number, "worker": worker, "state": t.state.name, "value": t.value, "params": t.params,
               "rounds": t.user_attrs.get("rounds"), "fold_auc": t.user_attrs.get("fold_auc"),
               "seconds": round((t.datetime_complete - t.datetime_start).total_seconds(), 3)
               if t.datetime_complete and t.datetime_start else None} for t in study.trials]
    done = [t for t in trials if t["state"] == "COMPLETE"]
    best = max(done, key=lambda t: (t["value"], -t["number"])) if done else None
    return {"worker": worker, "seed": seed + worker, "trials": trials, "best": best, "rows": int(len(rows)),
            "customers": int(rows["customer_id"].nunique()), "folds": len(folds), "seconds": round(time.time() - t0, 2)}


def pick(base: TrainParams, shards: list[dict], budget: Budget) -> tuple[TrainParams, dict]:
    """The best trial over every shard (ties: the lowest shard, then trial number) and the summary."""
    done = [t for s in shards for t in s["trials"] if t["state"] == "COMPLETE"]
    summary = {"budget": asdict(budget), "space": {k: list(v) for k, v in SPACE.items()},
               "trials": sum(len(s["trials"]) for s in shards), "completed": len(done),
               "pruned": sum(t["state"] == "PRUNED" for s in shards for t in s["trials"]),
               "seconds": round(max((s["seconds"] for s in shards), default=0.0), 2),
               "rows": shards[0]["rows"] if shards else 0, "customers": shards[0]["customers"] if shards else 0,
               "folds": shards[0]["folds"] if shards else 0, "workers": len(shards)}
    if not done:
        summary.update(chosen={k: getattr(base, k) for k in SPACE}, best_auc=None, default_auc=None, source="default")
        _log_choice(summary)
        return base, summary
    best = max(done, key=lambda t: (t["value"], -t["worker"], -t["number"]))
    default = next((t for t in done if t["worker"] == 0 and t["number"] == 0), None)
    chosen = replace(base, **best["params"])
    summary.update(chosen={k: getattr(chosen, k) for k in SPACE}, best_auc=best["value"],
                   default_auc=default["value"] if default else None, best_trial=[best["worker"], best["number"]],
                   source="default" if default is best else "search")
    _log_choice(summary)
    return chosen, summary


def tune(ts: TrainingSet, base: TrainParams, budget: Budget, seed: int) -> tuple[TrainParams, dict, list[dict]]:
    """Every shard in this process, one after the other, then ``pick``: the one-machine profile."""
    if budget.trials == 0:
        return base, {"budget": asdict(budget), "source": "default", "trials": 0, "completed": 0}, []
    shards = [run_shard(ts, base, budget, seed, w) for w in range(len(budget.shares()))]
    chosen, summary = pick(base, shards, budget)
    return chosen, summary, shards


def _log_choice(summary: dict) -> None:
    if summary.get("best_auc") is None:
        log.warning("tune: no trial completed within the budget; the default parameters stand")
        return
    gain = summary["best_auc"] - summary["default_auc"] if summary.get("default_auc") is not None else math.nan
    log.info("tune: %d trial(s) (%d pruned) in %.0fs; chose %s (inner AUC %.4f, defaults %.4f, %+.4f): %s",
             summary["trials"], summary["pruned"], summary["seconds"], summary["source"], summary["best_auc"],
             summary.get("default_auc") or math.nan, gain,
             ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary["chosen"].items()))


def log_to_mlflow(registry, name: str, summary: dict, shards: list[dict], seed: int) -> str:
    """A parent run ``tune`` in the model's experiment with one child run per trial; returns its id."""
    from mlflow.entities import Metric, Param, RunTag

    client = registry.client
    exp = registry.experiment_id(name)
    parent = client.create_run(exp, run_name=f"tune seed {seed}", tags={"churn.kind": "tune"})
    now = int(time.time() * 1000)
    client.log_batch(parent.info.run_id, params=[Param(f"tune.{k}", str(v)) for k, v in summary["budget"].items()],
                     metrics=[Metric(k, float(summary[k]), now, 0) for k in ("best_auc", "default_auc", "seconds")
                              if isinstance(summary.get(k), (int, float))],
                     tags=[RunTag("tune.source", str(summary.get("source"))),
                           RunTag("tune.chosen", json.dumps(summary.get("chosen")))])
    for shard in shards:
        for t in shard["trials"]:
            child = client.create_run(exp, run_name=f"trial {shard['worker']}.{t['number']}",
                                      tags={"mlflow.parentRunId": parent.info.run_id, "churn.kind": "tune-trial",
                                            "trial.state": t["state"]})
            metrics = [Metric("inner_roc_auc", float(t["value"]), now, 0)] if t["value"] is not None else []
            metrics += [Metric("fold_roc_auc", float(a), now, i) for i, a in enumerate(t.get("fold_auc") or [])]
            client.log_batch(child.info.run_id, params=[Param(k, str(v)) for k, v in t["params"].items()],
                             metrics=metrics + ([Metric("seconds", float(t["seconds"]), now, 0)] if t["seconds"] else []))
            client.set_terminated(child.info.run_id, "FINISHED" if t["state"] == "COMPLETE" else "KILLED")
    client.set_terminated(parent.info.run_id)
    return parent.info.run_id
