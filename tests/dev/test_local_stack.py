"""`make run`'s engine: the local stack under real `airflow standalone`, and its progress accounting.

The end-to-end test is the README's first command in miniature: simulator pushes with faults, the
receiver, Airflow standalone running both DAGs on their own (the local cadence), until every call is
stored or terminal with a reason; then the completeness report through Airflow's REST API reads 100%.
"""

from __future__ import annotations

import io
import json
import socket
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ocp_ingest.config import Settings
from ocp_ingest.ledger import IngestionSource, TerminalState, open_ledger
from ocp_ingest.ledger.transitions import CallIdentity, CdrEnd, CdrStart, MarkTerminal, Stored
from ocp_ingest_dev.simulator.calls import FLOWS
from ocp_ingest_dev.stack.tally import RunTally, call_days, tally


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tally_accounts_for_exactly_the_simulated_calls(ingest_home: Path) -> None:
    t0 = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    ids = [f"{n:032X}" for n in range(6)]
    start_ms = int(t0.timestamp() * 1000)
    truth = {
        "push_complete": False,
        "calls": [{"dialog_id": d, "start": start_ms + i * 3_600_000} for i, d in enumerate(ids)],
    }
    with open_ledger(Settings.from_env()) as ledger:
        identity = CallIdentity(ocp_group="ocp-banking", lob="banking")
        for d in ids[:5]:
            ledger.apply(CdrStart(d, t0, identity))
        for d in ids[:4]:
            ledger.apply(CdrEnd(d, t0, 1000, "NORMAL", identity))
        ledger.apply(Stored(ids[0], "file:///a.wav", "a" * 64, 1, IngestionSource.REALTIME))
        ledger.apply(Stored(ids[1], "file:///b.wav", "b" * 64, 1, IngestionSource.RECONCILIATION))
        ledger.apply(MarkTerminal(ids[2], TerminalState.NO_RECORDING_EXPECTED, "tel: origin"))
        ledger.apply(CdrStart("F" * 32, t0, identity))  # another run's call: not counted
        now = tally(ledger, truth)
    assert now == RunTally(
        calls=6,
        push_complete=False,
        stored_realtime=1,
        stored_reconciliation=1,
        terminal=Counter({"NO_RECORDING_EXPECTED": 1}),
        pending=1,
        open=1,
        unseen=1,
    )
    assert not now.settled and "(pushing)" in now.line(3.0)
    done = RunTally(calls=2, push_complete=True, stored_realtime=1, terminal=Counter({"X": 1}))
    assert done.settled and not RunTally(calls=3, push_complete=True, stored_realtime=2, pending=1).settled
    assert [d.isoformat() for d in call_days(truth)] == ["2026-11-25", "2026-11-26"]


def test_make_run_settles_every_call_and_the_report_reads_100_percent(
    ingest_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ocp_ingest_dev.stack import LOCAL_CADENCE, LocalStack

    for name, value in LOCAL_CADENCE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OCP_INGEST_RECONCILIATION_SCHEDULE", "* * * * *")  # each minute: a shorter test
    groups = ",".join(sorted({f.ocp_group for f in FLOWS}))
    monkeypatch.setenv("OCP_INGEST_SWEEP_OCP_GROUPS", groups)  # what the stack sets (restored after)
    monkeypatch.setenv("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", str(_free_port()))
    monkeypatch.setenv("AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT", str(_free_port()))
    stack = LocalStack(
        port=_free_port(),
        receiver_port=_free_port(),
        simulator_port=_free_port(),
        calls=60,
        window_hours=1.0,
        mean_duration_s=5.0,
        push_rate=20.0,
        seed=7,
        airflow_home=tmp_path / "airflow_home",
        log_path=tmp_path / "stack.log",
        settings_env=LOCAL_CADENCE,
    )
    out = io.StringIO()
    started = time.monotonic()
    try:
        stack.start()
        assert stack.wait_until_healthy(300), (tmp_path / "stack.log").read_text()[-3000:]
        settled = stack.watch(started, 2.0, out, timeout_s=600)
    finally:
        stack.stop()
    text = out.getvalue()
    assert settled, text + (tmp_path / "stack.log").read_text()[-3000:]
    assert "All 60 calls settled" in text and "100.0% complete" in text and "run success" in text, text
    truth = json.loads(stack.truth_path.read_text())
    assert truth["push_complete"] and len(truth["calls"]) == 60
    html = [line.strip() for line in text.splitlines() if line.strip().startswith("file://")]
    assert html and all(Path(h.removeprefix("file://").replace("%3D", "=")).is_file() for h in html)
    with open_ledger(Settings.from_env()) as ledger:
        records = ledger.get_many([c["dialog_id"] for c in truth["calls"]])
    sources = Counter(r.ingestion_source for r in records.values() if r.s3_stored)
    # Both stages did work.
    assert sources[IngestionSource.REALTIME] and sources[IngestionSource.RECONCILIATION], sources
    assert all(r.s3_stored or r.terminal_reason for r in records.values()) and len(records) == 60


def test_the_embedded_scheduler_idles_a_quarter_second_unless_the_caller_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ocp_ingest_dev.stack.standalone import SCHEDULER_IDLE_SLEEP, airflow_environment

    monkeypatch.delenv(SCHEDULER_IDLE_SLEEP, raising=False)
    assert airflow_environment(Path("/p"), 8080)[SCHEDULER_IDLE_SLEEP] == "0.25"
    monkeypatch.setenv(SCHEDULER_IDLE_SLEEP, "1")
    assert airflow_environment(Path("/p"), 8080)[SCHEDULER_IDLE_SLEEP] == "1"
