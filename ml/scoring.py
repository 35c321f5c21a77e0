"""Scoring a batch of feature rows: probability and top reasons. Pure pandas, no Spark: the nightly
Spark job (in ``mapInPandas``) and the online predictor call this same function, so the two paths
cannot drift apart."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from churn.core.scores import REASONS, risk_band


def score_frame(model, frame: pd.DataFrame, score_date: dt.date, descriptions: dict[str, str],
                bands: list[float]) -> pd.DataFrame:
    """Probability, risk band and top reasons for a batch of feature rows (pure pandas: also the online
    path). ``bands`` are the two probability thresholds of ``Settings.risk_bands``."""
    import numpy as np

    if frame.empty:
        return pd.DataFrame({"customer_id": [], "score_date": [], "churn_probability": [], "risk_band": [],
                             "reasons": []})
    contrib = model.contribution_values(frame)
    feats = model.feature_names
    values = contrib[:, :-1]
    margin = values.sum(axis=1) + contrib[:, -1]
    prob = 1.0 / (1.0 + np.exp(-margin))
    top = np.argsort(-values, axis=1, kind="stable")[:, :REASONS]
    raw = {j: frame[feats[j]].to_numpy() for j in np.unique(top)}  # only the columns that can be reasons
    reasons = []
    for i in range(len(frame)):
        row = []
        for j in top[i]:
            c = float(values[i, j])
            if c <= 0:
                break  # only features that push the risk up are reasons
            name = feats[j]
            v = raw[j][i]
            row.append({"feature": name, "description": descriptions.get(name, name),
                        "value": None if pd.isna(v) else _fmt(v), "contribution": round(c, 6)})
        reasons.append(row)
    return pd.DataFrame({"customer_id": frame["customer_id"].to_numpy(), "score_date": score_date,
                         "churn_probability": prob, "risk_band": risk_band(prob, bands), "reasons": reasons})


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
