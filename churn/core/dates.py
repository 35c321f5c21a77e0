"""Dates: every pipeline step is keyed on a logical date (a day, UTC) or a range of them."""

from __future__ import annotations

import datetime as dt

from churn.core.errors import InputError


def parse_date(value: str, what: str = "--date") -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InputError(f"{what}: expected a date as YYYY-MM-DD, got {value!r}") from None


def date_range(start: dt.date, end: dt.date, every: int = 1) -> list[dt.date]:
    """start, start + every, ... up to end; end itself is always included."""
    if end < start:
        raise InputError(f"--end {end} is before --start {start}")
    if every < 1:
        raise InputError(f"--every must be at least 1, got {every}")
    days = list(range(0, (end - start).days + 1, every))
    out = [start + dt.timedelta(days=d) for d in days]
    if out[-1] != end:
        out.append(end)
    return out


def check_not_future(d: dt.date, today: dt.date | None = None) -> None:
    today = today or dt.datetime.now(dt.timezone.utc).date()
    if d > today:
        raise InputError(f"date {d} is in the future (today is {today} UTC): no drop can exist for it yet")
