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

    @classmethod
    def from_settings(cls, s: Settings) -> "Policy":
        return cls(s.gate_metric, s.gate_margin, s.gate_min_roc_auc, s.gate_max_calibration_error)


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


def decide(challenger: dict, champion: dict | None, policy: Policy, champion_error: str | None = None) -> Decision:
    """``challenger``/``champion``: metrics on the same evaluation rows. Floors first, then the margin."""
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
    return Decision(ok, reasons, asdict(policy), {"metrics": challenger},
                    None if champion is None else {"metrics": champion})
