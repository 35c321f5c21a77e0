"""MLflow: tracking of training runs, the model registry, and the champion / challenger aliases.

Where: ``settings.mlflow_tracking_uri`` (a SQLite store under ``CHURN_HOME`` by default, an MLflow
server with ``CHURN_MLFLOW_URI``); artifacts under ``CHURN_HOME/mlflow/artifacts`` locally, or
wherever the server / ``CHURN_MLFLOW_ARTIFACTS_URI`` says (S3 with the ``CHURN_S3_*`` settings).

The registered model is a pyfunc wrapping ``ml.model.ChurnModel`` (booster + the preprocessing it
was trained with), logged with its signature, an input example and pinned requirements. It loads
wherever the platform package is installed (the platform image); batch scoring and the predictor
use ``load`` to get the ``ChurnModel`` itself (probabilities and per-row contributions).

Aliases, never the deprecated stages: a new version becomes ``challenger``; ``champion`` moves only
through the gate or an operator's ``churn promote`` / ``churn rollback``. Every move is recorded as
a run in the experiment ``<model>-promotions`` (tags and a JSON artifact), which is what
``churn models history`` reads: MLflow keeps only the current alias, not who held it when.
"""

from __future__ import annotations

import getpass
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pandas as pd

from churn.core.errors import ChurnError, InputError
from churn.core.settings import Settings
from churn.core.feature_defs import CATEGORICAL
from ml.model import ChurnModel

log = logging.getLogger("ml.registry")
CHAMPION, CHALLENGER = "champion", "challenger"


class NoChampion(InputError):
    """The registered model has no champion (nothing to score or serve with)."""


class RegistryUnavailable(ChurnError):
    """The MLflow tracking server cannot be reached, or answered with an error other than "not found"."""

    exit_code = 3


class ChampionMoved(ChurnError):
    """The champion changed while a gate compared a challenger against the previous one."""


class ModelUnusable(ChurnError):
    """A registered version cannot be loaded or scored: no alias moves to it."""


def _not_found(exc) -> bool:
    """Only MLflow's "does not exist" answers mean absence; anything else (5xx, timeouts) is a failure."""
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc))


_ANY = object()  # set_champion: whatever the champion is now


class ChurnPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc face of a ChurnModel: a frame of feature columns in, ``churn_probability`` out."""

    def load_context(self, context):
        self.model = ChurnModel.load(context.artifacts["churn_model"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame({"churn_probability": self.model.predict(model_input)})


def requirements() -> list[str]:
    """Pinned requirements of the logged model, read from the running environment (no inference run)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("mlflow", "xgboost-cpu", "xgboost", "pandas", "numpy", "pyarrow", "scikit-learn", "cloudpickle"):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return [r for r in out if not (r.startswith("xgboost==") and any(x.startswith("xgboost-cpu") for x in out))]


def signature(model: ChurnModel):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([ColSpec("string" if f.kind == CATEGORICAL else "double", f.name) for f in model.prep.features])
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double", "churn_probability")]))


@dataclass
class Registered:
    run_id: str
    version: str
    model_uri: str
    seconds: float


class Registry:
    """One MLflow tracking + registry endpoint, as the settings say."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.uri = settings.mlflow_tracking_uri
        _export_s3_env(settings)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
        if self.uri.startswith("sqlite:///"):
            Path(self.uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        elif self.uri.startswith(("http://", "https://")):
            check_reachable(self.uri)
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        self.mlflow = mlflow
        self.client = MlflowClient(self.uri, self.uri)

    # ---- experiments and runs ------------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        root = self.settings.mlflow_artifact_root
        return self.client.create_experiment(name, artifact_location=f"{root.rstrip('/')}/{name}" if root else None)

    def log_training(self, name: str, model: ChurnModel, params: dict, metrics: dict, tags: dict, lineage: list[dict],
                     artifacts_dir: Path, input_example: pd.DataFrame, reference: pd.DataFrame | None = None) -> Registered:
        """One run: parameters, metrics, inputs (Delta paths + versions), plots and report, and the drift
        reference (a sample of the training rows with the model's scores, ml/monitor.py); the model is
        logged and registered as a new version of ``name``. Returns the run and the version."""
        from mlflow.data.delta_dataset_source import DeltaDatasetSource
        from mlflow.data.meta_dataset import MetaDataset

        mlflow = self.mlflow
        t0 = time.time()
        exp = self.experiment_id(name)
        with mlflow.start_run(experiment_id=exp, run_name=tags.get("run_name")) as run:
            mlflow.log_params({k: v for k, v in params.items()})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
            mlflow.set_tags({k: str(v) for k, v in tags.items()})
            for item in lineage:
                if str(item.get("version", "")).isdigit():
                    ds = MetaDataset(DeltaDatasetSource(path=item["uri"], delta_table_version=int(item["version"])),
                                     name=item["table"])
                    mlflow.log_input(ds, context="training")
                mlflow.set_tag(f"data.{item['table']}", f"{item['uri']}@{item['version']}")
            mlflow.log_dict({"inputs": lineage}, "lineage.json")
            mlflow.log_artifacts(str(artifacts_dir), "evaluation")
            if reference is not None:
                from ml.monitor import REFERENCE_ARTIFACT

                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
                    reference.to_parquet(path, index=False)
                    mlflow.log_artifact(str(path), str(Path(REFERENCE_ARTIFACT).parent))
            with tempfile.TemporaryDirectory() as tmp:
                saved = model.save(Path(tmp) / "churn_model")
                info = mlflow.pyfunc.log_model(
                    name="model", python_model=ChurnPyfunc(), artifacts={"churn_model": str(saved)},
                    signature=signature(model), input_example=input_example, pip_requirements=requirements(),
                    registered_model_name=name, await_registration_for=60,
                )
        version = str(info.registered_model_version)
        self.client.set_model_version_tag(name, version, "run_id", run.info.run_id)
        for k in ("roc_auc", "pr_auc", "calibration_error"):
            if k in metrics:
                self.client.set_model_version_tag(name, version, k, f"{metrics[k]:.6f}")
        self.client.set_registered_model_alias(name, CHALLENGER, version)
        secs = time.time() - t0
        log.info("MLflow: run %s, model %s version %s (challenger) logged in %.1fs", run.info.run_id, name, version, secs)
        return Registered(run.info.run_id, version, f"models:/{name}/{version}", secs)

    def log_card(self, name: str, version: str, run_id: str, paths: dict) -> str:
        """The model card with its run (``model_card/``), as the version's description (Markdown) and a
        ``model_card`` tag on the version pointing at the HTML page; returns that URI."""
        for key in ("markdown", "html"):
            self.client.log_artifact(run_id, str(paths[key]), "model_card")
        uri = f"{self.client.get_run(run_id).info.artifact_uri}/model_card/{Path(paths['html']).name}"
        text = Path(paths.get("description", paths["markdown"])).read_text()
        limit = 4500  # the registry's description column holds 5000 characters; the artifact holds all
        if len(text) > limit:
            text = text[:limit].rsplit("\n", 1)[0] + f"\n\n(truncated: the whole card is {uri})\n"
        self.client.update_model_version(name, version, description=text)
        self.client.set_model_version_tag(name, version, "model_card", uri)
        return uri

    def card_uri(self, name: str, version: str) -> str:
        try:
            return self.client.get_model_version(name, version).tags.get("model_card", "")
        except Exception:  # noqa: BLE001 - a version without a card (or gone) shows no link
            return ""

    # ---- aliases --------------------------------------------------------------------------
    def alias_version(self, name: str, alias: str) -> str | None:
        """The version ``alias`` points at; None only when MLflow says the alias (or model) does not
        exist. Any other answer (a 5xx, a timeout) raises: the gate and scoring fail closed."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if _not_found(exc):
                return None
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise RegistryUnavailable(f"MLflow registry {self.uri}: reading the {alias} alias of model {name} failed "
                                      f"({getattr(exc, 'error_code', '?')}: {first}); nothing was changed, every alias "
                                      "stays where it was") from None

    def smoke(self, name: str, version: str) -> None:
        """Load ``version`` and score its logged input example: probabilities in [0, 1], or ModelUnusable."""
        import numpy as np

        ref = f"models:/{name}/{version}"
        try:
            pyfunc = self.mlflow.pyfunc.load_model(ref)
            example = pyfunc.metadata.load_input_example(self.mlflow.artifacts.download_artifacts(ref))
            if example is None:
                raise ValueError("it was logged without an input example")
            p = np.asarray(pyfunc.predict(pd.DataFrame(example))["churn_probability"], dtype=float)
            if not (len(p) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()):
                raise ValueError(f"its probabilities on the input example are not in [0, 1]: {p[:5].tolist()}")
        except Exception as exc:  # noqa: BLE001 - whatever breaks, the alias must not move
            raise ModelUnusable(f"model {name} version {version} cannot be loaded and scored "
                                f"({type(exc).__name__}: {str(exc)[:300]}); no alias was moved") from None

    def champion_version(self, name: str) -> str:
        """The version the ``champion`` alias points at; NoChampion when there is none."""
        version = self.alias_version(name, CHAMPION)
        if version is None:
            raise NoChampion(f"model {name} has no champion in MLflow ({self.settings.mlflow_tracking_uri}): "
                             "train one (`churn train`) or promote a version (`churn promote --version V`)")
        return version

    def load(self, name: str, version_or_alias: str) -> ChurnModel:
        """The ChurnModel of a registered version (``"3"``) or alias (``"champion"``)."""
        ref = f"models:/{name}/{version_or_alias}" if version_or_alias.isdigit() else f"models:/{name}@{version_or_alias}"
        return self.mlflow.pyfunc.load_model(ref).unwrap_python_model().model

    def promotion_lock(self, name: str, what: str):
        """The critical section of a champion move: read, check, smoke, move, record (one at a time)."""
        from churn.core.lock import LakeLock

        return LakeLock(self.settings, what, wait=120, name=f"registry-{name}")

    def set_champion(self, name: str, version: str, event: str, reason: str, decision: dict | None = None,
                     training_run: str | None = None, expected_previous=_ANY, trigger: str = "") -> dict:
        """Move ``champion`` to ``version`` and record the move (who, when, from which version, why).

        Under the promotion lock: the champion it replaces is read again and must be
        ``expected_previous`` (when given: the version a gate compared against), and ``version`` must
        load and score before the alias moves. So of two gates deciding at once, one wins and the
        other raises ChampionMoved, and the recorded history is the real order of moves.
        """
        with self.promotion_lock(name, f"{event} {name} v{version}"):
            previous = self.alias_version(name, CHAMPION)
            if expected_previous is not _ANY and previous != expected_previous:
                raise ChampionMoved(f"model {name}: the champion moved from version {expected_previous or 'none'} to "
                                    f"{previous or 'none'} while this {event} compared version {version} against "
                                    f"{expected_previous or 'no champion'}; nothing was changed: run it again")
            self.smoke(name, version)
            self.client.set_registered_model_alias(name, CHAMPION, version)
            if self.alias_version(name, CHALLENGER) == version:
                self.client.delete_registered_model_alias(name, CHALLENGER)
            return self.record(name, event, version, previous, reason, decision, training_run, trigger=trigger)

    def record(self, name: str, event: str, version: str, previous: str | None, reason: str,
               decision: dict | None = None, training_run: str | None = None, night: str = "",
               trigger: str = "") -> dict:
        """One event of the model's history: a champion move, a gate's refusal, a retrain request
        (``night``: the monitored night that asked); ``trigger``: the request a training answered."""
        champion_after = self.alias_version(name, CHAMPION)
        entry = {"event": event, "model": name, "version": version, "previous_champion": previous or "",
                 "champion_after": champion_after or "", "reason": reason[:4900], "actor": _actor(),
                 "training_run": training_run or "", "night": night, "trigger": trigger[:4900]}
        exp = self.experiment_id(f"{name}-promotions")
        with self.mlflow.start_run(experiment_id=exp, run_name=f"{event} v{version}"):
            self.mlflow.set_tags(entry)
            self.mlflow.log_dict({**entry, "decision": decision}, "decision.json")
        return entry

    def history(self, name: str) -> pd.DataFrame:
        """Every recorded champion move, oldest first, with the period each version held the alias."""
        exp = self.client.get_experiment_by_name(f"{name}-promotions")
        if exp is None:
            return pd.DataFrame(columns=["time", "event", "version", "champion_after", "previous_champion", "reason",
                                         "actor", "training_run", "night", "trigger", "champion_until"])
        runs = self.client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"], max_results=10_000)
        rows = [{"time": pd.Timestamp(r.info.start_time, unit="ms", tz="UTC"), **{k: r.data.tags.get(k, "") for k in (
            "event", "version", "champion_after", "previous_champion", "reason", "actor", "training_run", "night",
            "trigger")}} for r in runs]
        df = pd.DataFrame(rows).sort_values("time", kind="mergesort").reset_index(drop=True)
        # the champion after each event held the alias until the next event that changed it
        until = []
        for i, row in df.iterrows():
            nxt = df[(df.index > i) & (df["champion_after"] != row["champion_after"])]
            until.append(nxt["time"].iloc[0] if len(nxt) else pd.NaT)
        df["champion_until"] = until
        return df

    def rollback(self, name: str, reason: str) -> dict:
        """Give ``champion`` back to the version that held it before the current one did."""
        with self.promotion_lock(name, f"rollback {name}"):  # the history read and the move, as one
            current = self.alias_version(name, CHAMPION)
            if current is None:
                raise InputError(f"model {name} has no champion: nothing to roll back")
            stack = champion_stack(self.history(name))
            if len(stack) < 2 or stack[-1] != current:
                raise InputError(f"model {name}: version {current} has no recorded predecessor to roll back to "
                                 "(use `churn promote --version V`)")
            return self.set_champion(name, stack[-2], "rollback", reason or f"rollback from version {current}",
                                     expected_previous=current)

    def promote(self, name: str, version: str, reason: str) -> dict:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_model_version(name, version)
        except MlflowException:
            raise InputError(f"model {name} has no version {version}") from None
        return self.set_champion(name, version, "promote", reason or "manual promotion")


def champion_stack(history: pd.DataFrame) -> list[str]:
    """The champions in the order they took over, as rollbacks undo them (a rollback pops one)."""
    stack: list[str] = []
    for _, row in history.iterrows():
        if row["event"] == "rollback":
            if stack:
                stack.pop()
        elif row["champion_after"] and (not stack or stack[-1] != row["champion_after"]):
            stack.append(row["champion_after"])
    return stack


def _actor() -> str:
    try:
        return os.environ.get("CHURN_ACTOR") or getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "unknown"


def _export_s3_env(settings: Settings) -> None:
    """MLflow's S3 artifact client (boto3) reads the endpoint and keys from the environment."""
    if settings.s3_endpoint:
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = settings.s3_endpoint
    if settings.s3_access_key:
        os.environ["AWS_ACCESS_KEY_ID"] = settings.s3_access_key
        os.environ["AWS_SECRET_ACCESS_KEY"] = settings.s3_secret_key
    os.environ.setdefault("AWS_DEFAULT_REGION", settings.s3_region)


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    import urllib.error
    import urllib.request

    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - a configured URL
            if resp.status != 200:
                raise RegistryUnavailable(f"MLflow tracking server {uri} answered {resp.status} on /health")
    except (urllib.error.URLError, OSError) as exc:
        raise RegistryUnavailable(f"MLflow tracking server {uri} is unreachable ({getattr(exc, 'reason', exc)}): "
                                  "check CHURN_MLFLOW_URI; nothing was trained or changed") from None
