"""The promotion gate: when a challenger may replace the champion (pure, no MLflow here)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field

from churn.core.settings import GATE_METRICS, Settings


@dataclass
class Policy:
    metric: str = "roc_auc"
    margin: float = 0.002
    min_roc_auc: float = 0.70
    max_calibration_error: float = 0.05
    segment_margin: float = 0.02
    segment_min_share: float = 0.05

    @classmethod
    def from_settings(cls, s: Settings) -> "Policy":
        return cls(s.gate_metric, s.gate_margin, s.gate_min_roc_auc, s.gate_max_calibration_error,
                   s.gate_segment_margin, s.gate_segment_min_share)


@dataclass
class Decision:
    promote: bool
    reasons: list[str]
    policy: dict
    challenger: dict  # version, metrics
    champion: dict | None  # version, metrics on the same rows (None: there is no champion)
    decided_at: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))

    @property
    def outcome(self) -> str:
        return "promoted" if self.promote else "rejected"

    def as_dict(self) -> dict:
        return {"outcome": self.outcome, **asdict(self)}

    def summary(self) -> str:
        who = f"version {self.challenger.get('version')}"
        return f"{who} {self.outcome}: " + "; ".join(self.reasons)


def pair_segments(challenger, champion) -> list[dict]:
    """Challenger's and champion's per-segment ROC-AUC on the same rows (two ``segment_metrics`` tables)."""
    theirs = {(r.segment, str(r.value)): r.roc_auc for r in champion.itertuples(index=False)}
    return [{"segment": r.segment, "value": str(r.value), "n": int(r.n), "share": float(r.share),
             "challenger": float(r.roc_auc), "champion": float(theirs.get((r.segment, str(r.value)), math.nan))}
            for r in challenger.itertuples(index=False)]


def decide(challenger: dict, champion: dict | None, policy: Policy, champion_error: str | None = None,
           segments: list[dict] | None = None) -> Decision:
    """``challenger``/``champion``: metrics on the same evaluation rows. Floors first, then the margin,
    then every segment holding at least ``segment_min_share`` of the rows (``pair_segments``)."""
    reasons: list[str] = []
    name = policy.metric

    def not_finite(metrics: dict) -> list[str]:
        return [f"{k}={metrics.get(k)!r}" for k in dict.fromkeys(("roc_auc", "calibration_error", name))
                if not isinstance(metrics.get(k), (int, float)) or not math.isfinite(metrics[k])]

    bad = not_finite(challenger)
    if bad:  # a NaN compares false with everything: it must never slip through a floor or a margin
        return Decision(False, [f"the challenger's metrics are not finite numbers ({', '.join(bad)}): refused"],
                        asdict(policy), {"metrics": challenger}, None if champion is None else {"metrics": champion})
    if champion is not None and not_finite(champion) and not champion_error:
        champion_error = f"its metrics on these rows are not finite numbers ({', '.join(not_finite(champion))})"
    ok = True
    auc = challenger["roc_auc"]
    if auc < policy.min_roc_auc:
        ok = False
        reasons.append(f"ROC-AUC {auc:.4f} is below the floor {policy.min_roc_auc:.4f}")
    ece = challenger["calibration_error"]
    if ece > policy.max_calibration_error:
        ok = False
        reasons.append(f"calibration error {ece:.4f} is above the ceiling {policy.max_calibration_error:.4f}")
    if ok:
        reasons.append(f"passes the floors (ROC-AUC {auc:.4f} >= {policy.min_roc_auc}, "
                       f"calibration error {ece:.4f} <= {policy.max_calibration_error})")
    direction = GATE_METRICS[name]
    if champion_error:
        ok = False
        reasons.append(f"the champion could not be scored on the same rows ({champion_error}); promote manually "
                       "with `churn promote` if intended")
    elif champion is None:
        if ok:
            reasons.append("no champion yet: the first model that passes the floors becomes champion")
    else:
        new, old = challenger[name], champion[name]
        better = new >= old + policy.margin if direction == "max" else new <= old - policy.margin
        sign = "+" if direction == "max" else "-"
        verdict = "beats" if better else "does not beat"
        reasons.append(f"{name} {new:.4f} {verdict} the champion's {old:.4f} {sign} margin {policy.margin} "
                       f"on the same {challenger.get('n', '?')} rows")
        ok = ok and better
        worse = []
        for sg in segments or []:
            if sg["share"] < policy.segment_min_share or not (math.isfinite(sg["challenger"])
                                                               and math.isfinite(sg["champion"])):
                continue  # too small to judge, or a single class on these rows: no AUC to compare
            if sg["challenger"] < sg["champion"] - policy.segment_margin:
                worse.append(sg)
                reasons.append(f"segment {sg['segment']} = {sg['value']} ({sg['share']:.1%} of the rows, {sg['n']:,}): "
                               f"ROC-AUC {sg['challenger']:.4f} is {sg['champion'] - sg['challenger']:.4f} below the "
                               f"champion's {sg['champion']:.4f} on the same rows (segment margin {policy.segment_margin})")
        judged = [sg for sg in segments or [] if sg["share"] >= policy.segment_min_share]
        if segments and not worse:
            reasons.append(f"no segment of at least {policy.segment_min_share:.0%} of the rows falls more than "
                           f"{policy.segment_margin} ROC-AUC below the champion ({len(judged)} segments compared)")
        ok = ok and not worse
    return Decision(ok, reasons, asdict(policy), {"metrics": challenger},
                    None if champion is None else {"metrics": champion})
