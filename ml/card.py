"""A model card per registered version: what the model was trained on, how good it is overall and
per segment, how calibrated, how it was tuned, what the gate decided and why, and its known limits.

``build`` returns the card as sections; ``markdown`` and ``html`` render the same sections, so the
registry's Markdown (the version's description, ``model_card.md``) and the page a person opens
(``model_card.html``, plots embedded) never disagree. Pure: no MLflow here (ml/registry.py logs it).
"""

from __future__ import annotations

import base64
import html as _html
import math
from pathlib import Path

import pandas as pd

Section = tuple[str, list]  # (heading, [str paragraph | DataFrame table | ("detail", DataFrame) | ("img", path)])


def _fmt(v) -> str:
    if isinstance(v, float):
        return "-" if not math.isfinite(v) else f"{v:.4f}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def _descriptions(ts) -> dict[str, str]:
    if ts.source == "lakehouse":
        from churn.core.feature_defs import FEATURES

        return {f.name: f.description for f in FEATURES}
    return {f.name: "a column of the snapshot (its spec names it)" for f in ts.features}


def build(name: str, version: str, ts, model, ev, decision: dict, run_id: str, plots: Path | None = None) -> list[Section]:
    m = ev.metrics
    split = ts.split
    data = [f"Source: {ts.source}. Split: {split.get('kind')} (seed {split.get('seed')}); rows: train "
            f"{split.get('n_train', 0):,}, validation {split.get('n_valid', 0):,}, test {split.get('n_test', 0):,}."]
    if split.get("kind") == "out_of_time":
        data.append(f"Training snapshots: {', '.join(split.get('train_snapshots', []))}. Test snapshot(s): "
                    f"{', '.join(split.get('test_snapshots', []))} (labels over a {split.get('horizon_days')}-day "
                    f"horizon). Left out between them: {', '.join(split.get('excluded_snapshots', [])) or 'none'}.")
    data.append(pd.DataFrame([{"table": x["table"], "version": x["version"], "uri": x["uri"]} for x in ts.lineage]))
    desc = _descriptions(ts)
    imp = ev.importance.set_index("feature") if len(ev.importance) else pd.DataFrame()
    feats = pd.DataFrame([{"feature": f.name, "kind": f.kind, "description": desc.get(f.name, ""),
                           "mean abs SHAP": float(imp.loc[f.name, "mean_abs_contribution"]) if f.name in imp.index else math.nan}
                          for f in ts.features]).sort_values("mean abs SHAP", ascending=False, kind="mergesort")
    overall = pd.DataFrame([{"metric": k, "value": m[k]} for k in ("roc_auc", "pr_auc", "log_loss", "brier",
                                                                    "calibration_error", "lift_top_10", "capture_top_10",
                                                                    "base_rate", "n") if k in m])
    if "oracle" in ev.extra:
        overall.loc[len(overall)] = ["auc_share_of_oracle", ev.extra["oracle"]["auc_share_of_oracle"]]
    quality: list = [overall]
    if plots is not None and (plots / "roc.png").is_file():
        quality.append(("img", plots / "roc.png"))
    seg = ev.segments
    per_segment: list = ["ROC-AUC, calibration error (ECE) and lift at 10 % within each segment of the test rows."]
    per_segment += [seg] if len(seg) else ["No segments were defined for this training set."]
    if plots is not None and (plots / "segments.png").is_file():
        per_segment.append(("img", plots / "segments.png"))
    calibration: list = [f"Expected calibration error {m.get('calibration_error', math.nan):.4f} over 10 equal-count "
                         "bins of the predicted probability.", ("detail", ev.calibration)]
    if plots is not None and (plots / "calibration.png").is_file():
        calibration.append(("img", plots / "calibration.png"))
    tuning = model.info.get("tuning")
    params = model.info.get("params", {})
    tune_part: list = []
    if tuning:
        b = tuning.get("budget", {})
        tune_part.append(f"Searched {tuning.get('trials')} trial(s) ({tuning.get('pruned', 0)} pruned) in "
                         f"{tuning.get('seconds')} s over {tuning.get('workers', 1)} shard(s), budget {b.get('trials')} "
                         f"trials / {b.get('seconds')} s, on {tuning.get('rows', 0):,} training rows "
                         f"({tuning.get('customers', 0):,} customers, {tuning.get('folds')} fold(s)); the test rows were "
                         f"never part of it. Chosen: {tuning.get('source')} (inner ROC-AUC "
                         f"{_fmt(tuning.get('best_auc') or math.nan)}, defaults {_fmt(tuning.get('default_auc') or math.nan)}).")
        if tuning.get("run_id"):
            tune_part.append(f"Every trial is a child run of MLflow run {tuning['run_id']}.")
    else:
        tune_part.append("Not tuned: the platform's default parameters.")
    tune_part.append(pd.DataFrame([{"parameter": k, "value": f"{v:.4g}" if isinstance(v, float) else str(v)}
                                   for k, v in params.items()
                                   if k not in ("nthread", "seed")] +
                                  [{"parameter": "trees (best round + 1)", "value": str(model.info.get("best_iteration", 0) + 1)}]))
    gate = [f"**{decision.get('outcome', '?')}**" + (f" against champion version {decision['champion'].get('version')}"
                                                    if decision.get("champion") else "")]
    gate += [f"- {r}" for r in decision.get("reasons", [])]
    limits = _limits(ts, ev, decision)
    return [
        (f"Model card: {name} version {version}", [f"MLflow run {run_id}. Registered challenger; the gate's "
                                                    f"decision is below."]),
        ("Data", data), ("Features", [f"{len(ts.features)} features, by mean absolute SHAP contribution on the test "
                                      "rows.", ("detail", feats)]),
        ("Quality on the test rows", quality), ("Quality per segment", per_segment), ("Calibration", calibration),
        ("Tuning and parameters", tune_part), ("Promotion gate", gate), ("Known limits", limits),
    ]


def _limits(ts, ev, decision: dict) -> list[str]:
    policy = decision.get("policy", {})
    min_share = policy.get("segment_min_share", 0.05)
    out = []
    small = ev.segments[ev.segments["share"] < min_share] if len(ev.segments) else ev.segments
    if len(small):
        out.append(f"- Segments under {min_share:.0%} of the test rows are reported but not gated: "
                   + ", ".join(f"{r.segment} = {r.value} ({r.n:,} rows)" for r in small.itertuples()) + ".")
    single = ev.segments[ev.segments["roc_auc"].isna()] if len(ev.segments) else ev.segments
    if len(single):
        out.append("- No ROC-AUC where a segment's test rows hold one class: "
                   + ", ".join(f"{r.segment} = {r.value}" for r in single.itertuples()) + ".")
    if ts.split.get("kind") == "out_of_time":
        out.append(f"- Judged on {len(ts.split.get('test_snapshots', []))} out-of-time snapshot(s): quality on later "
                   "nights is watched by the nightly monitor (drift and realized performance), not promised here.")
    else:
        out.append("- Judged on a random holdout of one snapshot: no out-of-time evidence; expect lower quality on "
                   "later customers if the population shifts.")
    out.append("- A category the model never saw in training (a new plan or region) is treated as missing.")
    out.append(f"- Probabilities are calibrated to a base rate of {ev.metrics.get('base_rate', math.nan):.2%}; a "
               "different churn rate in production shifts them (watch the calibration in `churn models performance`).")
    return out


# ---- rendering ------------------------------------------------------------------------------
def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    rows = ["| " + " | ".join(str(c).replace("|", "/") for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        rows.append("| " + " | ".join(_fmt(v).replace("|", "/") for v in r) + " |")
    return "\n".join(rows)


def markdown(sections: list[Section], details: bool = True) -> str:
    """The card in Markdown; without ``details`` the detail tables (every feature, the calibration
    bins) become a pointer to the whole card: the registry's description holds 5,000 characters."""
    out = []
    for i, (title, parts) in enumerate(sections):
        out.append(("# " if i == 0 else "## ") + title)
        for p in parts:
            if isinstance(p, tuple) and p[0] == "detail":
                out.append(_md_table(p[1]) if details else f"({len(p[1])} rows: in the whole card, model_card.md)")
            elif isinstance(p, pd.DataFrame):
                out.append(_md_table(p))
            elif isinstance(p, tuple):
                out.append(f"![{Path(p[1]).stem}]({Path(p[1]).name})")
            else:
                out.append(p)
    return "\n\n".join(out) + "\n"


def html(sections: list[Section]) -> str:
    body = []
    for i, (title, parts) in enumerate(sections):
        body.append(f"<h{1 if i == 0 else 2}>{_html.escape(title)}</h{1 if i == 0 else 2}>")
        items = []
        for p in parts:
            if isinstance(p, tuple) and p[0] == "detail":
                p = p[1]
            if isinstance(p, pd.DataFrame):
                body.append(p.to_html(index=False, border=0, na_rep="-", float_format=_fmt))
            elif isinstance(p, tuple):
                data = base64.b64encode(Path(p[1]).read_bytes()).decode()
                body.append(f'<img src="data:image/png;base64,{data}" alt="{_html.escape(Path(p[1]).stem)}">')
            elif p.startswith("- "):
                items.append(f"<li>{_html.escape(p[2:])}</li>")
                continue
            else:
                text = _html.escape(p).replace("**", "")
                body.append(f"<p>{text}</p>")
            if items:
                body.insert(len(body) - 1, "<ul>" + "".join(items) + "</ul>")
                items = []
        if items:
            body.append("<ul>" + "".join(items) + "</ul>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>"
            f"{_html.escape(sections[0][0])}</title><style>body{{font-family:sans-serif;margin:1.5em;max-width:1000px}}"
            "table{border-collapse:collapse;font-size:13px;margin:.5em 0}th,td{padding:2px 8px;text-align:left;"
            "border-bottom:1px solid #ddd}img{max-width:60%}</style></head><body>" + "\n".join(body) + "</body></html>")


def write(sections: list[Section], folder: str | Path) -> dict[str, Path]:
    """``model_card.md`` and ``model_card.html`` (whole), and ``description.md``: the same card with
    long tables left out, for the registry's version description."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, page, short = folder / "model_card.md", folder / "model_card.html", folder / "description.md"
    md.write_text(markdown(sections))
    page.write_text(html(sections))
    short.write_text(markdown(sections, details=False))
    return {"markdown": md, "html": page, "description": short}
