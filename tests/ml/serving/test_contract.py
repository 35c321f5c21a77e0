"""Request validation of the online predictor: every refusal names its field."""

import pytest

from churn.core.feature_defs import FEATURES
from ml.model import FeatureSpec, Preprocessor
from ml.serving.contract import FeatureContract, InvalidRequest, parse_v1, parse_v2

PREP = Preprocessor([FeatureSpec(f.name, f.kind) for f in FEATURES],
                    {f.name: ["A", "B"] for f in FEATURES if f.kind == "categorical"})
CONTRACT = FeatureContract(PREP, {f.name: f for f in FEATURES})
FULL = {f.name: ("A" if f.kind == "categorical" else 1.0) for f in FEATURES}


def test_customer_ids_full_vectors_and_overrides():
    got = parse_v1({"instances": [{"customer_id": "C1"}, {"customer_id": "C1", "overrides": {"contract": "B"}},
                                  {"features": {**FULL, "tenure_months": None}}]}, CONTRACT, 10)
    assert [i.customer_id for i in got] == ["C1", "C1", None]
    assert got[1].overrides == {"contract": "B"} and got[2].features["tenure_months"] is None
    assert got[2].features["senior_citizen"] == 1.0


@pytest.mark.parametrize("payload, message", [
    ([], "request body: expected a JSON object"),
    ({"instances": [], "x": 1}, "unknown field\\(s\\) x"),
    ({"instances": {}}, "instances: expected a list, got an object"),
    ({"instances": []}, "instances: empty"),
    ({"instances": [{"customer_id": "C"}] * 11}, "11 in one request, at most 10"),
    ({"instances": [{"customer_id": 7}]}, "instances\\[0\\].customer_id: expected a non-empty text"),
    ({"instances": [{"customer_id": "C", "features": FULL}]}, "instances\\[0\\]: give exactly one"),
    ({"instances": [{"customer_id": "C", "why": 1}]}, "instances\\[0\\]: unknown field\\(s\\) why"),
    ({"instances": [{"features": {**FULL, "shoe_size": 1}}]}, "instances\\[0\\].features: unknown feature\\(s\\) shoe_size"),
    ({"instances": [{"features": {"gender": "A"}}]}, "instances\\[0\\].features: missing feature\\(s\\) senior_citizen"),
    ({"instances": [{"customer_id": "C", "overrides": {"contract": "Z"}}]},
     "instances\\[0\\].overrides.contract: unknown value 'Z'; expected one of 'A', 'B'"),
    ({"instances": [{"customer_id": "C", "overrides": {"contract": 1}}]}, "overrides.contract: expected text, got int"),
    ({"instances": [{"customer_id": "C", "overrides": {"tenure_months": "3"}}]}, "tenure_months: expected a number, got text"),
    ({"instances": [{"customer_id": "C", "overrides": {"tenure_months": True}}]}, "expected a number, got a boolean"),
    ({"instances": [{"customer_id": "C", "overrides": {"tenure_months": -1}}]}, "-1 is out of range, expected at least 0"),
    ({"instances": [{"customer_id": "C", "overrides": {"senior_citizen": 2}}]}, "expected between 0 and 1"),
    ({"instances": [{"customer_id": "C", "overrides": {"monthly_charges": float("inf")}}]}, "expected a finite number"),
])
def test_bad_v1_requests_name_the_field(payload, message):
    with pytest.raises(InvalidRequest, match=message):
        parse_v1(payload, CONTRACT, 10)


def test_v2_tensors():
    got = parse_v2([("customer_id", "BYTES", [2], [b"C1", "C2"])], CONTRACT, 10)
    assert [i.customer_id for i in got] == ["C1", "C2"]
    tensors = [(n, "BYTES" if isinstance(v, str) else "FP64", [1], [v]) for n, v in FULL.items()]
    (row,) = parse_v2(tensors, CONTRACT, 10)
    assert row.features == {n: (v if isinstance(v, str) else float(v)) for n, v in FULL.items()}


@pytest.mark.parametrize("inputs, message", [
    ([], "inputs: expected a customer_id tensor"),
    ([("customer_id", "INT64", [1], [1])], "inputs\\[customer_id\\]: expected datatype BYTES"),
    ([("customer_id", "BYTES", [2], ["a"])], "shape \\[2\\] but 1 value"),
    ([("customer_id", "BYTES", [1, 1], ["a"])], "expected shape \\[n\\]"),
    ([("customer_id", "BYTES", [1], ["a"]), ("gender", "BYTES", [1], ["A"])], "cannot be mixed"),
    ([("gender", "FP64", [1], [1.0])], "inputs\\[gender\\]: expected datatype BYTES, got FP64"),
    ([("gender", "BYTES", [1], ["A"])], "inputs\\[row 0\\]: missing feature"),
])
def test_bad_v2_requests_name_the_tensor(inputs, message):
    with pytest.raises(InvalidRequest, match=message):
        parse_v2(inputs, CONTRACT, 10)
