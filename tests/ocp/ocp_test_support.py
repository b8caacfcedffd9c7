"""Helpers shared by the OCP tests (conftest.py holds the fixtures)."""

from __future__ import annotations

from collections.abc import Callable

from ocp_ingest.ocp import OcpClient, PasswordAuth, RetryPolicy, token_url_for
from ocp_ingest_dev.simulator import SimulatorConfig
from ocp_ingest_dev.simulator.auth import SIMULATOR_PAT
from tests.sim_support import small_sim_config, window_start

PAT = SIMULATOR_PAT  # the OCP tests import their credentials (and window_start) from here
USER, PASSWORD = "sim-user", "sim-password"
# Fast retries so the suite stays quick; the rules themselves are what is tested.
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay_s=0.05, max_delay_s=0.2, max_total_s=10.0)


def small_config(**overrides: object) -> SimulatorConfig:
    """Few, short calls (1-4 s of audio) and a 0.2 s export preparation time."""
    defaults = {"seed": 7, "calls": 40, "max_duration_s": 4.0, "no_recording_share": 0.1, "prep_s": 0.2}
    return small_sim_config(**{**defaults, **overrides})  # type: ignore[arg-type]


def password_client(
    url: str, clock: Callable[[], float] | None = None, password: str = PASSWORD
) -> OcpClient:
    kwargs = {"clock": clock} if clock else {}
    auth = PasswordAuth(token_url_for(url, "ocp"), USER, password, **kwargs)  # type: ignore[arg-type]
    return OcpClient(url, auth, retry=FAST_RETRY, timeout=10)


__all__ = ["FAST_RETRY", "PASSWORD", "PAT", "USER", "password_client", "small_config", "window_start"]
