"""The promotion gate's rules (pure)."""

import pytest

from ml.gate import Policy, decide

POLICY = Policy(metric="roc_auc", margin=0.002, min_roc_auc=0.7, max_calibration_error=0.05)


def m(auc, ece=0.01, **kw):
    return {"roc_auc": auc, "calibration_error": ece, "log_loss": kw.get("log_loss", 0.2), "n": 100}


def test_first_model_is_promoted_when_it_passes_the_floors():
    d = decide(m(0.8), None, POLICY)
    assert d.promote and any("no champion yet" in r for r in d.reasons)


def test_floors_apply_even_without_a_champion():
    assert not decide(m(0.65), None, POLICY).promote
    d = decide(m(0.9, ece=0.08), None, POLICY)
    assert not d.promote and "calibration error 0.0800 is above the ceiling" in d.summary()


def test_challenger_must_beat_the_champion_by_the_margin():
    assert decide(m(0.803), m(0.800), POLICY).promote
    d = decide(m(0.801), m(0.800), POLICY)
    assert not d.promote and "does not beat the champion's 0.8000" in d.summary()


def test_lower_is_better_metrics_compare_the_other_way():
    policy = Policy(metric="log_loss", margin=0.001)
    assert decide(m(0.8, log_loss=0.150), m(0.8, log_loss=0.152), policy).promote
    assert not decide(m(0.8, log_loss=0.1515), m(0.8, log_loss=0.152), policy).promote


def test_a_champion_that_cannot_be_scored_blocks_automatic_promotion():
    d = decide(m(0.9), None, POLICY, champion_error="missing feature column(s) x")
    assert not d.promote and "promote manually" in d.summary()


def test_decision_record_carries_both_sides():
    d = decide(m(0.85), m(0.80), POLICY).as_dict()
    assert d["outcome"] == "promoted" and d["policy"]["margin"] == 0.002
    assert d["challenger"]["metrics"]["roc_auc"] == 0.85 and d["champion"]["metrics"]["roc_auc"] == 0.80


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None])
def test_non_finite_metrics_are_refused(bad):
    """A NaN compares false with everything: it must fail the gate, never slip past a floor or a margin."""
    d = decide({**m(0.9), "roc_auc": bad}, None, POLICY)
    assert not d.promote and "not finite" in d.reasons[0]
    d = decide({**m(0.9), "calibration_error": bad}, m(0.8), POLICY)
    assert not d.promote and "calibration_error" in d.reasons[0]
    # a champion whose metrics are not finite cannot be beaten automatically either
    d = decide(m(0.9), {**m(0.8), "roc_auc": bad}, POLICY)
    assert not d.promote and any("not finite" in r for r in d.reasons)


def _segments(challenger_aucs, champion_aucs, shares):
    import pandas as pd

    from ml.gate import pair_segments

    def table(aucs):
        return pd.DataFrame({"segment": "contract", "value": list(aucs), "n": [int(s * 1000) for s in shares],
                             "share": shares, "roc_auc": list(aucs.values())})

    return pair_segments(table(challenger_aucs), table(champion_aucs))


def test_a_challenger_worse_on_a_large_segment_is_refused_and_the_segment_named():
    policy = Policy(segment_margin=0.02, segment_min_share=0.05)
    better_overall = (m(0.810), m(0.800))
    worse_on_one_year = _segments({"month-to-month": 0.80, "one_year": 0.70, "two_year": 0.75},
                                  {"month-to-month": 0.78, "one_year": 0.73, "two_year": 0.75}, [0.6, 0.3, 0.1])
    d = decide(*better_overall, policy, segments=worse_on_one_year)
    assert not d.promote
    assert "segment contract = one_year (30.0% of the rows, 300): ROC-AUC 0.7000 is 0.0300 below the champion's 0.7300" \
        in d.summary()
    # within the margin, or on a segment under the minimum share: promoted
    ok = _segments({"a": 0.80, "b": 0.715, "c": 0.50}, {"a": 0.78, "b": 0.73, "c": 0.75}, [0.6, 0.37, 0.03])
    d = decide(*better_overall, policy, segments=ok)
    assert d.promote and "(2 segments compared)" in d.summary()
    # a segment holding one class has no AUC: not compared, never a crash
    single = _segments({"a": 0.80, "b": float("nan")}, {"a": 0.78, "b": float("nan")}, [0.5, 0.5])
    assert decide(*better_overall, policy, segments=single).promote
