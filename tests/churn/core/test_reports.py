"""The reports store: a local folder, or S3 (a real S3 endpoint on loopback, as in a cluster with MinIO)."""

from churn.core.reports import read_report, report_uri, write_report
from tests.conftest import BUCKET


def test_a_report_goes_to_a_folder_whole_and_replaces_the_last(make_settings, tmp_path):
    s = make_settings(tmp_path)
    first = write_report(s, "drift/2026-03-01/drift.html", b"<html>old</html>")
    again = write_report(s, "drift/2026-03-01/drift.html", b"<html>new</html>")
    assert first == again == report_uri(s, "drift/2026-03-01/drift.html") == str(tmp_path / "reports" / "drift" /
                                                                                 "2026-03-01" / "drift.html")
    assert read_report(s, "drift/2026-03-01/drift.html") == b"<html>new</html>"
    assert [p.name for p in (tmp_path / "reports" / "drift" / "2026-03-01").iterdir()] == ["drift.html"]  # no temp left


def test_a_report_goes_to_s3_when_the_reports_store_is_a_bucket(make_settings, tmp_path, s3):
    s = make_settings(tmp_path, reports_dir=f"s3://{BUCKET}/reports")
    uri = write_report(s, "drift/2026-03-01/drift.json", b'{"drifted_share": 0.25}')
    assert uri == f"s3://{BUCKET}/reports/drift/2026-03-01/drift.json"
    body = s3.client().get_object(Bucket=BUCKET, Key="reports/drift/2026-03-01/drift.json")["Body"].read()
    assert body == read_report(s, "drift/2026-03-01/drift.json") == b'{"drifted_share": 0.25}'
