"""Time helpers of the reconciliation wing: hour alignment (OCP's export windows) and ISO 8601 text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

HOUR = timedelta(hours=1)


def floor_hour(value: datetime) -> datetime:
    """The start of ``value``'s hour, in UTC."""
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(value: datetime) -> datetime:
    """``value`` itself if it is on the hour, else the start of the next hour (UTC)."""
    floored = floor_hour(value)
    return floored if floored == value.astimezone(UTC) else floored + HOUR


def iso_seconds(value: datetime) -> str:
    """``2026-11-24T09:00:00Z``: how plans and messages show a window's bounds."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_precise(value: datetime) -> str:
    """ISO 8601 in UTC with ``Z`` and the microseconds kept (a call's start in a pending row)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_when(value: str | datetime | None) -> datetime | None:
    """An ISO 8601 timestamp (``Z`` or offset; naive means UTC) or None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
