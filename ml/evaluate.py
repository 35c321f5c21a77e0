"""Evaluation a churn team trusts: ranking, calibration, lift where the CRM acts, and why.

``evaluate`` computes everything from labels and probabilities (pure); ``write_outputs`` renders
the plots (PNG) and a one-page HTML report. The decile table ranks customers by predicted risk
(decile 1 = the riskiest 10 %); lift at k % is the churn rate in the top k % over the base rate,
capture at k % the share of all churners found there.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("ml.evaluate")
TOP = (5, 10, 20)


def _top_mask(p: np.ndarray, pct: float) -> np.ndarray:
    k = max(1, int(np.ceil(len(p) * pct / 100)))
    order = np.lexsort((np.arange(len(p)), -p))  # stable: ties keep row order
    mask = np.zeros(len(p), dtype=bool)
    mask[order[:k]] = True
    return mask


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Equal-count bins of predicted probability: mean predicted vs observed churn rate."""
    order = np.argsort(p, kind="mergesort")
    groups = np.array_split(order, min(bins, len(p)))
    rows = [{"bin": i + 1, "n": len(g), "mean_predicted": float(p[g].mean()), "observed_rate": float(y[g].mean())}
            for i, g in enumerate(groups) if len(g)]
    return pd.DataFrame(rows)


def decile_table(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    order = np.lexsort((np.arange(len(p)), -p))
    groups = np.array_split(order, 10)
    base = y.mean()
    total_pos = max(1, y.sum())
    rows, cum = [], 0
    for i, g in enumerate(groups):
        pos = int(y[g].sum())
        cum += pos
        rows.append({"decile": i + 1, "customers": len(g), "churners": pos, "churn_rate": pos / max(1, len(g)),
                     "mean_predicted": float(p[g].mean()) if len(g) else 0.0,
                     "min_predicted": float(p[g].min()) if len(g) else 0.0,
                     "lift": (pos / max(1, len(g))) / base if base else 0.0, "cumulative_capture": cum / total_pos})
    return pd.DataFrame(rows)


def metrics(y: np.ndarray, p: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype="float64"), 1e-15, 1 - 1e-15)
    cal = calibration_table(y, p)
    out = {
        "roc_auc": float(roc_auc_score(y, p)), "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])), "brier": float(brier_score_loss(y, p)),
        "calibration_error": float((cal["n"] * (cal["mean_predicted"] - cal["observed_rate"]).abs()).sum() / len(y)),
        "base_rate": float(y.mean()), "mean_predicted": float(p.mean()), "n": int(len(y)), "positives": int(y.sum()),
    }
    for k in TOP:
        m = _top_mask(p, k)
        rate = y[m].mean()
        out[f"lift_top_{k}"] = float(rate / out["base_rate"]) if out["base_rate"] else 0.0
        out[f"capture_top_{k}"] = float(y[m].sum() / max(1, y.sum()))
    return out


def segment_labels(frame: pd.DataFrame, name: str) -> pd.Series:
    """Each row's segment under ``name`` as text: a column's value ("<missing>" for null), or for
    ``tenure_band`` (when not a column) the band of ``tenure_months`` (churn/core/feature_defs.py)."""
    if name not in frame.columns and name == "tenure_band" and "tenure_months" in frame.columns:
        from churn.core.feature_defs import TENURE_BANDS

        t = frame["tenure_months"].astype("float64")
        out = pd.Series("<missing>", index=frame.index, dtype=object)
        for label, lo, hi in TENURE_BANDS:
            out[(t >= lo) & (t < hi)] = label
        return out
    if name not in frame.columns:
        from churn.core.errors import InputError

        raise InputError(f"segment column {name!r} is not in the evaluation rows (columns: {', '.join(frame.columns[:40])})")
    col = frame[name]
    return col.astype(object).where(col.notna(), "<missing>").map(str)


def segment_metrics(y: np.ndarray, p: np.ndarray, frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """ROC-AUC, calibration error (ECE) and lift at 10 % within each segment of each column in ``names``;
    AUC and lift are empty (NaN) where a segment holds a single class."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype="float64")
    rows = []
    for name in names:
        labels = segment_labels(frame, name).to_numpy()
        order = sorted(set(labels))
        if name == "tenure_band" and name not in frame.columns:
            from churn.core.feature_defs import TENURE_BANDS

            rank = {b[0]: i for i, b in enumerate(TENURE_BANDS)}
            order.sort(key=lambda v: rank.get(v, len(rank)))
        for value in order:
            at = labels == value
            ys, ps = y[at], p[at]
            two = 0 < ys.sum() < len(ys)
            cal = calibration_table(ys, ps)
            ece = float((cal["n"] * (cal["mean_predicted"] - cal["observed_rate"]).abs()).sum() / len(ys))
            top = _top_mask(ps, 10)
            rows.append({"segment": name, "value": value, "n": int(at.sum()), "share": float(at.mean()),
                         "positives": int(ys.sum()), "base_rate": float(ys.mean()),
                         "roc_auc": float(roc_auc_score(ys, ps)) if two else np.nan, "calibration_error": ece,
                         "lift_top_10": float(ys[top].mean() / ys.mean()) if two else np.nan})
    return pd.DataFrame(rows, columns=["segment", "value", "n", "share", "positives", "base_rate", "roc_auc",
                                       "calibration_error", "lift_top_10"])


def segment_metric_names(seg: pd.DataFrame) -> dict[str, float]:
    """The segment table as flat MLflow metrics: ``segment.<column>.<value>.<metric>`` (finite values only)."""
    import re

    out = {}
    for r in seg.itertuples(index=False):
        value = re.sub(r"[^A-Za-z0-9_.\- ]", "_", str(r.value))[:60]
        for k in ("roc_auc", "calibration_error", "lift_top_10", "share"):
            v = getattr(r, k)
            if v is not None and np.isfinite(v):
                out[f"segment.{r.segment}.{value}.{k}"] = float(v)
    return out


@dataclass
class Evaluation:
    metrics: dict
    deciles: pd.DataFrame
    calibration: pd.DataFrame
    importance: pd.DataFrame  # feature, gain, mean_abs_contribution
    curves: dict = field(default_factory=dict)  # roc / pr points for the plots
    extra: dict = field(default_factory=dict)  # oracle comparison on generated data, split info, ...
    segments: pd.DataFrame = field(default_factory=lambda: segment_metrics([], [], pd.DataFrame(), []))

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps({"metrics": self.metrics, "extra": self.extra}, indent=1,
                                                        default=str))
        self.deciles.to_csv(folder / "deciles.csv", index=False)
        self.calibration.to_csv(folder / "calibration.csv", index=False)
        self.importance.to_csv(folder / "importance.csv", index=False)
        (folder / "curves.json").write_text(json.dumps(self.curves))
        self.segments.to_csv(folder / "segments.csv", index=False)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Evaluation":
        folder = Path(folder)
        m = json.loads((folder / "metrics.json").read_text())
        seg = pd.read_csv(folder / "segments.csv", dtype={"value": str}, keep_default_na=False, na_values={
            k: [""] for k in ("roc_auc", "lift_top_10")})
        return cls(m["metrics"], pd.read_csv(folder / "deciles.csv"), pd.read_csv(folder / "calibration.csv"),
                   pd.read_csv(folder / "importance.csv"), json.loads((folder / "curves.json").read_text()), m["extra"], seg)


def evaluate(model, test: pd.DataFrame, label: str = "churned", max_contrib_rows: int = 50_000,
             seed: int = 0, segments: list[str] | tuple[str, ...] = ()) -> tuple[Evaluation, np.ndarray]:
    """Score ``test`` with ``model`` and compute every figure; returns the evaluation and the probabilities."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    y = test[label].to_numpy().astype(int)
    if len(np.unique(y)) < 2:
        from churn.core.errors import InputError

        raise InputError(f"the evaluation rows hold a single class ({label} = {int(y[0]) if len(y) else 'none'}): "
                         "ROC-AUC is undefined; widen the window or the test period")
    p = model.predict(test, "evaluation rows")
    fpr, tpr, _ = roc_curve(y, p)
    prec, rec, _ = precision_recall_curve(y, p)
    # SHAP contributions on a seeded sample (exact values, XGBoost computes them natively)
    sample = test if len(test) <= max_contrib_rows else test.sample(max_contrib_rows, random_state=seed)
    contrib = model.contributions(sample, "evaluation rows").drop(columns="bias")
    gain = model.booster.get_score(importance_type="total_gain")
    imp = pd.DataFrame({"feature": model.feature_names})
    imp["gain"] = imp["feature"].map(gain).fillna(0.0)
    imp["gain_share"] = imp["gain"] / max(imp["gain"].sum(), 1e-12)
    imp["mean_abs_contribution"] = imp["feature"].map(contrib.abs().mean()).astype(float)
    imp = imp.sort_values(["mean_abs_contribution", "gain"], ascending=False, kind="mergesort").reset_index(drop=True)
    curves = {"roc": _thin(fpr, tpr), "pr": _thin(rec, prec)}
    ev = Evaluation(metrics(y, p), decile_table(y, p), calibration_table(y, p), imp, curves,
                    segments=segment_metrics(y, p, test, list(segments)))
    return ev, p


def _thin(x: np.ndarray, y: np.ndarray, n: int = 400) -> list[list[float]]:
    idx = np.unique(np.linspace(0, len(x) - 1, min(n, len(x))).astype(int))
    return [[float(x[i]), float(y[i])] for i in idx]


def oracle_comparison(oracle_dir: str | Path, test: pd.DataFrame, model_auc: float, label: str = "churned") -> dict | None:
    """On generated data: AUC of the generator's true probabilities on the same rows, and the model's share of it."""
    from sklearn.metrics import roc_auc_score

    folder = Path(oracle_dir)
    frames = []
    for d in sorted(test["snapshot_date"].unique()):
        part = folder / f"snapshot_date={d}"
        if not part.is_dir():
            return None
        frames.append(pd.read_parquet(part).assign(snapshot_date=d))
    if not frames:
        return None
    joined = test[["customer_id", "snapshot_date", label]].merge(pd.concat(frames), on=["customer_id", "snapshot_date"])
    if len(joined) < 0.99 * len(test) or joined[label].nunique() < 2:
        return None
    oracle_auc = float(roc_auc_score(joined[label], joined["p_churn"]))
    return {"oracle_roc_auc": oracle_auc, "model_roc_auc": model_auc, "auc_share_of_oracle": model_auc / oracle_auc,
            "rows": int(len(joined))}


# ---- plots and report ----------------------------------------------------------------------


def write_outputs(ev: Evaluation, folder: str | Path, title: str, context: dict | None = None) -> dict[str, Path]:
    """PNG plots and ``report.html`` (one page, plots embedded) next to the saved evaluation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    ev.save(folder)
    m = ev.metrics
    paths: dict[str, Path] = {}

    def save(fig, name):
        fig.tight_layout()
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths[name] = path

    fig, ax = plt.subplots(figsize=(4.2, 4))
    roc = np.array(ev.curves["roc"])
    ax.plot(roc[:, 0], roc[:, 1], label=f"model (AUC {m['roc_auc']:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="random")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    save(fig, "roc")

    fig, ax = plt.subplots(figsize=(4.2, 4))
    pr = np.array(ev.curves["pr"])
    ax.plot(pr[:, 0], pr[:, 1], label=f"model (AP {m['pr_auc']:.3f})")
    ax.axhline(m["base_rate"], ls="--", color="grey", label=f"base rate {m['base_rate']:.3f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    ax.legend(loc="upper right")
    save(fig, "pr")

    fig, ax = plt.subplots(figsize=(4.2, 4))
    cal = ev.calibration
    hi = max(cal["mean_predicted"].max(), cal["observed_rate"].max()) * 1.05
    ax.plot([0, hi], [0, hi], "--", color="grey", label="perfect")
    ax.plot(cal["mean_predicted"], cal["observed_rate"], "o-", label=f"model (ECE {m['calibration_error']:.4f})")
    ax.set(xlabel="mean predicted probability", ylabel="observed churn rate", title="Calibration (10 equal-count bins)")
    ax.legend(loc="upper left")
    save(fig, "calibration")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.4, 4))
    d = ev.deciles
    share = np.arange(0, 11) * 10
    a1.plot(share, [0, *d["cumulative_capture"] * 100], "o-", label="model")
    a1.plot([0, 100], [0, 100], "--", color="grey", label="random")
    a1.set(xlabel="% of customers contacted (riskiest first)", ylabel="% of churners captured", title="Cumulative gains")
    a1.legend(loc="lower right")
    a2.bar(d["decile"], d["lift"])
    a2.axhline(1, ls="--", color="grey")
    a2.set(xlabel="risk decile (1 = riskiest)", ylabel="lift over base rate", title="Lift by decile")
    save(fig, "gains")

    imp = ev.importance.head(15).iloc[::-1]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 4.5), sharey=True)
    a1.barh(imp["feature"], imp["mean_abs_contribution"])
    a1.set(title="mean |SHAP contribution| (log-odds)")
    a2.barh(imp["feature"], imp["gain_share"])
    a2.set(title="share of total gain")
    save(fig, "importance")

    seg = ev.segments.dropna(subset=["roc_auc"])
    if len(seg):
        fig, ax = plt.subplots(figsize=(8.4, max(2.5, 0.28 * len(seg) + 1)))
        labels = [f"{r.segment} = {r.value} ({r.share:.0%})" for r in seg.itertuples()]
        colors = [f"C{sorted(seg['segment'].unique()).index(x)}" for x in seg["segment"]]
        ax.barh(labels[::-1], seg["roc_auc"].to_numpy()[::-1], color=colors[::-1])
        ax.axvline(m["roc_auc"], ls="--", color="grey", label=f"overall {m['roc_auc']:.3f}")
        lo = float(min(seg["roc_auc"].min(), m["roc_auc"]))
        ax.set(xlim=(max(0.0, lo - 0.05), 1.0), xlabel="ROC-AUC", title="ROC-AUC per segment (share of rows)")
        ax.legend(loc="lower right")
        save(fig, "segments")
    paths["report"] = _report(ev, folder, title, context or {}, paths)
    return paths


def _report(ev: Evaluation, folder: Path, title: str, context: dict, plots: dict[str, Path]) -> Path:
    m = ev.metrics

    def img(name):
        data = base64.b64encode(plots[name].read_bytes()).decode()
        return f'<img src="data:image/png;base64,{data}" alt="{name}">'

    headline = [("ROC-AUC", f"{m['roc_auc']:.4f}"), ("PR-AUC", f"{m['pr_auc']:.4f}"), ("log loss", f"{m['log_loss']:.4f}"),
                ("Brier", f"{m['brier']:.4f}"), ("calibration error (ECE)", f"{m['calibration_error']:.4f}"),
                ("base rate", f"{m['base_rate']:.2%}"), ("rows / churners", f"{m['n']:,} / {m['positives']:,}")]
    headline += [(f"lift / capture top {k}%", f"{m[f'lift_top_{k}']:.2f}x / {m[f'capture_top_{k}']:.1%}") for k in TOP]
    oracle = ev.extra.get("oracle")
    if oracle:
        headline.append(("oracle ROC-AUC (true probabilities)", f"{oracle['oracle_roc_auc']:.4f}"))
        headline.append(("model AUC / oracle AUC", f"{oracle['auc_share_of_oracle']:.3f}"))
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in headline)
    ctx = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in context.items())
    deciles = ev.deciles.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0)
    segments = ""
    if len(ev.segments):
        segments = ("<h3>Per segment</h3>" + (img("segments") if "segments" in plots else "")
                    + ev.segments.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0, na_rep="-"))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:1100px}} table{{border-collapse:collapse;font-size:13px}}
th,td{{padding:2px 8px;text-align:left;border-bottom:1px solid #ddd}} img{{max-width:49%}}
.grid{{display:flex;gap:2em;flex-wrap:wrap}}</style></head><body>
<h2>{html.escape(title)}</h2>
<div class="grid"><table>{rows}</table><table>{ctx}</table></div>
<div>{img('roc')}{img('pr')}{img('calibration')}{img('gains')}{img('importance')}</div>
<h3>Deciles (1 = riskiest)</h3>{deciles}
{segments}
</body></html>"""
    path = folder / "report.html"
    path.write_text(page)
    return path
