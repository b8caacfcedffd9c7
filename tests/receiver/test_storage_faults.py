"""The receiver when its own storage fails: a real full disk (a small tmpfs as the landing root).

A push that meets a full landing disk is answered 507 with Retry-After, keeps no bytes and sets nothing in
the ledger; once space returns, the same push lands. Events are kept in the ledger, so the full disk
refuses none of them, and a redelivered batch records each event once. The tmpfs needs root and mounts;
where they are not allowed the test is skipped with the reason (CI and these machines run as root).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ocp_ingest.infrastructure import storage_full
from ocp_ingest_dev.disk import DiskUnavailable, fill, mount_tmpfs
from ocp_ingest_dev.simulator import audio
from ocp_ingest_dev.simulator.calls import SimCall
from tests.receiver.conftest import Receiver

TMPFS_BYTES = 1024 * 1024


@pytest.fixture
def landing_disk(ingest_home: Path) -> Iterator[Path]:
    """The landing root on its own 1 MiB tmpfs, unmounted afterwards."""
    try:
        with mount_tmpfs(ingest_home / "landing", TMPFS_BYTES) as root:
            yield root
    except DiskUnavailable as exc:
        pytest.skip(f"needs root and mounts (as the download pod's read-only-root test): {exc}")


def test_a_push_on_a_full_landing_disk_is_507_keeps_nothing_and_lands_once_space_returns(
    landing_disk: Path, receiver: Receiver, calls: list[SimCall]
) -> None:
    call = calls[0]
    body = audio.wav_bytes(call.dialog_id, max(call.duration_ms, 4000))
    assert len(body) > 16 * 1024
    filler = fill(landing_disk, leave_bytes=8 * 1024)

    refused = receiver.put_audio(call, body)
    assert refused.status_code == 507, refused.text
    assert int(refused.headers["retry-after"]) > 0
    assert "full" in refused.json()["error"]
    assert receiver.landing_files() == []  # no partial object under any name
    record = receiver.ledger.get(call.dialog_id)
    assert record is None or not record.file_received
    assert (
        'ocp_receiver_storage_unavailable_total{reason="full"} 1'
        in receiver.client.get(f"{receiver.url}/metrics").text
    )
    assert receiver.client.get(f"{receiver.url}/healthz").status_code == 200  # health still answers

    filler.unlink()
    landed = receiver.put_audio(call, body)
    assert landed.status_code == 200 and landed.json()["status"] == "received", landed.text
    assert len(receiver.landing_files()) == 2  # the recording and its sidecar
    record = receiver.ledger.get(call.dialog_id)
    assert record is not None and record.file_received


def test_events_on_a_full_landing_disk_are_accepted_once_each(
    landing_disk: Path, receiver: Receiver, calls: list[SimCall]
) -> None:
    """Events are kept in the ledger, not in landing: a full landing disk refuses recordings, not them."""
    events = [e for c in calls for e in c.events()]
    fill(landing_disk, leave_bytes=0)
    accepted = receiver.post_events(events)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["accepted"] == len(events) and accepted.json()["duplicates"] == 0
    assert receiver.cdr_inbox() == sorted(e.event_id for e in events)
    again = receiver.post_events(events)
    assert again.json()["duplicates"] == len(events)
    assert receiver.cdr_inbox() == sorted(e.event_id for e in events)


def test_storage_full_is_recognised_through_wrapping_exceptions() -> None:
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as exc:
            raise RuntimeError("upload failed") from exc
    except RuntimeError as wrapped:
        assert storage_full(wrapped)
    assert not storage_full(OSError(5, "I/O error"))
    assert not storage_full(ValueError("no"))


def test_a_push_the_ledger_cannot_record_is_503_and_leaves_no_landed_bytes(
    ingest_home: Path, monkeypatch: pytest.MonkeyPatch, calls: list[SimCall]
) -> None:
    """The ledger stays locked past its busy timeout: the landed bytes are removed again (nothing kept
    without its FILE_RECEIVED row), the push is 503 with Retry-After, and lands once the ledger is free."""
    import sqlite3

    import httpx

    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import Ledger
    from ocp_ingest.ledger.sqlite import SqliteLedgerBackend
    from ocp_ingest.receiver.app import create_app
    from ocp_ingest.receiver.guard import ReceiverLimits
    from ocp_ingest.receiver.server import start_receiver
    from tests.receiver.conftest import SECRET

    settings = Settings.from_env()
    ledger = Ledger(SqliteLedgerBackend(settings.ledger_sqlite_path, busy_timeout_s=0.3))
    limits = ReceiverLimits()
    server = start_receiver(create_app(settings, secret=SECRET, ledger=ledger, limits=limits), limits=limits)
    locker = sqlite3.connect(settings.ledger_sqlite_path, isolation_level=None)
    try:
        with httpx.Client(timeout=30) as client:
            receiver = Receiver(server.url, settings, ledger, ingest_home, client)
            locker.execute("BEGIN EXCLUSIVE")
            refused = receiver.put_audio(calls[0])
            assert refused.status_code == 503, refused.text
            assert "retry-after" in refused.headers
            assert receiver.landing_files() == []
            locker.execute("COMMIT")
            landed = receiver.put_audio(calls[0])
            assert landed.status_code == 200 and landed.json()["status"] == "received", landed.text
    finally:
        locker.close()
        server.stop()
        ledger.close()
