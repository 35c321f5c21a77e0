"""Real data: the IBM Telco snapshot through the declared column mapping; bad specs and values."""

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from churn.core.errors import InputError
from churn.core.specs import load_spec, map_snapshot, read_source
from spark_jobs.import_snapshot import run
from tests.conftest import ROOT, TELCO

SPEC = ROOT / "local" / "specs" / "telco.yaml"


@pytest.mark.slow
def test_telco_import_writes_features_and_labels(spark, make_settings, tmp_path):
    assert TELCO.exists(), f"the Telco data set is expected at {TELCO}"
    s = make_settings(tmp_path)
    result = run(spark, s, load_spec(SPEC))
    assert result["rows"] == 7043 and result["churned"] == 1869
    features = spark.read.format("delta").load(result["tables"]["features"])
    labels = spark.read.format("delta").load(result["tables"]["labels"])
    assert features.count() == labels.count() == 7043
    assert features.select("customer_id").distinct().count() == 7043
    kinds = {f.name: f.metadata.get("churn.kind") for f in features.schema.fields}
    assert kinds["contract"] == "categorical" and kinds["monthly_charges"] == "numeric"
    assert kinds["senior_citizen"] == "categorical" and kinds["tenure_months"] == "numeric"
    assert "customerID" not in kinds and "Churn" not in kinds
    assert features.where("total_charges IS NULL").count() == 11  # blank for tenure-0 customers
    assert {r[0] for r in features.select("snapshot_date").distinct().collect()} == {dt.date(2026, 1, 31)}
    # rerun replaces the snapshot: still 7,043 rows
    run(spark, s, load_spec(SPEC))
    assert spark.read.format("delta").load(result["tables"]["labels"]).count() == 7043


def _spec(tmp_path: Path, body: str, csv: str | None = None) -> Path:
    if csv is not None:
        (tmp_path / "x.csv").write_text(csv)
    p = tmp_path / "spec.yaml"
    p.write_text(body)
    return p


CSV = "id,plan,spend,left\n1,a,10.5,yes\n2,b,3,no\n3,a, ,no\n"


def _map(tmp_path, body, csv=CSV):
    spec = load_spec(_spec(tmp_path, body, csv))
    return map_snapshot(read_source(spec), spec)


def test_any_customer_table_maps(tmp_path):
    m = _map(tmp_path, "source: x.csv\nid: id\nlabel: {column: left, positive: 'yes'}\n")
    assert m.kinds == {"plan": "categorical", "spend": "numeric"}
    assert m.labels.churned.tolist() == [1, 0, 0]
    assert pd.isna(m.features.spend.iloc[2])


@pytest.mark.parametrize("body, message", [
    ("source: x.csv\nid: customer\nlabel: {column: left, positive: 'yes'}\n", r"'id' names column\(s\) customer not in the file"),
    ("source: x.csv\nid: id\nlabel: {column: churn, positive: 'yes'}\n", r"'label.column' names column\(s\) churn"),
    ("source: x.csv\nid: id\nlabel: {column: left, positive: 'Yes'}\n", r"never equals positive value 'Yes'; values seen: \['no', 'yes'\]"),
    ("source: x.csv\nid: id\nlabel: {column: left, positive: 'yes'}\nnumeric: [plan]\n",
     r"column plan is declared numeric but 3 value\(s\) are not numbers, e.g. \['a', 'b', 'a'\] on line\(s\) \[2, 3, 4\]"),
    ("source: x.csv\nid: id\nlabel: {column: left, positive: 'yes'}\ndrop: [nope]\n", r"'drop' names column\(s\) nope"),
    ("source: missing.csv\nid: id\nlabel: {column: left, positive: 'yes'}\n", "missing.csv does not exist"),
    ("source: x.csv\nlabel: {column: left, positive: 'yes'}\n", "missing required field 'id'"),
    ("source: x.csv\nid: id\nlabel: left\n", "'label' must be a mapping"),
    ("source: x.csv\nid: id\nlabel: {column: left, positive: 'yes'}\ncolour: red\n", r"unknown field\(s\) colour"),
])
def test_bad_specs_name_the_problem(tmp_path, body, message):
    with pytest.raises(InputError, match=message):
        _map(tmp_path, body)


def test_bad_values_name_the_rows(tmp_path):
    body = "source: x.csv\nid: id\nlabel: {column: left, positive: 'yes'}\n"
    with pytest.raises(InputError, match=r"id column id has 1 duplicate value\(s\), e.g. \['1'\]"):
        _map(tmp_path, body, "id,plan,left\n1,a,yes\n1,b,no\n")
    with pytest.raises(InputError, match=r"single class"):
        _map(tmp_path, body, "id,plan,left\n1,a,yes\n2,b,yes\n")
    with pytest.raises(InputError, match=r"label column left is blank on line\(s\) \[3\]"):
        _map(tmp_path, body, "id,plan,left\n1,a,yes\n2,b,\n3,c,no\n")
