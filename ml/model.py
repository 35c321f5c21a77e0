"""The churn model: XGBoost (hist) on the platform's features, fit, saved and applied the same way
by training, batch scoring and the online predictor.

Categorical handling: categorical features go to XGBoost as pandas categoricals with native
categorical splits (``enable_categorical``), no one-hot. The category list of each column is fixed
at training time (sorted values seen in the training rows) and saved with the model; at prediction
time a value the model never saw becomes *missing* (XGBoost's learned default direction), so a new
plan name cannot crash scoring or silently take another category's code.

Class imbalance: no re-weighting. Churners are a few percent of customer-snapshots, and the CRM
uses the probability itself, so the model keeps the log-loss objective on the true class balance
(which is what makes its probabilities calibrated), early-stops on validation log loss, and is
judged on ranking metrics that do not depend on the base rate (ROC-AUC, PR-AUC, lift). Calibration
is measured on every evaluation (ECE, Brier, a calibration curve) and gated on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import xgboost as xgb

from churn.core.errors import InputError
from churn.core.feature_defs import CATEGORICAL

log = logging.getLogger("ml.model")


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: str  # "numeric" | "categorical"


@dataclass
class Preprocessor:
    """Turns a feature frame (any column order, extra columns ignored) into the model's input."""

    features: list[FeatureSpec]
    categories: dict[str, list[str]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @classmethod
    def fit(cls, frame: pd.DataFrame, features: Iterable[FeatureSpec]) -> "Preprocessor":
        features = list(features)
        check_columns(frame, [f.name for f in features], "training rows")
        cats = {f.name: sorted(str(v) for v in frame[f.name].dropna().unique())
                for f in features if f.kind == CATEGORICAL}
        return cls(features, cats)

    def transform(self, frame: pd.DataFrame, where: str = "input") -> pd.DataFrame:
        check_columns(frame, self.names, where)
        out = {}
        for f in self.features:
            col = frame[f.name]
            if f.kind == CATEGORICAL:
                text = col.astype("object").where(col.notna(), None)
                text = text.map(lambda v: v if v is None or isinstance(v, str) else str(v))
                out[f.name] = pd.Categorical(text, categories=self.categories[f.name])
            else:
                out[f.name] = _numbers(col, f.name, where)
        return pd.DataFrame(out, index=frame.index)

    def matrix(self, frame: pd.DataFrame, where: str = "input") -> xgb.DMatrix:
        """The model's input as an XGBoost matrix: the values of :meth:`transform`, categoricals as their
        codes (missing or unseen: NaN), built in numpy, its columns in the model's order and unnamed (predict
        with ``validate_features=False``). Same numbers as handing XGBoost the pandas
        categoricals (the model's tests check both give identical predictions and contributions), without
        pandas' per-call cost: 20-30 ms for one row, which an online request cannot afford."""
        check_columns(frame, self.names, where)
        n = len(frame)
        x = np.empty((n, len(self.features)), dtype="float32")
        small = n <= 64  # an online request: convert the frame once, then plain Python per value
        if small:
            cells = frame.to_numpy(dtype=object)
            position = {c: i for i, c in enumerate(frame.columns)}
            numeric = [j for j, f in enumerate(self.features) if f.kind != CATEGORICAL]
            block = cells[:, [position[self.features[j].name] for j in numeric]]
            # every numeric feature in one conversion; a column that does not convert is redone
            # alone below, which names it
            if block.size and not any(isinstance(v, str) for v in block.flat):
                try:
                    x[:, numeric] = block.astype("float64")
                    numeric = []
                except (TypeError, ValueError):
                    pass
            todo = set(numeric) | {j for j, f in enumerate(self.features) if f.kind == CATEGORICAL}
        for j, f in enumerate(self.features):
            if small and j not in todo:
                continue
            col = cells[:, position[f.name]] if small else frame[f.name]
            if f.kind == CATEGORICAL:
                text = [v if v is None or isinstance(v, str) else (None if _missing(v) else str(v))
                        for v in (col if small else col.array)]
                if small:
                    codes = self._codes(f.name)
                    x[:, j] = [codes.get(v, np.nan) for v in text]
                else:
                    at = self._index(f.name).get_indexer(text)
                    x[:, j] = np.where(at < 0, np.nan, at)
            else:
                x[:, j] = _small_numbers(col, f.name, where) if small else _numbers(col, f.name, where)
        # no feature names: predictions are made with validate_features=False (the columns are in the
        # model's order by construction), and setting them costs a third of a one-row matrix
        return xgb.DMatrix(x, feature_types=self._types(), enable_categorical=True, missing=np.nan,
                           nthread=1 if n < 1000 else 0)

    def _index(self, name: str) -> pd.Index:
        cache = self.__dict__.setdefault("_indexes", {})
        if name not in cache:
            cache[name] = pd.Index(self.categories[name], dtype="object")
        return cache[name]

    def _codes(self, name: str) -> dict[str, int]:
        cache = self.__dict__.setdefault("_code_maps", {})
        if name not in cache:
            cache[name] = {c: i for i, c in enumerate(self.categories[name])}
        return cache[name]

    def _types(self) -> list[str]:
        return ["c" if f.kind == CATEGORICAL else "q" for f in self.features]

    def unknown_categories(self, frame: pd.DataFrame) -> dict[str, int]:
        """How many non-null values of each categorical feature the model never saw."""
        out = {}
        for name, cats in self.categories.items():
            col = frame[name]
            n = int((col.notna() & ~col.astype("object").isin(cats)).sum())
            if n:
                out[name] = n
        return out

    def to_dict(self) -> dict:
        return {"features": [asdict(f) for f in self.features], "categories": self.categories}

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessor":
        return cls([FeatureSpec(**f) for f in d["features"]], {k: list(v) for k, v in d["categories"].items()})


def _numbers(col: pd.Series, name: str, where: str) -> pd.Series:
    """A numeric feature as float64; text that is not a number is refused, naming the column."""
    if col.dtype == object:
        num = pd.to_numeric(col, errors="coerce")
        bad = num.isna() & col.notna()
        if bad.any():
            raise InputError(f"{where}: numeric feature {name} has non-numeric value(s), "
                             f"e.g. {col[bad].iloc[:3].tolist()}")
        col = num
    return col.astype("float64")


def _small_numbers(col: np.ndarray, name: str, where: str) -> np.ndarray:
    if not any(isinstance(v, str) for v in col):
        try:
            return col.astype("float64")  # numbers, bools, None/NaN (missing)
        except (TypeError, ValueError):
            pass
    return _numbers(pd.Series(col, dtype=object), name, where).to_numpy()


def _missing(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def check_columns(frame: pd.DataFrame, names: list[str], where: str) -> None:
    have = set(frame.columns)
    missing = [c for c in names if c not in have]
    if missing:
        raise InputError(f"{where}: missing feature column(s) {', '.join(missing)} "
                         f"(the model expects {len(names)} features)")


@dataclass
class TrainParams:
    """XGBoost settings. Defaults suit tabular churn data from a few thousand to millions of rows."""

    max_depth: int = 3  # the churn signal is mostly additive in log-odds: shallow trees generalise best
    learning_rate: float = 0.05
    min_child_weight: float = 5.0
    subsample: float = 0.8
    colsample_bytree: float = 0.5
    reg_lambda: float = 5.0
    max_cat_to_onehot: int = 4
    max_bin: int = 256
    num_boost_round: int = 2000
    early_stopping_rounds: int = 100
    seed: int = 42
    nthread: int = 0  # 0: all cores

    def xgb_params(self) -> dict:
        return {
            "objective": "binary:logistic", "tree_method": "hist", "eval_metric": ["auc", "logloss"],
            "max_depth": self.max_depth, "eta": self.learning_rate, "min_child_weight": self.min_child_weight,
            "subsample": self.subsample, "colsample_bytree": self.colsample_bytree, "lambda": self.reg_lambda,
            "max_cat_to_onehot": self.max_cat_to_onehot, "max_bin": self.max_bin, "seed": self.seed,
            "nthread": self.nthread or None,
        }

    @classmethod
    def from_overrides(cls, overrides: dict[str, str] | None) -> "TrainParams":
        p = cls()
        for key, value in (overrides or {}).items():
            if key not in p.__dataclass_fields__:
                raise InputError(f"unknown training parameter {key!r}; known: {', '.join(p.__dataclass_fields__)}")
            typ = type(getattr(p, key))
            try:
                setattr(p, key, typ(value))
            except ValueError:
                raise InputError(f"training parameter {key}: expected {typ.__name__}, got {value!r}") from None
        return p


@dataclass
class ChurnModel:
    """A fitted booster (only its best trees) and the preprocessing it was trained with."""

    booster: xgb.Booster
    prep: Preprocessor
    info: dict = field(default_factory=dict)  # best_iteration, params, label, ...

    BOOSTER_FILE = "model.ubj"
    PREP_FILE = "preprocessing.json"

    @property
    def feature_names(self) -> list[str]:
        return self.prep.names

    def predict(self, frame: pd.DataFrame, where: str = "input") -> np.ndarray:
        """Churn probability per row."""
        if len(frame) == 0:
            return np.zeros(0)
        return self.booster.predict(self.prep.matrix(frame, where), validate_features=False).astype("float64")

    def contributions(self, frame: pd.DataFrame, where: str = "input") -> pd.DataFrame:
        """Per-row SHAP contributions (log-odds) of each feature, plus ``bias``; they sum to the margin."""
        return pd.DataFrame(self.contribution_values(frame, where), columns=[*self.feature_names, "bias"],
                            index=frame.index)

    def contribution_values(self, frame: pd.DataFrame, where: str = "input") -> np.ndarray:
        """:meth:`contributions` as an array: one row per input row, the features in order, then the bias."""
        return self.booster.predict(self.prep.matrix(frame, where), pred_contribs=True, validate_features=False)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(folder / self.BOOSTER_FILE)
        (folder / self.PREP_FILE).write_text(json.dumps({"preprocessing": self.prep.to_dict(), "info": self.info},
                                                        indent=1, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "ChurnModel":
        folder = Path(folder)
        if not (folder / cls.BOOSTER_FILE).is_file():
            raise InputError(f"{folder}: not a saved churn model (no {cls.BOOSTER_FILE})")
        booster = xgb.Booster(model_file=str(folder / cls.BOOSTER_FILE))
        meta = json.loads((folder / cls.PREP_FILE).read_text())
        return cls(booster, Preprocessor.from_dict(meta["preprocessing"]), meta.get("info", {}))


def fit(train: pd.DataFrame, valid: pd.DataFrame, label: str, prep: Preprocessor, params: TrainParams,
        progress: Callable[[int, dict], None] | None = None) -> ChurnModel:
    """Fit on ``train``, early-stopping on ``valid``'s log loss; keeps only the trees up to the best round."""
    for name, part in (("training", train), ("validation", valid)):
        classes = set(part[label].unique())
        if len(classes) < 2:
            raise InputError(f"the {name} rows hold a single class ({label} = {sorted(classes)}): "
                             "cannot fit a churn model; widen the training window")
    dtrain = xgb.DMatrix(prep.transform(train, "training rows"), label=train[label].to_numpy(), enable_categorical=True)
    dvalid = xgb.DMatrix(prep.transform(valid, "validation rows"), label=valid[label].to_numpy(), enable_categorical=True)
    history: dict = {}
    callbacks = [_Progress(progress)] if progress else []
    booster = xgb.train(params.xgb_params(), dtrain, num_boost_round=params.num_boost_round,
                        evals=[(dtrain, "train"), (dvalid, "valid")], early_stopping_rounds=params.early_stopping_rounds,
                        evals_result=history, verbose_eval=False, callbacks=callbacks)
    best = int(booster.best_iteration)
    best_booster = booster[: best + 1]
    info = {"best_iteration": best, "rounds_run": int(booster.num_boosted_rounds()), "label": label,
            "valid_logloss": float(history["valid"]["logloss"][best]),
            "valid_auc": float(history["valid"]["auc"][best]), "params": asdict(params)}
    return ChurnModel(best_booster, prep, info)


class _Progress(xgb.callback.TrainingCallback):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def after_iteration(self, model, epoch, evals_log):
        self.fn(epoch, {k: v["logloss"][-1] for k, v in evals_log.items()})
        return False
