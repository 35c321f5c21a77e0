"""What a churn score is, for everyone who writes or reads one: the batch job, the online predictor,
publishing and the CRM tables. Defined here once."""

from __future__ import annotations

import numpy as np

#: How many reasons (features pushing the risk up, largest first) come with each score.
REASONS = 3
#: Risk bands, lowest first; ``Settings.risk_bands`` holds the two probability thresholds between them.
BANDS = ("low", "medium", "high")


def risk_band(probabilities, thresholds: list[float]) -> np.ndarray:
    """The band of each probability: below the first threshold "low", from the second "high"."""
    low, high = thresholds
    p = np.asarray(probabilities, dtype=float)
    return np.where(p >= high, BANDS[2], np.where(p >= low, BANDS[1], BANDS[0])).astype(object)
