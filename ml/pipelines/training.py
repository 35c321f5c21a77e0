"""The training pipeline in the kfp v2 DSL: prepare data -> train -> evaluate -> gate/promote.

Each component is a lightweight Python component on the platform image (``settings.platform_image``,
which has this package installed, so no pip install at run time) and calls the same step functions
as ``churn train`` (``ml.train.*_step``); the training set, model and evaluation travel between
them as KFP artifacts. Settings reach the components as ``CHURN_*`` environment variables: in a
cluster from the pipeline runner's service account / PodDefaults (S3 and MLflow credentials from a
Secret), locally from the calling process.

``compile_pipeline`` writes the IR YAML a Kubeflow Pipelines endpoint runs; ``run_local`` runs the
same pipeline with kfp's local SubprocessRunner (no cluster, no containers) in this environment.
"""


import json
from pathlib import Path

from kfp import dsl

PIPELINE_NAME = "churn-training"


def build_pipeline(image: str):
    """The pipeline function, its components on ``image``."""

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
    def train_model(training_set: dsl.Input[dsl.Dataset], params: str, seed: int, model: dsl.Output[dsl.Model]) -> str:
        """XGBoost fit with early stopping on the validation slice."""
        import json

        from churn.core import logs
        from ml.train import fit_step

        logs.setup(False)
        info = fit_step(training_set.path, params, int(seed), model.path)
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

    @dsl.pipeline(name=PIPELINE_NAME, description="Churn model: prepare -> train -> evaluate -> gate/promote")
    def churn_training(start: str = "", end: str = "", spec: str = "", seed: int = 42, params: str = "{}") -> str:
        data = prepare_data(start=start, end=end, spec=spec, seed=seed).set_display_name("prepare data")
        fitted = train_model(training_set=data.outputs["training_set"], params=params, seed=seed)
        fitted.set_display_name("train").set_cpu_limit("4").set_memory_limit("16G")
        evaluated = evaluate_model(training_set=data.outputs["training_set"], model=fitted.outputs["model"])
        evaluated.set_display_name("evaluate")
        gate = gate_and_register(training_set=data.outputs["training_set"], model=fitted.outputs["model"],
                                 evaluation=evaluated.outputs["evaluation"]).set_display_name("gate / promote")
        for task in (data, fitted, evaluated, gate):
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
    pipeline = build_pipeline(settings.platform_image)
    args = {k: v for k, v in arguments.items() if v is not None}
    result = pipeline(**args)
    return json.loads(result.output)
