"""The lake lock against real contenders: other processes holding it, killed holders, S3's
conditional writes on the session's S3 server (moto's, over HTTP)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from churn.core.lock import LakeLock, LakeLocked, _S3Store, current_holder

COMMAND = "churn run --start 2026-01-01 --end 2026-01-02"
HOLDER = f"""
import sys
from churn.core.lock import LakeLock
from churn.core.settings import load_settings
lock = LakeLock(load_settings(), {COMMAND!r}).acquire()
print("held", flush=True)
sys.stdin.read()  # holds the lock until the test closes stdin (or kills this process)
lock.release()
"""


def start_holder(settings) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], env={**os.environ, **settings.as_env()},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held", "the holder process did not take the lock"
    return proc


@pytest.fixture
def local_lake(make_settings, tmp_path):
    return make_settings(tmp_path)


@pytest.fixture
def s3_lake(make_settings, tmp_path):
    return make_settings(tmp_path, lake_uri=f"s3a://churn-lake/locks-{uuid.uuid4().hex[:8]}",
                         lake_lock_heartbeat_seconds=0.2, lake_lock_stale_seconds=2)


@pytest.mark.parametrize("lake", ["local_lake", "s3_lake"])
def test_a_second_writer_is_refused_with_the_holder_named(lake, request):
    settings = request.getfixturevalue(lake)
    holder = start_holder(settings)
    try:
        t0 = time.monotonic()
        with pytest.raises(LakeLocked) as err:
            LakeLock(settings, "churn nightly --date 2026-01-03").acquire()
        assert time.monotonic() - t0 < 5
        message = str(err.value)
        assert f":{holder.pid} " in message and COMMAND in message and "last heartbeat" in message
        assert "CHURN_LAKE_LOCK_WAIT_SECONDS" in message
        assert err.value.exit_code == 75
        assert current_holder(settings)["owner"].endswith(f":{holder.pid}")
    finally:
        holder.stdin.close()
        holder.wait(10)
    # released by its holder: free again, and taken at once
    assert current_holder(settings) is None
    with LakeLock(settings, "after"):
        assert current_holder(settings)["command"] == "after"


def test_a_waiting_writer_takes_the_lock_once_the_holder_is_done(local_lake):
    holder = start_holder(local_lake)
    threading.Timer(1.5, holder.stdin.close).start()
    t0 = time.monotonic()
    with LakeLock(local_lake, "the waiter", wait=30):
        waited = time.monotonic() - t0
        assert holder.wait(10) == 0  # the holder finished before the waiter got in
    assert 1.0 < waited < 10


def test_a_killed_local_holder_leaves_no_lock_behind(local_lake):
    holder = start_holder(local_lake)
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert current_holder(local_lake) is None  # the kernel released its flock
    with LakeLock(local_lake, "next writer"):
        pass


def test_the_lock_is_reentered_by_the_process_that_holds_it(local_lake):
    with LakeLock(local_lake, "outer") as outer:
        with LakeLock(local_lake, "inner") as inner:
            assert inner is outer
        assert current_holder(local_lake)["command"] == "outer"  # still held after the inner exit
    assert current_holder(local_lake) is None


def test_a_stale_s3_lock_is_taken_over_by_exactly_one_writer(s3_lake):
    holder = start_holder(s3_lake)
    holder.send_signal(signal.SIGKILL)  # dies holding it: the object stays, its heartbeat stops
    holder.wait(10)
    with pytest.raises(LakeLocked):  # not stale yet
        LakeLock(s3_lake, "too early").acquire()
    time.sleep(s3_lake.lake_lock_stale_seconds + 0.5)
    # two writers both see the stale record; the compare-and-swap lets exactly one in
    uri = f"{s3_lake.lake_uri}/_churn/writer.lock"
    a, b = _S3Store(s3_lake, uri), _S3Store(s3_lake, uri)
    stale_a, stale_b = a.read(), b.read()
    assert a.stale(stale_a, s3_lake.lake_lock_stale_seconds)
    wins = [a.take_over({"owner": "a", "token": "a"}, stale_a), b.take_over({"owner": "b", "token": "b"}, stale_b)]
    assert wins == [True, False]
    assert current_holder(s3_lake)["owner"] == "a"


def test_an_s3_holder_that_lost_its_lock_stops_before_writing(s3_lake, s3):
    lock = LakeLock(s3_lake, "slow writer").acquire()
    try:
        time.sleep(0.5)
        lock.check()  # heartbeats keep it ours
        bucket, key = f"{s3_lake.lake_uri}/_churn/writer.lock".split("://", 1)[1].split("/", 1)
        s3.client().put_object(Bucket=bucket, Key=key, Body=json.dumps(
            {"owner": "thief:1", "command": "churn run", "token": "t", "heartbeat_at": "2026-01-01T00:00:00+00:00"}))
        deadline = time.monotonic() + 5
        while lock.lost is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lock.lost and "thief:1" in lock.lost
        with pytest.raises(LakeLocked, match="thief:1"):
            lock.check()
    finally:
        lock.release()
    assert current_holder(s3_lake)["owner"] == "thief:1"  # a lost lock is not deleted by its old holder
