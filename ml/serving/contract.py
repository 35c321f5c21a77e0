"""What the online predictor accepts: request parsing and validation, as pure functions.

A request names customers (their features are looked up online), or carries a full feature
vector, and may override some features of a customer ("what if they had a one-year contract?").
Every problem is an :class:`InvalidRequest` naming the field (``instances[2].overrides.contract``)
and what was expected, which the server turns into a 4xx, never a 500.

v1 (``/v1/models/churn:predict``)::

    {"instances": [{"customer_id": "C0000042"},
                   {"customer_id": "C0000042", "overrides": {"contract": "One year"}},
                   {"features": {"gender": "Female", ..., "days_since_last_change": 365}}]}

v2 (``/v2/models/churn/infer``): a BYTES tensor ``customer_id`` of shape ``[n]``, or one tensor per
feature (shape ``[n]``: BYTES for categorical features, FP64/FP32/INT64/INT32 for numeric ones).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from churn.core.feature_defs import Feature
from churn.core.feature_defs import CATEGORICAL
from ml.model import Preprocessor

MAX_ID_LENGTH = 64
INSTANCE_KEYS = {"customer_id", "features", "overrides"}


class InvalidRequest(ValueError):
    """A request the predictor refuses; the message names the field and what was expected."""

    status = 400


class UnknownCustomer(InvalidRequest):
    """A customer id with no online features (not an active customer on the last published night)."""

    status = 404


@dataclass
class Instance:
    customer_id: str | None = None
    features: dict[str, Any] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


class FeatureContract:
    """The model's features (from its preprocessing) with the platform's valid ranges."""

    def __init__(self, prep: Preprocessor, definitions: dict[str, Feature] | None = None):
        self.names = prep.names
        self.kinds = {f.name: f.kind for f in prep.features}
        self.categories = {k: set(v) for k, v in prep.categories.items()}
        self._sorted_categories = {k: sorted(v) for k, v in prep.categories.items()}
        self.ranges = {n: (d.minimum, d.maximum) for n, d in (definitions or {}).items() if n in self.kinds}

    def check(self, values: Any, where: str, complete: bool) -> dict[str, Any]:
        """Validated feature values; ``complete``: every model feature must be present."""
        if not isinstance(values, dict):
            raise InvalidRequest(f"{where}: expected an object of feature values, got {_kind(values)}")
        extra = sorted(set(values) - set(self.names))
        if extra:
            raise InvalidRequest(f"{where}: unknown feature(s) {', '.join(extra)}; the model's features are "
                                 f"{', '.join(self.names)}")
        if complete:
            missing = [n for n in self.names if n not in values]
            if missing:
                raise InvalidRequest(f"{where}: missing feature(s) {', '.join(missing)} (null is allowed for an "
                                     "unknown value, leaving a feature out is not)")
        return {name: self.value(name, value, f"{where}.{name}") for name, value in values.items()}

    def value(self, name: str, value: Any, where: str) -> Any:
        if value is None:
            return None
        if self.kinds[name] == CATEGORICAL:
            if not isinstance(value, str):
                raise InvalidRequest(f"{where}: expected text, got {_kind(value)}")
            if value not in self.categories[name]:
                raise InvalidRequest(f"{where}: unknown value {value!r}; expected one of "
                                     f"{', '.join(map(repr, self._sorted_categories[name]))}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidRequest(f"{where}: expected a number, got {_kind(value)}")
        if not math.isfinite(value):
            raise InvalidRequest(f"{where}: expected a finite number, got {value}")
        low, high = self.ranges.get(name, (None, None))
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"between {low:g} and {high:g}" if low is not None and high is not None else \
                f"at least {low:g}" if low is not None else f"at most {high:g}"
            raise InvalidRequest(f"{where}: {value} is out of range, expected {bounds}")
        return float(value)


def parse_v1(payload: Any, contract: FeatureContract, max_batch: int) -> list[Instance]:
    if not isinstance(payload, dict):
        raise InvalidRequest(f"request body: expected a JSON object with \"instances\", got {_kind(payload)}")
    extra = sorted(set(payload) - {"instances"})
    if extra:
        raise InvalidRequest(f"request body: unknown field(s) {', '.join(extra)}; expected only \"instances\"")
    instances = payload.get("instances")
    if not isinstance(instances, list):
        raise InvalidRequest(f"instances: expected a list, got {_kind(instances)}")
    _check_batch(len(instances), max_batch, "instances")
    return [_instance(item, contract, f"instances[{i}]") for i, item in enumerate(instances)]


def _instance(item: Any, contract: FeatureContract, where: str) -> Instance:
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where}: expected an object with customer_id or features, got {_kind(item)}")
    extra = sorted(set(item) - INSTANCE_KEYS)
    if extra:
        raise InvalidRequest(f"{where}: unknown field(s) {', '.join(extra)}; expected customer_id, features "
                             "and/or overrides")
    has_id, has_features = "customer_id" in item, "features" in item
    if has_id == has_features:
        raise InvalidRequest(f"{where}: give exactly one of customer_id (features looked up) or features "
                             "(a full feature vector)")
    out = Instance()
    if has_id:
        out.customer_id = customer_id(item["customer_id"], f"{where}.customer_id")
    else:
        out.features = contract.check(item["features"], f"{where}.features", complete=True)
    if "overrides" in item:
        out.overrides = contract.check(item["overrides"], f"{where}.overrides", complete=False)
    return out


#: What a customer id may look like: letters and digits, then also . _ - : / @ + # (Telco's
#: "7590-VHVEG", "C0000042", an e-mail-like key). Control characters (a NUL byte) and spaces never
#: reach the database.
CUSTOMER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+#-]*")


def customer_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{where}: expected a non-empty text customer id, got {_kind(value)}")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidRequest(f"{where}: longer than {MAX_ID_LENGTH} characters")
    if not CUSTOMER_ID.fullmatch(value):
        raise InvalidRequest(f"{where}: {value[:20]!r} is not a customer id: expected letters and digits, then also "
                             ". _ - : / @ + # (no spaces or control characters)")
    return value


V2_NUMERIC = {"FP64", "FP32", "INT64", "INT32", "INT16", "INT8", "UINT8", "UINT16", "UINT32", "UINT64"}


def parse_v2(inputs: list[tuple[str, str, list[int], list]], contract: FeatureContract,
             max_batch: int) -> list[Instance]:
    """v2 tensors as ``(name, datatype, shape, data)``: a ``customer_id`` tensor, or one per feature."""
    if not inputs:
        raise InvalidRequest("inputs: expected a customer_id tensor or one tensor per feature, got none")
    by_name: dict[str, tuple[str, list[int], list]] = {}
    for name, datatype, shape, data in inputs:
        where = f"inputs[{name}]"
        if name in by_name:
            raise InvalidRequest(f"{where}: given twice")
        if len(shape) != 1:
            raise InvalidRequest(f"{where}: expected shape [n], got {shape}")
        if len(data) != shape[0]:
            raise InvalidRequest(f"{where}: shape {shape} but {len(data)} value(s)")
        by_name[name] = (datatype, shape, list(data))
    sizes = {shape[0] for _, shape, _ in by_name.values()}
    if len(sizes) != 1:
        raise InvalidRequest(f"inputs: every tensor must have the same length, got {sorted(sizes)}")
    (n,) = sizes
    _check_batch(n, max_batch, "inputs")
    if "customer_id" in by_name:
        if len(by_name) > 1:
            raise InvalidRequest(f"inputs: customer_id cannot be mixed with feature tensors "
                                 f"({', '.join(sorted(set(by_name) - {'customer_id'}))})")
        datatype, _, data = by_name["customer_id"]
        if datatype != "BYTES":
            raise InvalidRequest(f"inputs[customer_id]: expected datatype BYTES, got {datatype}")
        return [Instance(customer_id=customer_id(_text(v), f"inputs[customer_id][{i}]")) for i, v in enumerate(data)]
    for name, (datatype, _, _) in by_name.items():
        if name in contract.kinds:
            want = "BYTES" if contract.kinds[name] == CATEGORICAL else "a numeric type (FP64, INT64, ...)"
            if (datatype == "BYTES") != (contract.kinds[name] == CATEGORICAL) or \
                    (datatype != "BYTES" and datatype not in V2_NUMERIC):
                raise InvalidRequest(f"inputs[{name}]: expected datatype {want}, got {datatype}")
    rows = []
    for i in range(n):
        values = {name: (_text(data[i]) if datatype == "BYTES" and data[i] is not None else data[i])
                  for name, (datatype, _, data) in by_name.items()}
        rows.append(Instance(features=contract.check(values, f"inputs[row {i}]", complete=True)))
    return rows


def _check_batch(n: int, max_batch: int, where: str) -> None:
    if n == 0:
        raise InvalidRequest(f"{where}: empty; send at least one")
    if n > max_batch:
        raise InvalidRequest(f"{where}: {n} in one request, at most {max_batch} allowed (CHURN_SERVE_MAX_BATCH)")


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "text", bool: "a boolean"}.get(type(value), type(value).__name__)
