"""Editing raw drops in tests the way an exporter would: after changing a drop's files, write its
completion marker again (churn.core.sources.MARKER) with the files' new row counts."""

from __future__ import annotations

from pathlib import Path

from churn.core.sources import MARKER, SOURCES, marker_json


def reseal(folder: Path) -> None:
    """Rewrite the marker of the drop ``<raw>/<source>/ingest_date=D`` from its files as they are now."""
    source, date = folder.parent.name, folder.name.split("=", 1)[1]
    files = {}
    for f in sorted(folder.iterdir()):
        if f.name.startswith(("_", ".")):
            continue
        lines = [line for line in f.read_text().splitlines() if line.strip()]
        header = 1 if SOURCES[source].fmt == "csv" and lines else 0
        files[f.name] = len(lines) - header
    (folder / MARKER).write_text(marker_json(source, date, files))
