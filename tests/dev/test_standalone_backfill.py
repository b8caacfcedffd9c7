"""Airflow's own Backfill of ocp_reconciliation under real `airflow standalone`, through the REST API: one run
per 30-minute interval, each detecting exactly the calls started in its interval (about 2-3 minutes)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ocp_ingest.config import Settings
from ocp_ingest.ledger import open_ledger
from ocp_ingest.ledger.transitions import CallIdentity, CdrEnd, CdrStart
from ocp_ingest.reconcile.detect import Detection
from ocp_ingest_dev.browser import private_standalone
from ocp_ingest_dev.stack.airflow_api import AirflowApi

pytestmark = pytest.mark.slow
DAG = "ocp_reconciliation"
T0 = datetime(2026, 11, 20, 9, tzinfo=UTC)


def _wait(check, timeout_s: float, what: str, poll_s: float = 2.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_backfill_through_the_api_reconciles_each_interval(
    ingest_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One pending call in each half hour of 09:00-10:00.
    first, second = "1" * 32, "2" * 32
    identity = CallIdentity(ocp_group="ocp-banking", lob="retail")
    with open_ledger(Settings.from_env()) as ledger:
        for dialog_id, start in ((first, T0 + timedelta(minutes=10)), (second, T0 + timedelta(minutes=40))):
            ledger.apply(CdrStart(dialog_id, start, identity))
            ledger.apply(CdrEnd(dialog_id, start + timedelta(minutes=2), 120_000, "NORMAL", identity))

    # Scheduled runs are on (the DAG unpaused) and must find nothing: the backfill's conf sets grace_s=0.
    scheduled = {
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
        "OCP_INGEST_PENDING_GRACE_S": "1000000000",
    }
    with private_standalone(tmp_path, environment=scheduled) as stack, stack.http() as http:
        api = AirflowApi(stack.base_url, stack.username, stack.password)
        api.create_backfill(
            DAG,
            T0.isoformat(),
            (T0 + timedelta(minutes=59)).isoformat(),
            {"dry_run": True, "grace_s": 0},  # nothing is asked of OCP
        )

        def backfill_runs() -> list[dict] | None:
            runs = http.get(f"/api/v2/dags/{DAG}/dagRuns", params={"run_type": "backfill"}).json()["dag_runs"]
            done = [r for r in runs if r["state"] in ("success", "failed")]
            return runs if len(runs) == 2 and len(done) == 2 else None

        runs = sorted(_wait(backfill_runs, 240, "the backfill's two runs"), key=lambda r: r["logical_date"])
        found = {}
        for run in runs:
            assert run["state"] == "success", run
            entry = http.get(
                f"/api/v2/dags/{DAG}/dagRuns/{run['dag_run_id']}/taskInstances/detect_pending"
                "/xcomEntries/return_value",
                params={"deserialize": True},
            ).json()["value"]
            start, end = (
                datetime.fromisoformat(run[k]) for k in ("data_interval_start", "data_interval_end")
            )
            assert [datetime.fromisoformat(w) for w in entry["window"]] == [start, end]
            found[start] = [c.dialog_id for c in Detection.from_dict(entry).calls]  # its manifest
        assert found == {T0: [first], T0 + timedelta(minutes=30): [second]}
