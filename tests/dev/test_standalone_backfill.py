"""Airflow's own Backfill of ocp_reconciliation under real `airflow standalone`, through the REST API: one run
per 30-minute interval, each detecting exactly the calls started in its interval (about 2-3 minutes)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from ocp_ingest.config import Settings
from ocp_ingest.ledger import open_ledger
from ocp_ingest.ledger.transitions import CallIdentity, CdrEnd, CdrStart
from ocp_ingest.reconcile.detect import Detection
from ocp_ingest_dev.stack.airflow_api import AirflowApi
from ocp_ingest_dev.stack.standalone import airflow_environment, airflow_health, is_healthy
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
DAG = "ocp_reconciliation"
T0 = datetime(2026, 11, 20, 9, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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

    port = _free_port()
    home = tmp_path / "airflow_home"
    home.mkdir()
    env = {
        **os.environ,
        **airflow_environment(ROOT, port, home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # Scheduled runs (the DAG is unpaused) must find nothing: the backfill's conf sets grace_s=0.
        "OCP_INGEST_PENDING_GRACE_S": "1000000000",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
    }
    log = open(tmp_path / "standalone.log", "wb")  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("airflow")), "standalone"],
        env=env,
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait(lambda: is_healthy(airflow_health(port)), 180, "airflow standalone")
        _wait(lambda: (home / "simple_auth_manager_passwords.json.generated").exists(), 60, "passwords")
        api = AirflowApi.for_standalone(f"http://localhost:{port}", home)
        http = httpx.Client(base_url=api.base_url, headers=api._headers(), timeout=30)
        _wait(lambda: http.get(f"/api/v2/dags/{DAG}").status_code == 200, 120, "the DAG parsed")

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
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
