"""The reports store: where HTML and JSON reports people open are kept (``reports_dir``):
validation results and data docs, evaluation reports, drift reports, plots.

A local folder in the embedded profile; ``s3://bucket/prefix`` (or ``s3a://``) in a cluster, with the
same S3 settings as the lake (MinIO). pyarrow's filesystems do both, so a report is written the
same way wherever it goes. A report is written whole or not at all: to a temporary name, then moved
(local), or as one PUT (S3), so a reader never opens half a page.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from pathlib import Path

from churn.core.settings import Settings


def _filesystem(settings: Settings):
    """(pyarrow filesystem, root path inside it) of the reports store."""
    root = settings.reports_dir
    if root.startswith(("s3://", "s3a://")):
        from pyarrow import fs

        opts = settings.s3_storage_options()
        s3 = fs.S3FileSystem(access_key=settings.s3_access_key or None, secret_key=settings.s3_secret_key or None,
                             region=settings.s3_region, endpoint_override=settings.s3_endpoint or None,
                             scheme="http" if opts.get("AWS_ALLOW_HTTP") == "true" else "https",
                             force_virtual_addressing=not settings.s3_path_style)
        return s3, root.split("://", 1)[1].rstrip("/")
    return None, root[len("file://"):] if root.startswith("file://") else root


def report_uri(settings: Settings, relpath: str) -> str:
    """Where ``relpath`` lives in the store (a path, or an s3:// URI)."""
    fs, root = _filesystem(settings)
    return f"s3://{root}/{relpath}" if fs is not None else str(Path(root) / relpath)


def write_report(settings: Settings, relpath: str, data: bytes) -> str:
    """Put ``data`` at ``relpath`` under the reports store, replacing what was there; its URI."""
    fs, root = _filesystem(settings)
    if fs is None:
        target = Path(root) / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return str(target)
    with fs.open_output_stream(f"{root}/{relpath}") as out:
        out.write(data)
    return f"s3://{root}/{relpath}"


def read_report(settings: Settings, relpath: str) -> bytes:
    fs, root = _filesystem(settings)
    if fs is None:
        return (Path(root) / relpath).read_bytes()
    with fs.open_input_stream(f"{root}/{relpath}") as f:
        return f.read()


def is_remote(settings: Settings) -> bool:
    return settings.reports_dir.startswith(("s3://", "s3a://"))


@contextlib.contextmanager
def staged(settings: Settings, relpath: str):
    """A local folder for a tool that writes a tree of files (GX's data docs, an evaluation's plots):
    the store's own folder when it is local; otherwise a temporary one, uploaded under ``relpath``
    when the block ends (also when it fails: the results of a failed validation are what one
    reads)."""
    if not is_remote(settings):
        folder = Path(_filesystem(settings)[1]) / relpath
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="churn-report-") as tmp:
        try:
            yield Path(tmp)
        finally:
            upload_tree(settings, Path(tmp), relpath)


def upload_tree(settings: Settings, folder: Path, relpath: str) -> None:
    """Every file under ``folder`` to ``relpath`` in the store."""
    for f in sorted(Path(folder).rglob("*")):
        if f.is_file():
            write_report(settings, f"{relpath.rstrip('/')}/{f.relative_to(folder).as_posix()}", f.read_bytes())
