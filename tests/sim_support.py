"""The small simulated tenant the OCP and reconciliation tests share (fixtures live in their conftests)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from ocp_ingest.ocp import wire
from ocp_ingest.ocp.wire import CdrEvent
from ocp_ingest_dev.simulator import SimulatorConfig


def window_start() -> datetime:
    """Three hours ago, on the hour: every generated call has ended before any export is requested."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


def small_sim_config(
    *,
    seed: int,
    calls: int,
    max_duration_s: float,
    no_recording_share: float,
    prep_s: float,
    **overrides: object,
) -> SimulatorConfig:
    """Few, short calls (1 s .. ``max_duration_s`` of audio) over a 2-hour window that ended an hour ago."""
    config = SimulatorConfig(
        seed=seed,
        calls=calls,
        window_start=window_start(),
        window_hours=2,
        mean_duration_s=2.0,
        min_duration_s=1.0,
        max_duration_s=max_duration_s,
        no_recording_share=no_recording_share,
    )
    config.exports.prep_s = prep_s
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


def valid_cdrs(lines: Iterable[bytes | str]) -> list[CdrEvent]:
    """A CDR file's events, every line of it a valid event."""
    events, refused = wire.parse_cdr_ndjson(lines)
    assert refused == [], refused
    return events
