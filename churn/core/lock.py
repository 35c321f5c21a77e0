"""One writer per lake: the lake lock every lake-writing command holds while it works.

Delta's S3 log store (``S3SingleDriverLogStore``) assumes one driver writes a table at a time: two
Spark drivers committing to the same table on S3 can both "succeed" and one commit is lost. Airflow
serializes the platform's own tasks (a one-slot pool, see dags/churn_dags), but a backfill, a
second scheduler or a hand-run ``churn run`` beside the nightly would still race it. So the platform
refuses a second concurrent writer itself: ``churn run``, ``churn nightly`` and every lake-writing
step command (``python -m spark_jobs.ingest ...``) hold the lake's lock,
``<lake>/_churn/writer.lock``, a small JSON record naming its holder::

    {"owner": "host:pid", "command": "churn nightly --date 2026-03-01", "token": "...",
     "acquired_at": "...", "heartbeat_at": "..."}

* A local lake: an ``flock`` on that file. The kernel releases it when the holder exits or is
  killed, so a local lock is never stale; the record only names the holder in the error.
* An S3 lake: S3's conditional writes. ``If-None-Match: *`` creates the lock (of two writers exactly
  one succeeds), the holder rewrites ``heartbeat_at`` every ``lake_lock_heartbeat_seconds`` with
  ``If-Match: <etag>``, and a lock whose heartbeat is older than ``lake_lock_stale_seconds`` (its
  holder died) is taken over by the same compare-and-swap, so of two writers taking over a stale
  lock exactly one wins. A holder whose lock was taken over (it was frozen longer than the stale
  limit) finds out at its next heartbeat or ``check()`` and stops before writing again.

A lock held by the same process is re-entered (``churn run`` holds it across its steps).
A writer that finds the lock held waits up to ``lake_lock_wait_seconds`` (0: refuses at once) and
then fails with ``LakeLocked``, which names the holder, its command and its last heartbeat.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from typing import Any

from churn.core.errors import ChurnError
from churn.core.settings import Settings

log = logging.getLogger("churn.lock")
LOCK_NAME = "_churn/writer.lock"


class LakeLocked(ChurnError):
    """Another writer holds the lake's lock (or took it over from this one)."""

    exit_code = 75  # EX_TEMPFAIL: try again later


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _describe(record: dict | None, uri: str) -> str:
    if not record:
        return f"another writer holds the lock {uri} (its record is being written)"
    beat = record.get("heartbeat_at", "?")
    return (f"{'lake lock' if uri.endswith(LOCK_NAME) else 'lock'} {uri} is held by {record.get('owner', '?')} running `{record.get('command', '?')}` "
            f"since {record.get('acquired_at', '?')} (last heartbeat {beat})")


def _command() -> str:
    argv = list(sys.argv)
    if argv and argv[0].endswith(("__main__.py", "churn")):
        argv[0] = "churn"
    return " ".join(argv)[:300]


class _LocalStore:
    """The lock file of a lake on a local (or mounted) file system, held with flock."""

    def __init__(self, path: str):
        self.path = path
        self.fd: int | None = None

    def try_acquire(self, record: dict) -> bool:
        import fcntl

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        self.write(record)
        return True

    def write(self, record: dict) -> bool:
        data = json.dumps(record).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        return True

    def read(self) -> dict | None:
        try:
            with open(self.path, "rb") as f:
                return json.loads(f.read() or b"null")
        except (OSError, ValueError):
            return None

    def stale(self, record: dict | None, stale_after: float) -> bool:
        return False  # the kernel frees the lock of a dead holder: a held flock is never stale

    def take_over(self, record: dict, stale_record: dict | None) -> bool:
        return False

    def still_ours(self, token: str) -> bool:
        return self.fd is not None

    def release(self, token: str) -> None:
        import fcntl

        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None


class _S3Store:
    """The lock object of a lake on S3, held with conditional writes (If-None-Match / If-Match)."""

    def __init__(self, settings: Settings, uri: str):
        import boto3
        from botocore.config import Config

        bucket_and_key = uri.split("://", 1)[1]
        self.bucket, self.key = bucket_and_key.split("/", 1)
        self.client = boto3.client(
            "s3", endpoint_url=settings.s3_endpoint or None, region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key or None, aws_secret_access_key=settings.s3_secret_key or None,
            config=Config(s3={"addressing_style": "path" if settings.s3_path_style else "auto"},
                          connect_timeout=5, read_timeout=15, retries={"max_attempts": 3}))
        self.etag: str | None = None

    @staticmethod
    def _refused(exc) -> bool:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey") or status in (409, 412)

    def _put(self, record: dict, **condition) -> bool:
        from botocore.exceptions import ClientError

        try:
            out = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=json.dumps(record).encode(),
                                         ContentType="application/json", **condition)
        except ClientError as exc:
            if self._refused(exc):
                return False
            raise
        self.etag = out["ETag"]
        return True

    def _get(self) -> tuple[dict | None, str | None]:
        from botocore.exceptions import ClientError

        try:
            out = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None, None
            raise
        try:
            return json.loads(out["Body"].read()), out["ETag"]
        except ValueError:
            return {}, out["ETag"]

    def try_acquire(self, record: dict) -> bool:
        return self._put(record, IfNoneMatch="*")

    def write(self, record: dict) -> bool:
        return self._put(record, IfMatch=self.etag)

    def read(self) -> dict | None:
        record, etag = self._get()
        if record is not None:
            record["_etag"] = etag
        return record

    def stale(self, record: dict | None, stale_after: float) -> bool:
        if not record:
            return False
        try:
            beat = dt.datetime.fromisoformat(record["heartbeat_at"])
        except (KeyError, TypeError, ValueError):
            return True  # a record no writer of this platform wrote
        return (_now() - beat).total_seconds() > stale_after

    def take_over(self, record: dict, stale_record: dict | None) -> bool:
        # compare-and-swap on the stale record's etag: of two writers taking over, exactly one wins
        return bool(stale_record) and self._put(record, IfMatch=stale_record["_etag"])

    def still_ours(self, token: str) -> bool:
        record, etag = self._get()
        return bool(record) and record.get("token") == token and etag == self.etag

    def release(self, token: str) -> None:
        from botocore.exceptions import ClientError

        if self.etag is None:
            return
        try:
            if self.still_ours(token):
                self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self.etag)
        except ClientError as exc:
            if not self._refused(exc):
                raise
        finally:
            self.etag = None


_held: dict[str, "LakeLock"] = {}  # lock uri -> the lock this process holds (re-entered, not re-taken)
_held_guard = threading.Lock()


class LakeLock:
    """The lake's writer lock: ``with LakeLock(settings): ...`` (see the module's documentation)."""

    def __init__(self, settings: Settings, command: str | None = None, *, wait: float | None = None,
                 name: str = "writer"):
        self.settings = settings
        # "writer": the lake's writers; another name, another critical section kept beside it
        # (e.g. "registry-churn": the champion alias's check-and-move, ml/registry.py)
        self.uri = f"{settings.lake_uri.rstrip('/')}/{LOCK_NAME.replace('writer', name)}"
        self.command = command or _command()
        self.wait = settings.lake_lock_wait_seconds if wait is None else wait
        self.token = uuid.uuid4().hex
        self._store: Any = None
        self._depth = 0
        self._beat: threading.Thread | None = None
        self._stop = threading.Event()
        self.lost: str | None = None  # why this holder no longer holds the lock

    def _make_store(self):
        if self.settings.is_s3:
            return _S3Store(self.settings, self.uri)
        path = self.uri[len("file://"):] if self.uri.startswith("file://") else self.uri
        return _LocalStore(path)

    def _record(self, acquired_at: str | None = None) -> dict:
        now = _now().isoformat(timespec="seconds")
        return {"owner": f"{socket.gethostname()}:{os.getpid()}", "command": self.command, "token": self.token,
                "acquired_at": acquired_at or now, "heartbeat_at": now}

    def acquire(self) -> "LakeLock":
        with _held_guard:
            mine = _held.get(self.uri)
            if mine is not None:  # this process already holds it: re-enter
                mine._depth += 1
                return mine
        store = self._make_store()
        deadline = time.monotonic() + max(0.0, self.wait)
        waited = False
        while True:
            if store.try_acquire(self._record()):
                break
            current = store.read()
            if store.stale(current, self.settings.lake_lock_stale_seconds):
                if store.take_over(self._record(), current):
                    log.warning("took over a stale %s", _describe(current, self.uri))
                    break
                continue
            if time.monotonic() >= deadline:
                raise LakeLocked(_describe(current, self.uri) + ". One writer per lake: wait for it to finish"
                                 + (f" (waited {self.wait:.0f}s)" if self.wait else "")
                                 + ", or set CHURN_LAKE_LOCK_WAIT_SECONDS to wait longer.")
            if not waited:
                log.info("waiting up to %.0fs: %s", self.wait, _describe(current, self.uri))
                waited = True
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        self._store, self._depth, self.lost = store, 1, None
        self._acquired_at = _now().isoformat(timespec="seconds")
        with _held_guard:
            _held[self.uri] = self
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="lake-lock-heartbeat", daemon=True)
        self._beat.start()
        log.debug("holding %s", self.uri)
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.settings.lake_lock_heartbeat_seconds):
            try:
                if not self._store.write(self._record(self._acquired_at)):
                    self.lost = f"lake lock {self.uri} was taken over by {_describe(self._store.read(), self.uri)}"
                    log.error("%s", self.lost)
                    return
            except Exception as exc:  # a failed heartbeat is retried at the next beat
                log.warning("lake lock heartbeat failed (will retry): %s", exc)

    def check(self) -> None:
        """Raise ``LakeLocked`` if this holder lost the lock (call before writing)."""
        if self.lost or self._store is None or not self._store.still_ours(self.token):
            raise LakeLocked(self.lost or f"this writer no longer holds the lake lock {self.uri}; "
                             f"{_describe(self._store.read() if self._store else None, self.uri)}")

    def release(self) -> None:
        with _held_guard:
            holder = _held.get(self.uri)
            if holder is not None and holder is not self:
                holder.release()
                return
            self._depth -= 1
            if self._depth > 0:
                return
            _held.pop(self.uri, None)
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        if self._store is not None:
            try:
                self._store.release(self.token)
            finally:
                self._store = None

    def __enter__(self) -> "LakeLock":
        held = self.acquire()
        self._entered = held
        return held

    def __exit__(self, *exc) -> None:
        self._entered.release()


def current_holder(settings: Settings) -> dict | None:
    """The lake lock's record (None when free): what ``churn lock`` shows."""
    lock = LakeLock(settings, "inspect")
    store = lock._make_store()
    record = store.read()
    if not record:
        return None
    if not settings.is_s3:  # a local record is left behind by a finished holder only if flock is free
        if store.try_acquire({}):
            store.release("")
            return None
    record.pop("_etag", None)
    return record
