"""The simulated OCP tenant both dev stacks start: its ``ocp-ingest simulator`` command line."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

#: The simulator's subcommand (compose's demo service runs the same).
SIMULATOR_COMMAND = ["simulator"]


def simulator_command(
    *,
    port: int,
    calls: int,
    seed: int,
    api_error_share: float,
    broken_download_share: float,
    window_hours: float,
    mean_duration_s: float,
    push_url: str,
    push_rate: float,
    truth_path: Path,
    extra: Sequence[str] = (),
) -> list[str]:
    """The simulator playing ``calls`` over a stretch of call time that ended before now (as OCP would replay
    it), pushing to ``push_url`` and writing its ground truth to ``truth_path``; ``extra`` is appended."""
    window_start = datetime.now(UTC) - timedelta(hours=window_hours + 0.5)
    return [
        str(Path(sys.executable).with_name("ocp-ingest")),
        *SIMULATOR_COMMAND,
        "--port",
        str(port),
        "--calls",
        str(calls),
        "--seed",
        str(seed),
        "--error-share",
        str(api_error_share),
        "--broken-download-share",
        str(broken_download_share),
        "--window-start",
        window_start.isoformat(timespec="seconds"),
        "--window-hours",
        str(window_hours),
        "--mean-duration-s",
        str(mean_duration_s),
        "--push-url",
        push_url,
        "--push-rate",
        str(push_rate),
        "--ground-truth",
        str(truth_path),
        *extra,
    ]
