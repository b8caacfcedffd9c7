"""Several receiver processes on one port (``ocp-ingest receiver --reuse-port``): one per core.

Both processes answer on the shared port (the kernel spreads new connections), both record into the one
ledger, and a receiver started without the flag on a port already taken fails at start, not silently.
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx

from ocp_ingest.audit.tables import read_events
from ocp_ingest.config import Settings
from ocp_ingest.ledger import open_ledger
from ocp_ingest.ocp import wire
from ocp_ingest.receiver import auth as signing
from ocp_ingest_dev.simulator.calls import SimCall
from tests.receiver.conftest import SECRET
from tests.receiver.test_receiver_killed import ReceiverProcess, _free_port


def _instances_answering(url: str, want: int, timeout_s: float = 180.0) -> set[str]:
    """The receiver instances seen on new connections to ``url`` until ``want`` are (or the timeout)."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s  # each process imports for seconds, more on a loaded machine
    while len(seen) < want and time.monotonic() < deadline:
        try:
            with httpx.Client() as fresh:  # a new connection each time: the kernel picks a process for it
                seen.add(fresh.get(f"{url}/healthz", timeout=5).json()["instance"])
        except httpx.HTTPError:
            time.sleep(0.2)
    return seen


def test_receivers_sharing_a_port_both_answer_and_record_into_one_ledger(
    ingest_home: Path, calls: list[SimCall]
) -> None:
    port = _free_port()
    first, second = ReceiverProcess(port, "--reuse-port"), ReceiverProcess(port, "--reuse-port")
    instances: set[str] = set()
    try:
        first.start()
        second.start()
        assert second.proc is not None and second.proc.poll() is None, "the second bound the same port"
        instances = _instances_answering(first.url, 2)
        assert len(instances) == 2, "both processes take connections"
        for call in calls:
            body = wire.event_body(call.events())
            with httpx.Client() as fresh:
                response = fresh.post(
                    f"{first.url}/v1/events", content=body, headers=signing.event_headers(SECRET, body)
                )
            assert response.status_code == 200, response.text
    finally:
        second.stop()  # a clean stop publishes each process's audit events
        first.stop()
    settings = Settings.from_env()
    ledger = open_ledger(settings)
    try:
        records = ledger.get_many([c.dialog_id for c in calls])
    finally:
        ledger.close()
    assert set(records) == {c.dialog_id for c in calls}
    assert all(r.has_cdr_end for r in records.values())
    # Every change reached the audit trail, attributed to one of the two processes.
    events = read_events(settings.audit_url, date(2026, 11, 20), datetime.now(UTC).date() + timedelta(days=1))
    assert set(events.column("dialog_id").to_pylist()) == {c.dialog_id for c in calls}
    assert set(events.column("actor").to_pylist()) <= instances


def test_a_receiver_without_the_flag_on_a_taken_port_fails_at_start(ingest_home: Path) -> None:
    port = _free_port()
    first = ReceiverProcess(port, "--reuse-port")
    try:
        first.start()
        late_receiver = ReceiverProcess(port)  # without --reuse-port
        late = subprocess.run(late_receiver.command, env=late_receiver.env, capture_output=True, timeout=180)
        assert late.returncode != 0
        assert b"address already in use" in late.stderr.lower()
    finally:
        first.stop()
