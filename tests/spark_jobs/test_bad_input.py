"""Bad input gets a clear error or a quarantine row, and never a half-written table."""

import datetime as dt
import json
import shutil

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from churn.core.errors import InputError, ValidationFailed
from churn.core.sources import MARKER, SOURCES
from churn.core.dates import check_not_future
from churn.runner import build_lakehouse, run_pipeline
from tests.conftest import generate_base
from tests.support.drops import reseal

pytestmark = pytest.mark.slow
D0 = dt.date(2026, 2, 1)
D1, D2, D3 = (D0 + dt.timedelta(days=n) for n in (1, 2, 3))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    home = tmp_path_factory.mktemp("bad-base")
    generate_base(home, 400, D0, 4, seed=5)
    return home


@pytest.fixture
def home(base, tmp_path):
    shutil.copytree(base / "raw", tmp_path / "raw")
    return tmp_path


def usage_part(home, d):
    return home / "raw" / "usage" / f"ingest_date={d}" / "part-0000.csv"


def test_missing_drop_names_the_folder(spark, make_settings, home):
    shutil.rmtree(home / "raw" / "tickets" / f"ingest_date={D1}")
    with pytest.raises(InputError, match=rf"(?s)raw drop missing.*tickets/ingest_date={D1}"):
        run_pipeline(make_settings(home), D1, D1, steps=["ingest"], spark=spark)


def test_renamed_column_is_named_with_a_hint(spark, make_settings, home):
    p = usage_part(home, D1)
    lines = p.read_text().splitlines()
    lines[0] = lines[0].replace('"sessions"', '"session_count"')
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"(?s)usage export .* lacks column\(s\) sessions \('session_count' looks like a renamed 'sessions'\)"):
        run_pipeline(make_settings(home), D1, D1, steps=["ingest"], spark=spark)


def test_empty_drop_is_an_error(spark, make_settings, home):
    for source, spec in SOURCES.items():
        folder = home / "raw" / source / f"ingest_date={D1}"
        for f in folder.iterdir():
            f.write_text((",".join(f'"{c}"' for c in spec.names) + "\n") if spec.fmt == "csv" else "")
        reseal(folder)  # an export that completed, with no rows
    with pytest.raises(InputError, match=f"(?s)raw drop for {D1}..{D1} .* is empty"):
        run_pipeline(make_settings(home), D1, D1, steps=["ingest"], spark=spark)


def test_a_drop_without_its_marker_is_refused_naming_it(spark, make_settings, home):
    (home / "raw" / "usage" / f"ingest_date={D1}" / MARKER).unlink()  # still uploading, or the export died
    s = make_settings(home)
    with pytest.raises(InputError, match=rf"(?s)1 drop\(s\) have no {MARKER} marker.*nothing was ingested.*"
                                         rf"usage/ingest_date={D1}"):
        run_pipeline(s, D0, D1, steps=["ingest"], spark=spark)
    assert not (home / "lake" / "bronze").exists()  # not one table written, not even D0's


def test_a_truncated_file_or_a_wrong_count_is_refused_naming_the_file_and_both_counts(spark, make_settings, home):
    usage = usage_part(home, D1)
    sealed = json.loads((usage.parent / MARKER).read_text())["files"]["part-0000.csv"]
    data = usage.read_bytes()
    usage.write_bytes(data[: len(data) // 2])  # an upload cut mid-file (mid-line, too)
    tickets = home / "raw" / "tickets" / f"ingest_date={D1}" / MARKER
    marker = json.loads(tickets.read_text())
    marker["files"]["part-0000.json"] += 3  # three records lost on the way
    tickets.write_text(json.dumps(marker))
    with pytest.raises(InputError) as err:
        run_pipeline(make_settings(home), D1, D1, steps=["ingest"], spark=spark)
    message = str(err.value)
    assert "2 file(s) of the drops disagree with their markers" in message and "nothing was ingested" in message
    read = len([line for line in data[: len(data) // 2].decode().splitlines() if line.strip()]) - 1
    assert f"usage/ingest_date={D1}/part-0000.csv: read {read} rows, its {MARKER} marker says {sealed}" in message
    n = marker["files"]["part-0000.json"]
    assert f"tickets/ingest_date={D1}/part-0000.json: read {n - 3} rows, its {MARKER} marker says {n}" in message
    assert not (home / "lake" / "bronze").exists()


def test_a_day_with_a_fraction_of_the_usual_rows_fails_validation(spark, make_settings, home):
    """A complete, well-formed drop that holds 30 % of the usual usage rows: every row rule passes,
    the volume rule stops the run before silver."""
    p = usage_part(home, D3)
    lines = p.read_text().splitlines()
    kept = lines[: 1 + int(0.3 * (len(lines) - 1))]
    p.write_text("\n".join(kept) + "\n")
    reseal(p.parent)
    usual = sorted(len(usage_part(home, d).read_text().splitlines()) - 1 for d in (D0, D1, D2))[1]
    s = make_settings(home)
    with pytest.raises(ValidationFailed, match=rf"source usage, date {D3}, rule volume: {len(kept) - 1} rows, under "
                                               rf"50% of the median of the 3 days before it \({usual} rows\)"):
        build_lakehouse(s, D0, D3, spark=spark)
    assert not (home / "lake" / "silver").exists()


def test_future_dates_are_refused():
    with pytest.raises(InputError, match="in the future"):
        check_not_future(dt.date(2026, 5, 2), today=dt.date(2026, 5, 1))


def test_bad_rows_are_quarantined_and_a_failed_expectation_leaves_tables_as_they_were(spark, make_settings, home):
    """Two nights of exports with bad rows: those rows are quarantined with their reasons, exact
    duplicates merge into one silver row. Then a third night whose export breaks a rule: the run
    stops and every table stays at the version it had."""
    with usage_part(home, D0).open("a") as f:
        f.write('"C0000000001","2026-02-01","7","12.5","3","surplus","fields"\n')  # too many fields
        f.write('"C0000000002","2026-02-01","seven","12.5","3"\n')  # wrong type
        f.write('"C0000000003","2026-02-01","-4","12.5","3"\n')  # out of range
    p = home / "raw" / "customers" / f"ingest_date={D0}" / "part-0000.csv"
    lines = p.read_text().splitlines()
    p.write_text("\n".join(lines + lines[1:50]) + "\n")  # 49 customers exported twice
    reseal(p.parent)
    reseal(usage_part(home, D0).parent)
    exported = {line.split(",")[0] for d in (D0, D1)
                for line in (home / "raw" / "customers" / f"ingest_date={d}" / "part-0000.csv").read_text().splitlines()[1:]}
    s = make_settings(home)
    build_lakehouse(s, D0, D1, spark=spark)
    q = spark.read.format("delta").load(s.table_uri("quarantine", "rejected_rows")).where("source = 'usage'")
    reasons = {tuple(r["reasons"]) for r in q.collect()}
    assert ("malformed_row",) in reasons
    assert ("not_a_non_negative_integer_sessions",) in reasons
    assert q.count() == 3
    usage = spark.read.format("delta").load(s.table_uri("silver", "usage"))
    assert usage.where(F.col("customer_id").isin("C0000000002", "C0000000003") & (F.col("usage_date") == D0)
                       & F.col("sessions").isNull()).count() == 0
    customers = spark.read.format("delta").load(s.table_uri("silver", "customers"))
    assert customers.count() == customers.select("customer_id").distinct().count() == len(exported)

    versions = {
        name: DeltaTable.forPath(spark, s.table_uri(*name)).history(1).first()["version"]
        for name in [("silver", n) for n in SOURCES] + [("gold", "customer_features"), ("quarantine", "rejected_rows")]
    }
    # a broken export: a third of the sessions are missing
    p = usage_part(home, D2)
    lines = p.read_text().splitlines()
    broken = [lines[0]] + [
        (",".join(v if i != 2 else "" for i, v in enumerate(line.split(","))) if n % 3 == 0 else line)
        for n, line in enumerate(lines[1:])
    ]
    p.write_text("\n".join(broken) + "\n")
    with pytest.raises(ValidationFailed, match=r"(?s)source usage, column sessions, rule missing_sessions .*fail, allowed 5.00%"):
        build_lakehouse(s, D2, D2, spark=spark)
    after = {name: DeltaTable.forPath(spark, s.table_uri(*name)).history(1).first()["version"] for name in versions}
    assert after == versions
    features = spark.read.format("delta").load(s.table_uri("gold", "customer_features"))
    assert features.where(F.col("snapshot_date") == D2).count() == 0


def test_features_refuse_a_date_never_ingested(spark, make_settings, home):
    s = make_settings(home)
    run_pipeline(s, D0, D0, steps=["ingest"], spark=spark)
    with pytest.raises(InputError, match=f"(?s)no ingested drop for snapshot date.*{D2}"):
        run_pipeline(s, D2, D2, steps=["features"], spark=spark)


def test_marker_counts_match_spark_file_paths_whatever_their_spelling(tmp_path, monkeypatch):
    """Spark names files by URL-encoded file: URIs; the settings may name the raw folder by a plain or
    a relative path. A folder with a space in it is still the same folder."""
    from spark_jobs.ingest import check_counts

    folder = tmp_path / "my raw" / "usage" / f"ingest_date={D0}"
    spark_uri = "file:" + str(folder).replace(" ", "%20") + "/part-0000.csv"
    check_counts({str(folder): {"part-0000.csv": 3}}, {spark_uri: 3})
    monkeypatch.chdir(tmp_path)
    check_counts({f"my raw/usage/ingest_date={D0}": {"part-0000.csv": 3}}, {spark_uri: 3})
    with pytest.raises(InputError, match="part-0000.csv: read 2 rows, its _SUCCESS marker says 3"):
        check_counts({str(folder): {"part-0000.csv": 3}}, {spark_uri: 2})


def _corrupt(line: str, kind: str, at: int, junk: str) -> list[str]:
    """One row of an export damaged the way exports get damaged: the lines it becomes."""
    cut = 1 + at % max(1, len(line) - 1)  # never the whole row: a row that vanished is not damage
    if kind == "truncate":
        return [line[:cut]]
    if kind == "junk":
        return [line[:cut] + junk + line[cut:]]
    if kind == "drop_field":
        fields = line.split(",")
        return [",".join(fields[:-1])]
    if kind == "extra_field":
        return [line + ',"' + junk.replace('"', "") + '"']
    if kind == "blank_value":
        fields = line.split(",")
        fields[at % len(fields)] = ""
        return [",".join(fields)]
    if kind == "replace_value":
        fields = line.split(",")
        fields[at % len(fields)] = junk.replace(",", "").replace("\n", "")
        return [",".join(fields)]
    if kind == "duplicate":
        return [line, line]
    if kind == "unbalanced_quote":
        return [line[:cut] + '"' + line[cut:]]
    if kind == "nul":
        return [line[:cut] + "\x00" + line[cut:]]
    raise AssertionError(kind)


KINDS = ["truncate", "junk", "drop_field", "extra_field", "blank_value", "replace_value", "duplicate",
         "unbalanced_quote", "nul"]


def test_fuzzed_exports_are_quarantined_or_refused_and_every_row_is_accounted_for(spark, make_settings, home):
    """Property-based (hypothesis, seeded): random damage to random rows of every source's CSV and
    JSON-lines export of a night (truncated rows, junk bytes, NULs, missing and extra fields, blanked
    or replaced values, duplicates, unbalanced quotes), the drop resealed as an exporter would. Ingest,
    validate and silver either refuse the night with a clear input error, or account for every row:
    each source's bronze rows = its rows that reached silver + its quarantined rows, and every
    quarantined row says why. Each example is a whole night through Spark, so the examples are few;
    each damages dozens of rows across all sources at once."""
    from hypothesis import HealthCheck, given, settings as hsettings
    from hypothesis import strategies as st

    from spark_jobs.validate import passing_rows

    folders = {s: home / "raw" / s / f"ingest_date={D0}" for s in SOURCES}
    originals = {s: {f.name: f.read_text() for f in folder.iterdir()} for s, folder in folders.items()}
    damage = st.lists(st.tuples(st.sampled_from(sorted(SOURCES)), st.integers(0, 10_000), st.sampled_from(KINDS),
                                st.integers(1, 500), st.text(min_size=1, max_size=12)), min_size=10, max_size=40)
    outcomes = []

    @hsettings(max_examples=4, deadline=None, derandomize=True, database=None,
               suppress_health_check=list(HealthCheck))
    @given(plan=damage)
    def night(plan):
        for s, folder in folders.items():  # start from the clean export each time
            for name, text in originals[s].items():
                (folder / name).write_text(text)
        for s, row, kind, at, junk in plan:
            part = sorted(f for f in folders[s].iterdir() if not f.name.startswith(("_", ".")))[0]
            lines = part.read_text().splitlines()
            header = 1 if SOURCES[s].fmt == "csv" else 0
            if len(lines) <= header:
                continue
            i = header + row % (len(lines) - header)
            lines[i:i + 1] = _corrupt(lines[i], kind, at, junk)
            part.write_text("\n".join(lines) + "\n")
        for folder in folders.values():
            reseal(folder)
        s = make_settings(home / f"lake-{len(outcomes)}", raw_uri=str(home / "raw"))
        try:
            build_lakehouse(s, D0, D0, spark=spark, steps=["ingest", "validate", "silver"])
        except (InputError, ValidationFailed) as exc:  # a clear refusal: it names what it refused
            assert str(exc).strip() and "Traceback" not in str(exc), exc
            outcomes.append(("refused", type(exc).__name__, str(exc).splitlines()[0][:160]))
            return
        quarantine = spark.read.format("delta").load(s.table_uri("quarantine", "rejected_rows"))
        assert quarantine.where(F.size("reasons") == 0).count() == 0, "a quarantined row without a reason"
        for source in SOURCES:
            bronze = spark.read.format("delta").load(s.table_uri("bronze", source)).where(F.col("ingest_date") == D0)
            quarantined = quarantine.where((F.col("source") == source) & (F.col("ingest_date") == D0)).count()
            assert bronze.count() == passing_rows(bronze, source).count() + quarantined, source
        outcomes.append(("accounted", len(plan), quarantine.count()))

    night()
    print("fuzzed nights:", outcomes)
    assert len(outcomes) == 4
    # the examples reached both ends: a night refused, and a night whose damaged rows were quarantined
    assert any(o[0] == "refused" for o in outcomes) and any(o[0] == "accounted" and o[2] > 0 for o in outcomes), outcomes
