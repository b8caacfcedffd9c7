"""Fault-injection scenarios: the whole flow (simulator -> receiver -> both DAGs) under one fault each.

Shared by ``tests/dev/faults/test_faults.py`` (invariants) and ``benchmarks/fault_table.py`` (README table),
so they live in the dev harness: benchmarks import no test module.
Every scenario starts from a clean configuration (no other fault) so a failure points at its fault.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ocp_ingest_dev.demo.config import FlowConfig
from ocp_ingest_dev.demo.flow import Flow

CALLS = 24


def clean(**overrides: Any) -> FlowConfig:
    """Few short calls, every fault off unless overridden."""
    base = FlowConfig(
        calls=CALLS,
        seed=5,
        push_loss=0.0,
        duplicate_share=0.0,
        out_of_order_share=0.0,
        truncate_share=0.0,
        corrupt_share=0.0,
        lost_end_share=0.0,
        reset_share=0.0,
        error_share=0.0,
        broken_download_share=0.0,
        mean_duration_s=3.0,
        max_duration_s=8.0,
        no_recording_share=0.1,
        timeout_s=150.0,
    )
    return replace(base, **overrides)


def default_drive(flow: Flow) -> None:
    flow.run()


def expire_first_export_per_group(flow: Flow) -> None:
    """The first export of every group expires before it is ready (OCP keeps results a limited time)."""
    create = flow.sim.exports.create
    expired: set[str] = set()

    def create_expiring(request: Any) -> Any:
        export = create(request)
        if request.group not in expired:
            expired.add(request.group)
            flow.sim.exports.jobs[export.export_id].ttl_s = 0.1
        return export

    flow.sim.exports.create = create_expiring  # type: ignore[method-assign]
    flow.run()
    flow.notes["expired_exports"] = len(expired)


def storm_of_429(flow: Flow) -> None:
    """A rate limit on the API plus a burst of 429s on the exports endpoints when reconciliation starts
    (6 in a row: within the client's attempt budget, so no task has to fail for it)."""
    flow.sim.faults.force(429, count=6, path_prefix="/v1/exports", retry_after=0)
    flow.run()


def kill_downloads_then_rerun(flow: Flow) -> None:
    """The first 12 download connections drop after 1 KiB: resumes run out, the download task fails (a task
    killed mid-download); Airflow retries it (or the next run takes the calls): each call stored once."""
    flow.sim.faults.break_downloads(12, after_bytes=1024)
    flow.run()


def restart_receiver_mid_upload(flow: Flow) -> None:
    """The receiver is stopped while pushes are in flight, restarted on the same port, and OCP redelivers."""
    pushing = threading.Thread(target=flow.push, name="push", daemon=True)
    pushing.start()
    time.sleep(0.4)
    flow.stop_receiver()
    time.sleep(0.5)
    flow.start_receiver()
    pushing.join()
    flow.notes["pushes_failed_during_restart"] = sum(
        1 for p in flow.plans.values() for s in [*p.events_status, *p.audio_status] if not isinstance(s, int)
    )
    flow.push()  # redelivery of everything: duplicates must be harmless
    flow.run_realtime_until_drained()
    flow.run_reconciliation_until_settled()


def _hold_exclusive(path: Path, hold_s: float, held: threading.Event) -> None:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        held.set()
        time.sleep(hold_s)
        conn.execute("COMMIT")
    finally:
        conn.close()


def lock_ledger(flow: Flow, hold_s: float = 1.5) -> None:
    """An EXCLUSIVE transaction from another connection holds the ledger while pushes land and while each
    DAG runs: writers wait on the busy timeout instead of failing."""
    path = flow.settings.ledger_sqlite_path

    def locked(action: Callable[[], None]) -> float:
        held = threading.Event()
        locker = threading.Thread(target=_hold_exclusive, args=(path, hold_s, held), daemon=True)
        locker.start()
        held.wait(10)
        started = time.monotonic()
        action()
        locker.join()
        return time.monotonic() - started

    flow.notes["lock_push_s"] = round(locked(flow.push), 2)
    flow.notes["lock_realtime_s"] = round(locked(flow.run_realtime_until_drained), 2)
    flow.snapshot_stored()
    flow.notes["lock_reconciliation_s"] = round(locked(flow.run_reconciliation), 2)
    flow.run_reconciliation_until_settled()


def landing_disk_full(flow: Flow) -> None:
    """The landing disk (a real 2 MiB tmpfs) fills up while OCP pushes: events that fit are kept, the other
    pushes are refused 507 and keep nothing. Then space returns (the filler is deleted): realtime stores what
    landed, reconciliation fetches the rest from OCP."""
    from ocp_ingest_dev.disk import fill, mount_tmpfs

    landing = Path(flow.settings.landing_url.removeprefix("file://"))
    with mount_tmpfs(landing, 2 * 1024 * 1024):
        filler = fill(landing, leave_bytes=700 * 1024)
        flow.push()
        flow.notes["pushes_refused_disk_full"] = sum(
            1 for p in flow.plans.values() for s in [*p.events_status, *p.audio_status] if s == 507
        )
        filler.unlink()
        flow.run_realtime_until_drained()
        flow.run_reconciliation_until_settled()


@dataclass
class Scenario:
    id: str
    fault: str
    config: FlowConfig
    drive: Callable[[Flow], None] = default_drive
    #: Extra expectations on the summary beyond the common invariants.
    expect: Callable[[dict[str, Any]], None] | None = None
    tags: list[str] = field(default_factory=list)


def _all_realtime(s: dict[str, Any]) -> None:
    assert s["stored_reconciliation"] == 0 and s["stored_realtime"] == s["calls_with_recording"], s


def _all_reconciled(s: dict[str, Any]) -> None:
    assert s["stored_realtime"] == 0 and s["stored_reconciliation"] == s["calls_with_recording"], s


def _some_reconciled(s: dict[str, Any]) -> None:
    assert s["stored_reconciliation"] > 0, s


def _injected(kind: str) -> Callable[[dict[str, Any]], None]:
    def check(s: dict[str, Any]) -> None:
        assert s["ocp_faults_injected"][kind] > 0, s["ocp_faults_injected"]
        _some_reconciled(s)

    return check


SCENARIOS: list[Scenario] = [
    Scenario("push-loss-0", "push loss 0%", clean(), expect=_all_realtime),
    Scenario("push-loss-10", "push loss 10%", clean(push_loss=0.10)),
    Scenario("push-loss-50", "push loss 50%", clean(push_loss=0.50), expect=_some_reconciled),
    Scenario("push-loss-100", "push loss 100%", clean(push_loss=1.0), expect=_all_reconciled),
    Scenario(
        "duplicates-out-of-order",
        "duplicates 50% + out-of-order 50%",
        clean(duplicate_share=0.5, out_of_order_share=0.5),
        expect=_all_realtime,
    ),
    Scenario("lost-dialog-end", "lost dialog_end 30%", clean(lost_end_share=0.3)),
    Scenario(
        "corrupt-truncated",
        "corrupt 20% + truncated 20% audio",
        clean(corrupt_share=0.2, truncate_share=0.2),
        expect=_some_reconciled,
    ),
    Scenario(
        "ocp-5xx",
        "OCP 503 on 20% of requests",
        clean(push_loss=0.5, error_share=0.2),
        expect=_injected("5xx"),
    ),
    Scenario(
        "429-storm",
        "429 storm (6 in a row + 20 req/s limit)",
        clean(push_loss=0.5, rate_limit_per_s=20.0, rate_limit_burst=5),
        drive=storm_of_429,
        expect=_injected("forced"),
    ),
    Scenario(
        "export-expired",
        "exports expire before download",
        clean(push_loss=0.5),
        drive=expire_first_export_per_group,
        expect=_some_reconciled,
    ),
    Scenario(
        "download-killed",
        "downloads cut mid-file, resumes exhausted, task retried",
        clean(push_loss=1.0),
        drive=kill_downloads_then_rerun,
        expect=_all_reconciled,
    ),
    Scenario(
        "receiver-restart",
        "receiver restarted mid-upload + redelivery",
        clean(push_rate=40.0, mean_duration_s=6.0, max_duration_s=12.0),
        drive=restart_receiver_mid_upload,
    ),
    Scenario("ledger-locked", "ledger EXCLUSIVE-locked 1.5 s (x3)", clean(push_loss=0.3), drive=lock_ledger),
    Scenario(
        "landing-disk-full",
        "landing disk full (ENOSPC) during pushes, then space returns",
        clean(),
        drive=landing_disk_full,
        expect=_some_reconciled,
        tags=["needs-root"],
    ),
]


def run_scenario(scenario: Scenario, home: Path) -> dict[str, Any]:
    """Run one scenario over a fresh ``home``; the summary includes the scenario's notes."""
    with Flow(scenario.config, home) as flow:
        scenario.drive(flow)
        summary = flow.summary()
        summary["notes"] = dict(flow.notes)
        return summary
