"""What one run of the flow plays: the calls, the faults on their pushes and on the OCP API, the limits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

#: The push-signing secret of a demo run (a test double's credential, generated fresh would work as well).
DEMO_SECRET = "whsec_ZGVtby1wdXNoLXNpZ25pbmctc2VjcmV0LW9jcC1pbmdlc3Q="


@dataclass
class FlowConfig:
    """One scenario: the calls the simulator plays and the faults on its pushes and on its API."""

    calls: int = 500
    seed: int = 1
    # Push faults (shares of calls). Defaults: the "other faults on at modest shares" of `make run`.
    push_loss: float = 0.10
    duplicate_share: float = 0.02
    out_of_order_share: float = 0.02
    truncate_share: float = 0.01
    corrupt_share: float = 0.01
    lost_end_share: float = 0.01
    reset_share: float = 0.01
    # OCP API faults.
    error_share: float = 0.02
    rate_limit_per_s: float | None = None
    rate_limit_burst: int = 10
    broken_download_share: float = 0.02
    export_ttl_s: float = 86400.0
    export_prep_s: float = 0.3
    # Calls: short recordings keep a demo of hundreds of calls to tens of MB.
    mean_duration_s: float = 6.0
    min_duration_s: float = 1.0
    max_duration_s: float = 20.0
    no_recording_share: float = 0.05
    window_hours: float = 2.0
    push_concurrency: int = 4
    push_rate: float | None = None
    download_max_resumes: int = 2
    max_reconciliation_runs: int = 6
    timeout_s: float = 900.0


def window_start(hours: float) -> datetime:
    """A stretch of call time that ended before now (plus a margin), on the hour: every call has ended."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=hours + 1)
