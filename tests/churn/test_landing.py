"""Waiting for complete drops (churn/landing.py): markers on a local landing zone and on S3, the
deadline, and the command's exit codes as Airflow's sensor reads them."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import uuid

import pytest

from churn.core.errors import InputError
from churn.core.sources import MARKER, SOURCES
from churn.landing import DropsNotReady, check, deadline, main
from tests.conftest import BUCKET, generate_base

D = dt.date(2026, 3, 1)


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    home = tmp_path_factory.mktemp("landing")
    generate_base(home, 50, D, 1, seed=3)
    return home / "raw"


@pytest.fixture
def raw(landed, tmp_path):
    shutil.copytree(landed, tmp_path / "raw")
    return tmp_path / "raw"


def test_a_complete_date_passes_and_a_missing_marker_waits_until_the_deadline(raw, make_settings, tmp_path, monkeypatch):
    s = make_settings(tmp_path, raw_uri=str(raw))
    assert check(s, D) == {"date": str(D), "complete": len(SOURCES)}
    (raw / "tickets" / f"ingest_date={D}" / MARKER).unlink()  # the tickets export is still uploading
    due = deadline(s, D)
    assert due == dt.datetime(2026, 3, 2, 6, tzinfo=dt.timezone.utc)  # 6 h after the day ends (UTC)
    with pytest.raises(DropsNotReady, match=rf"(?s)1 drop\(s\) of {D} not complete yet.*tickets/ingest_date={D}"):
        check(s, D, now=due - dt.timedelta(minutes=1))
    with pytest.raises(InputError, match=rf"(?s)still not complete at the deadline 2026-03-02T06:00.*tickets/ingest_date={D}") as err:
        check(s, D, now=due)
    assert not isinstance(err.value, DropsNotReady)
    # the command, as the sensor runs it: 75 = poke again, 1 = fail now, 0 = go
    monkeypatch.setenv("CHURN_HOME", str(tmp_path))
    monkeypatch.setenv("CHURN_RAW_URI", str(raw))
    assert main(["--date", str(D)]) == 1  # 2026-03-02 06:00 is long past
    monkeypatch.setenv("CHURN_DROPS_DEADLINE_HOURS", str(24 * 365 * 10))
    assert main(["--date", str(D)]) == 75
    # polling: the marker lands while the command waits
    threading.Timer(1.0, lambda: (raw / "tickets" / f"ingest_date={D}" / MARKER).write_text(
        (raw / "usage" / f"ingest_date={D}" / MARKER).read_text())).start()
    assert main(["--date", str(D), "--poll", "0.2"]) == 0


def test_markers_are_checked_on_an_s3_landing_zone(landed, make_settings, tmp_path, s3):
    prefix = f"raw-{uuid.uuid4().hex[:8]}"
    client = s3.client()
    for f in landed.rglob("*"):
        if f.is_file() and not (f.parent.name == f"ingest_date={D}" and f.parent.parent.name == "usage"
                                and f.name == MARKER):
            client.upload_file(str(f), BUCKET, f"{prefix}/{f.relative_to(landed).as_posix()}")
    s = make_settings(tmp_path, raw_uri=f"s3a://{BUCKET}/{prefix}")
    with pytest.raises(InputError, match=rf"(?s)1 drop\(s\) of {D}.*s3a://{BUCKET}/{prefix}/usage/ingest_date={D}$"):
        check(s, D)
    client.upload_file(str(landed / "usage" / f"ingest_date={D}" / MARKER), BUCKET, f"{prefix}/usage/ingest_date={D}/{MARKER}")
    assert check(s, D)["complete"] == len(SOURCES)
