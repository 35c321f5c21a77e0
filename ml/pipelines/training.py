"""The training pipeline in the kfp v2 DSL: prepare data -> tune -> train -> evaluate -> gate/promote.

Each component is a lightweight Python component on the platform image (``settings.platform_image``,
which has this package installed, so no pip install at run time) and calls the same step functions
as ``churn train`` (``ml.train.*_step``); the training set, model and evaluation travel between
them as KFP artifacts. Settings reach the components as ``CHURN_*`` environment variables: in a
cluster from the pipeline runner's service account / PodDefaults (S3 and MLflow credentials from a
Secret), locally from the calling process.

Tuning (``tune=True``, or a spec with a ``tune:`` section; ml/tune.py) fans out: ``tune plan`` lists
the shards (``CHURN_TUNE_WORKERS``), a ``ParallelFor`` runs one ``tune shard`` pod per shard (each
an independent seeded search over its share of the trials, on the training rows only), and
``tune pick`` collects them, keeps the best trial, logs every trial to MLflow as a child run and
hands the chosen parameters to ``train``. kfp's local runner cannot run a task after a
``ParallelFor`` (it runs loops after every ordinary task), so ``run_local`` builds the pipeline with
the shards in one ``tune`` step, one after the other: the same functions, the same result.
Untuned, the plan has one shard that searches nothing and ``train`` gets the given parameters.

``compile_pipeline`` writes the IR YAML a Kubeflow Pipelines endpoint runs; ``run_local`` runs the
same pipeline with kfp's local SubprocessRunner (no cluster, no containers) in this environment.
"""


import json
from pathlib import Path

from kfp import dsl

PIPELINE_NAME = "churn-training"


def build_pipeline(image: str, fan_out: bool = True):
    """The pipeline function, its components on ``image``; ``fan_out``: tune shards in a ParallelFor
    (a KFP backend), else in one step (kfp's local runner)."""

    @dsl.component(base_image=image, install_kfp_package=False)
    def prepare_data(start: str, end: str, spec: str, seed: int, training_set: dsl.Output[dsl.Dataset]) -> str:
        """Labelled feature rows of the window (or the spec's snapshot), leakage-checked and split."""
        import json

        from churn.core import logs
        from churn.core.settings import load_settings
        from ml.train import prepare_step

        logs.setup(False)
        return json.dumps(prepare_step(load_settings(), start, end, spec, int(seed), training_set.path))

    @dsl.component(base_image=image, install_kfp_package=False)
    def tune_plan(training_set: dsl.Input[dsl.Dataset], tune: bool) -> list:
        """The search's shards: one per tuning worker (one that searches nothing when not tuning)."""
        from churn.core import logs
        from churn.core.settings import load_settings
        from ml.train import tune_plan_step

        logs.setup(False)
        return tune_plan_step(load_settings(), training_set.path, bool(tune))

    @dsl.component(base_image=image, install_kfp_package=False)
    def tune_shard(training_set: dsl.Input[dsl.Dataset], params: str, seed: int, tune: bool, worker: int) -> str:
        """One seeded Optuna search over this shard's trials, on the training rows only."""
        import json

        from churn.core import logs
        from churn.core.settings import load_settings
        from ml.train import tune_shard_step

        logs.setup(False)
        return json.dumps(tune_shard_step(load_settings(), training_set.path, params, int(seed), bool(tune), int(worker)),
                          default=str)

    @dsl.component(base_image=image, install_kfp_package=False)
    def tune_pick(training_set: dsl.Input[dsl.Dataset], params: str, seed: int, tune: bool, shards: list) -> str:
        """The best trial of every shard; every trial logged to MLflow; the chosen parameters."""
        import json

        from churn.core import logs
        from churn.core.settings import load_settings
        from ml.train import tune_pick_step

        logs.setup(False)
        return json.dumps(tune_pick_step(load_settings(), training_set.path, params, int(seed), bool(tune), shards),
                          default=str)

    @dsl.component(base_image=image, install_kfp_package=False)
    def train_model(training_set: dsl.Input[dsl.Dataset], tuned: str, seed: int, model: dsl.Output[dsl.Model]) -> str:
        """XGBoost fit, with the tuned (or given) parameters, early stopping on the validation slice."""
        import json

        from churn.core import logs
        from ml.train import fit_step

        logs.setup(False)
        choice = json.loads(tuned)
        info = fit_step(training_set.path, json.dumps(choice["params"]), int(seed), model.path,
                        json.dumps(choice["tuning"]) if choice.get("tuning") else "")
        model.metadata.update({"framework": "xgboost", "best_iteration": info["best_iteration"]})
        return json.dumps(info, default=str)

    @dsl.component(base_image=image, install_kfp_package=False)
    def evaluate_model(training_set: dsl.Input[dsl.Dataset], model: dsl.Input[dsl.Model],
                       evaluation: dsl.Output[dsl.Artifact], metrics: dsl.Output[dsl.Metrics]) -> str:
        """Metrics, deciles, calibration, importance, plots and the one-page report."""
        import json

        from churn.core import logs
        from churn.core.settings import load_settings
        from ml.train import evaluate_step

        logs.setup(False)
        m = evaluate_step(load_settings(), training_set.path, model.path, evaluation.path)
        for k, v in m.items():
            if isinstance(v, (int, float)):
                metrics.log_metric(k, float(v))
        return json.dumps(m)

    @dsl.component(base_image=image, install_kfp_package=False)
    def gate_and_register(training_set: dsl.Input[dsl.Dataset], model: dsl.Input[dsl.Model],
                          evaluation: dsl.Input[dsl.Artifact]) -> str:
        """Log and register in MLflow (challenger), compare with the champion, promote if it earns it."""
        import json

        from churn.core import logs
        from churn.core.settings import load_settings
        from ml.train import gate_step

        logs.setup(False)
        return json.dumps(gate_step(load_settings(), training_set.path, model.path, evaluation.path), default=str)

    @dsl.component(base_image=image, install_kfp_package=False)
    def tune_in_process(training_set: dsl.Input[dsl.Dataset], params: str, seed: int, tune: bool) -> list:
        """Every shard of the search, one after the other in this process (the one-machine profile)."""
        import json

        from churn.core import logs
        from churn.core.settings import load_settings
        from ml.train import tune_plan_step, tune_shard_step

        logs.setup(False)
        s = load_settings()
        return [json.dumps(tune_shard_step(s, training_set.path, params, int(seed), bool(tune), int(w)), default=str)
                for w in tune_plan_step(s, training_set.path, bool(tune))]

    @dsl.pipeline(name=PIPELINE_NAME, description="Churn model: prepare -> tune -> train -> evaluate -> gate/promote")
    def churn_training(start: str = "", end: str = "", spec: str = "", seed: int = 42, params: str = "{}",
                       tune: bool = False) -> str:
        data = prepare_data(start=start, end=end, spec=spec, seed=seed).set_display_name("prepare data")
        if fan_out:  # a cluster: one pod per shard; kfp's backend collects their results for the pick
            plan = tune_plan(training_set=data.outputs["training_set"], tune=tune).set_display_name("tune plan")
            plan.set_retry(0).set_caching_options(False)
            with dsl.ParallelFor(plan.output) as worker:
                shard = tune_shard(training_set=data.outputs["training_set"], params=params, seed=seed, tune=tune,
                                   worker=worker)
                shard.set_display_name("tune shard").set_cpu_limit("4").set_memory_limit("16G")
                shard.set_retry(0).set_caching_options(False)
            shards = dsl.Collected(shard.output)
        else:  # kfp's local runner cannot order a task after a ParallelFor: the shards run in one step
            search = tune_in_process(training_set=data.outputs["training_set"], params=params, seed=seed, tune=tune)
            search.set_display_name("tune").set_retry(0).set_caching_options(False)
            shards = search.output
        chosen = tune_pick(training_set=data.outputs["training_set"], params=params, seed=seed, tune=tune,
                           shards=shards).set_display_name("tune pick")
        fitted = train_model(training_set=data.outputs["training_set"], tuned=chosen.output, seed=seed)
        fitted.set_display_name("train").set_cpu_limit("4").set_memory_limit("16G")
        evaluated = evaluate_model(training_set=data.outputs["training_set"], model=fitted.outputs["model"])
        evaluated.set_display_name("evaluate")
        gate = gate_and_register(training_set=data.outputs["training_set"], model=fitted.outputs["model"],
                                 evaluation=evaluated.outputs["evaluation"]).set_display_name("gate / promote")
        for task in (data, chosen, fitted, evaluated, gate):
            task.set_retry(0).set_caching_options(False)  # a rerun must re-read the tables, never reuse a cached set
        return gate.output

    return churn_training


def compile_pipeline(out, image: str) -> Path:
    from kfp import compiler

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(image), str(out))
    return out


def run_local(arguments: dict, settings, pipeline_root=None) -> dict:
    """Run the pipeline with kfp's local SubprocessRunner (each component a subprocess of this Python)."""
    from kfp import local

    root = pipeline_root or str(Path(settings.home) / "kfp-local")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root, raise_on_error=True)
    pipeline = build_pipeline(settings.platform_image, fan_out=False)
    args = {k: v for k, v in arguments.items() if v is not None}
    result = pipeline(**args)
    return json.loads(result.output)
