"""Helpers shared by the OCP tests (conftest.py holds the fixtures)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ocp_ingest.ocp import OcpClient, PasswordAuth, RetryPolicy, token_url_for
from ocp_ingest.simulator import SimulatorConfig

PAT = "sim-pat-0123456789"
USER, PASSWORD = "sim-user", "sim-password"
# Fast retries so the suite stays quick; the rules themselves are what is tested.
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay_s=0.05, max_delay_s=0.2, max_total_s=10.0)


def window_start() -> datetime:
    """An hour-aligned window start three hours ago: every generated call has ended."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


def small_config(**overrides: object) -> SimulatorConfig:
    """Few, short calls (1-4 s of audio) and a 0.2 s export preparation time."""
    config = SimulatorConfig(
        seed=7,
        calls=40,
        window_start=window_start(),
        window_hours=2,
        mean_duration_s=2.0,
        min_duration_s=1.0,
        max_duration_s=4.0,
        no_recording_share=0.1,
    )
    config.exports.prep_s = 0.2
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


def password_client(
    url: str, clock: Callable[[], float] | None = None, password: str = PASSWORD
) -> OcpClient:
    kwargs = {"clock": clock} if clock else {}
    auth = PasswordAuth(token_url_for(url, "ocp"), USER, password, **kwargs)  # type: ignore[arg-type]
    return OcpClient(url, auth, retry=FAST_RETRY, timeout=10)
