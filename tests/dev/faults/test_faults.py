"""Fault injection: the whole flow under each fault, then the invariants.

Each scenario (``ocp_ingest_dev.fault_scenarios``) plays a few dozen calls through the simulator, the receiver
(real HTTP) and both DAGs (``dag.test()``), then checks: every call stored with the ground truth's bytes or
terminal with a reason; no recording stored twice or changed after it was stored; no stored object
without its ledger row; no DAG run failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ocp_ingest_dev.disk import DiskUnavailable
from ocp_ingest_dev.fault_scenarios import SCENARIOS, Scenario, run_scenario

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_every_call_ends_stored_or_terminal(scenario: Scenario, ingest_home: Path) -> None:
    try:
        summary = run_scenario(scenario, ingest_home)
    except DiskUnavailable as exc:  # the full-disk scenario mounts a tmpfs: root only
        pytest.skip(str(exc))
    assert summary["violations"] == [], summary["violations"]
    assert summary["unresolved"] == 0 and summary["ok"]
    assert (summary["duplicates"], summary["checksum_mismatches"], summary["orphan_objects"]) == (0, 0, 0)
    assert summary["overwritten"] == 0
    # The audit trail agrees with the ledger: every stored call has its STORED event with the same SHA-256.
    assert summary["audit_checked"] == summary["calls_with_recording"]
    assert summary["audit_disagreements"] == {}
    assert summary["failed_dag_runs"] == []
    assert summary["stored_realtime"] + summary["stored_reconciliation"] == summary["calls_with_recording"], (
        summary
    )
    terminal = sum(summary["terminal_by_reason"].values())
    assert terminal == summary["calls_generated"] - summary["calls_with_recording"]
    assert set(summary["terminal_by_reason"]) <= {"NO_RECORDING_EXPECTED"}
    if scenario.expect is not None:
        scenario.expect(summary)
    if scenario.id == "ledger-locked":
        # Each locked phase waited for the lock (rather than failing) and then completed.
        assert summary["notes"]["lock_realtime_s"] >= 1.0 or summary["notes"]["lock_push_s"] >= 1.0
        assert summary["notes"]["lock_reconciliation_s"] >= 1.0
    if scenario.id == "landing-disk-full":
        assert summary["notes"]["pushes_refused_disk_full"] > 0
    if scenario.id == "receiver-restart":
        assert summary["notes"]["pushes_failed_during_restart"] > 0
