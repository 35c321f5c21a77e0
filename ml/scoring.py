"""Scoring a batch of feature rows: probability, risk band and top reasons. No Spark: the nightly
Spark job (``mapInArrow``) and the online predictor share one computation, :func:`scored`, so the
two paths cannot drift apart; they differ only in how its arrays are laid out.

Vectorised end to end: XGBoost's exact TreeSHAP contributions (``pred_contribs``, whose sum is the
margin, so the probability comes from the same call), the top reasons chosen with numpy over the
whole batch, and the reasons' values formatted as text per kind in one call each, with no Python
object per row. The batch job gets an Arrow table (:func:`score_table`: the reasons as a list of
structs built from flat arrays) and hands it straight to Spark; the online path gets Python dicts
for JSON (:func:`score_records`), which for a request of one row costs a fraction of building
Arrow lists only to take them apart.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churn.core.scores import BANDS, REASONS

#: One reason: which feature, what it means, its value for the customer (as text) and its SHAP
#: contribution (log-odds, > 0: it pushes the risk up). The same struct in Delta and in answers.
REASON = pa.struct([("feature", pa.string()), ("description", pa.string()), ("value", pa.string()),
                    ("contribution", pa.float64())])
SCHEMA = pa.schema([("customer_id", pa.string()), ("score_date", pa.date32()), ("churn_probability", pa.float64()),
                    ("risk_band", pa.string()), ("reasons", pa.list_(REASON))])
_BANDS = pa.array(BANDS, pa.string())


@dataclass(frozen=True)
class Scored:
    """What :func:`scored` computes for a batch, in flat arrays: each row's probability and band (an
    index into :data:`BANDS`), and its reasons row by row (``counts[i]`` of them for row ``i``: the
    feature's position, its SHAP contribution rounded to 6 decimals and its value as text)."""

    prob: np.ndarray
    band: np.ndarray
    counts: np.ndarray
    cols: np.ndarray
    contribution: np.ndarray
    values: pa.Array


def scored(model, frame: pd.DataFrame, bands: list[float]) -> Scored:
    """The one scoring computation: probability, band and reasons of each row of ``frame``
    (``customer_id`` and the model's features). ``bands`` are ``Settings.risk_bands``' two probability
    thresholds. :func:`score_table` (the nightly, in Arrow) and :func:`score_records` (online, in
    Python) only lay its arrays out."""
    contrib = model.contribution_values(frame)
    values = contrib[:, :-1]
    prob = 1.0 / (1.0 + np.exp(-(values.sum(axis=1) + contrib[:, -1])))
    band = (prob >= bands[0]).astype(np.int8) + (prob >= bands[1])
    (rows, cols), counts = top_reasons(values)
    return Scored(prob.astype(np.float64), band, counts, cols, np.round(values[rows, cols].astype(np.float64), 6),
                  _values(frame, model.feature_names, rows, cols))


def score_table(model, frame: pd.DataFrame, score_date: dt.date, descriptions: dict[str, str],
                bands: list[float]) -> pa.Table:
    """Probability, risk band and top reasons of each row of ``frame`` as an Arrow table of
    :data:`SCHEMA`: the nightly's batches."""
    n = len(frame)
    if n == 0:
        return SCHEMA.empty_table()
    s = scored(model, frame, bands)
    return pa.table([pa.array(frame["customer_id"].to_numpy(), pa.string(), from_pandas=True),
                     pa.array(np.full(n, score_date, dtype="datetime64[D]"), pa.date32()),
                     pa.array(s.prob, pa.float64()), _BANDS.take(pa.array(s.band)),
                     _reasons(s.counts, s.cols, s.contribution, s.values, model.feature_names, descriptions)],
                    schema=SCHEMA)


def score_records(model, frame: pd.DataFrame, descriptions: dict[str, str], bands: list[float]) -> list[dict]:
    """The same scores as :func:`score_table` (equal to its rows' ``to_pylist()``, without
    ``customer_id`` and ``score_date``), laid out as Python dicts for a JSON answer: an online
    request of one row skips building Arrow lists of structs only to take them apart again."""
    if len(frame) == 0:
        return []
    s = scored(model, frame, bands)
    feats = model.feature_names
    names = [(f, descriptions.get(f, f)) for f in feats]
    reasons = [{"feature": names[c][0], "description": names[c][1], "value": v, "contribution": x}
               for c, v, x in zip(s.cols.tolist(), s.values.to_pylist(), s.contribution.tolist())]
    out, start = [], 0
    for p, b, k in zip(s.prob.tolist(), s.band.tolist(), s.counts.tolist()):
        out.append({"churn_probability": p, "risk_band": BANDS[b], "reasons": reasons[start:start + k]})
        start += k
    return out


def top_reasons(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (row, feature) positions of each row's reasons, row by row, largest contribution first:
    up to :data:`REASONS` features with a positive contribution (ties: the earlier feature), and how
    many each row has."""
    k = min(REASONS, values.shape[1])
    cand = np.argpartition(-values, k - 1, axis=1)[:, :k] if values.shape[1] > k else \
        np.broadcast_to(np.arange(k), (len(values), k))
    picked = np.take_along_axis(values, cand, axis=1)
    order = np.lexsort((cand, -picked), axis=1)  # by contribution, descending, then feature position
    cand = np.take_along_axis(cand, order, axis=1)
    keep = np.take_along_axis(picked, order, axis=1) > 0  # only features that push the risk up
    rows = np.broadcast_to(np.arange(len(values))[:, None], cand.shape)
    return np.stack([rows[keep], cand[keep]]), keep.sum(axis=1)


def reasons_array(values: np.ndarray, frame: pd.DataFrame, feats: list[str],
                  descriptions: dict[str, str]) -> pa.ListArray:
    """The reasons column of SHAP contributions ``values`` (rows x ``feats``): one list of
    :data:`REASON` structs per row."""
    (rows, cols), counts = top_reasons(values)
    return _reasons(counts, cols, np.round(values[rows, cols].astype(np.float64), 6), _values(frame, feats, rows, cols),
                    feats, descriptions)


def _reasons(counts: np.ndarray, cols: np.ndarray, contribution: np.ndarray, values: pa.Array, feats: list[str],
             descriptions: dict[str, str]) -> pa.ListArray:
    """One list of :data:`REASON` structs per row, built from flat arrays (:class:`Scored`'s)."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    at = pa.array(cols)
    struct = pa.StructArray.from_arrays(
        [pa.array(feats, pa.string()).take(at), pa.array([descriptions.get(f, f) for f in feats], pa.string()).take(at),
         values, pa.array(contribution)], fields=list(REASON))
    return pa.ListArray.from_arrays(pa.array(offsets), struct)


def _values(frame: pd.DataFrame, feats: list[str], rows: np.ndarray, cols: np.ndarray) -> pa.Array:
    """The customer's value of each reason's feature, as text: gathered one feature column at a time,
    then formatted by kind in one call each (text as is, integers exactly, other numbers by
    :func:`format_values`), so a one-row request pays for three formatting calls at most, not one
    per reason."""
    if len(cols) == 0:
        return pa.array([], pa.string())
    order = np.argsort(cols, kind="stable")
    kinds: dict[str, tuple[list, list]] = {"text": ([], []), "int": ([], []), "float": ([], [])}
    if len(frame) <= 64:  # an online request: one conversion instead of a pandas column per reason
        cells, where = frame.to_numpy(dtype=object), {c: i for i, c in enumerate(frame.columns)}
        column = lambda name: cells[:, where[name]]  # noqa: E731
    else:
        column = lambda name: frame[name].to_numpy()  # noqa: E731
    start = 0
    bounds = np.flatnonzero(np.diff(cols[order])) + 1
    for stop in [*bounds.tolist(), len(order)]:
        at = order[start:stop]
        kind, raw = _kind(column(feats[int(cols[at[0]])])[rows[at]])
        kinds[kind][0].append(at)
        kinds[kind][1].append(raw)
        start = stop
    pieces, positions = [], []
    for kind, (ats, raws) in kinds.items():
        if not ats:
            continue
        positions.extend(ats)
        if kind == "text":
            pieces.append(pa.concat_arrays([r.cast(pa.string()) for r in raws]))
        elif kind == "int":
            pieces.append(pc.cast(pa.array(np.concatenate(raws)), pa.string()))
        else:
            pieces.append(_format_floats(np.concatenate(raws)))
    at = np.concatenate(positions)
    inverse = np.empty_like(at)
    inverse[at] = np.arange(len(at))
    return pa.concat_arrays(pieces).take(pa.array(inverse))


def _kind(raw: np.ndarray) -> tuple[str, object]:
    """Values of one feature: ("text", an Arrow array), ("int", int64) or ("float", float64)."""
    if raw.dtype == object:
        if len(raw) <= 64 and all(type(v) in (float, np.float64) for v in raw):
            return "float", raw.astype(np.float64)  # an online request's numbers: what Arrow would infer
        arr = pa.array(raw, from_pandas=True)
        if pa.types.is_string(arr.type) or pa.types.is_null(arr.type):
            return "text", arr
        raw = arr.to_numpy(zero_copy_only=False)
    if raw.dtype.kind in "iub":
        return "int", raw.astype(np.int64)
    return "float", raw.astype(np.float64)


def format_values(raw: np.ndarray) -> pa.Array:
    """Feature values as text: numbers to 6 significant digits ("70.35", "3", "1234570"), integers
    exactly, text as is, missing as null."""
    kind, values = _kind(raw)
    if kind == "text":
        return values.cast(pa.string())
    if kind == "int":
        return pc.cast(pa.array(values), pa.string())
    return _format_floats(values)


def _format_floats(v: np.ndarray) -> pa.Array:
    """float64 values to 6 significant digits as text (NaN: null)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        exp = np.floor(np.log10(np.abs(v)))
        exp = np.where(np.isfinite(exp), exp, 0).astype(np.int64)
        up = np.power(10.0, np.clip(5 - exp, 0, 300))  # exact powers of ten: the decimal's nearest double
        down = np.power(10.0, np.clip(exp - 5, 0, 300))
        rounded = np.where(exp <= 5, np.round(v * up) / up, np.round(v / down) * down)
    rounded = np.where(np.isfinite(rounded), rounded, v)
    return pc.cast(pa.array(rounded, pa.float64(), mask=np.isnan(v)), pa.string())
