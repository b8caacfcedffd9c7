"""The audit outbox, on SQLite and DynamoDB (moto): a transition and its audit event commit together, and
publishing is idempotent by event id, whatever step a SIGKILL interrupts."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ocp_ingest.audit import outbox
from ocp_ingest.audit.sink import AuditSink
from ocp_ingest.audit.tables import read_events
from ocp_ingest.config import Settings
from ocp_ingest.ledger import IngestionSource, Ledger
from ocp_ingest.ledger.base import OutboxEntry
from ocp_ingest.ledger.transitions import CdrEnd, ExportRequested, Stored
from ocp_ingest.report.verify import verify
from tests.conftest import project_env
from tests.ledger import outbox_crash_child as child
from tests.ledger.conftest import make_backend
from tests.ledger.test_contract import IDENTITY, T0, did, stored

ROOT = Path(__file__).resolve().parents[2]
FAR_FUTURE = "9999"


def audited(spec: dict[str, str], audit_url: str) -> Ledger:
    return Ledger(make_backend(spec), audit=AuditSink(audit_url, actor="test"))


def trail(audit_url: str) -> list[dict]:
    today = datetime.now(UTC).date()
    return read_events(audit_url, T0.date() - timedelta(days=1), today + timedelta(days=1)).to_pylist()


def assert_trail_matches_ledger(ledger: Ledger, audit_url: str, dialog_ids: list[str]) -> None:
    """No duplicate event id; every call has one event per applied transition (versions 1..version)."""
    events = trail(audit_url)
    ids = Counter(e["event_id"] for e in events)
    assert [i for i, n in ids.items() if n > 1] == []
    for dialog_id in dialog_ids:
        record = ledger.get(dialog_id)
        assert record is not None
        versions = sorted(e["ledger_version"] for e in events if e["dialog_id"] == dialog_id)
        assert versions == list(range(1, record.version + 1)), dialog_id
    assert ledger.backend.outbox_list(FAR_FUTURE, 1000) == []


@pytest.mark.transactions
def test_an_applied_transition_is_in_the_outbox_before_any_flush(ledger_spec, tmp_path: Path) -> None:
    audit_url = (tmp_path / "audit").as_uri()
    with audited(ledger_spec, audit_url) as ledger:
        d = did(1)
        ledger.apply(CdrEnd(d, T0, 1000, "NORMAL", IDENTITY))
        ledger.apply(stored(d))
        ledger.apply(stored(d))  # already stored: nothing written, no event
        waiting = ledger.backend.outbox_list(FAR_FUTURE, 100)
        assert sorted(json.loads(e.body)["transition"] for e in waiting) == ["CdrEnd", "Stored"]
        assert trail(audit_url) == []  # not published yet, but durable
        ledger.flush_audit()
        assert_trail_matches_ledger(ledger, audit_url, [d])


def test_no_audit_events_means_no_outbox_rows(ledger_spec) -> None:
    with Ledger(make_backend(ledger_spec)) as ledger:  # OCP_INGEST_AUDIT_EVENTS=false: no observer
        ledger.apply(CdrEnd(did(2), T0, 1000, "NORMAL", IDENTITY))
        ledger.apply_many([ExportRequested(did(2), "exp-1"), CdrEnd(did(3), T0, 1000, "NORMAL", IDENTITY)])
        assert ledger.backend.outbox_list(FAR_FUTURE, 100) == []
        assert ledger.get(did(2)).export_id == "exp-1"


def test_outbox_entries_are_listed_oldest_first_before_a_bound_and_deleted(ledger_spec) -> None:
    """Adding, listing and deleting entries takes no transaction, so this runs on every backend, dynalite
    too: the sparse ``audit_outbox`` index lists entries across its 16 shards oldest first, before a bound, up
    to a limit; the call indexes never see them."""
    with Ledger(make_backend(ledger_spec)) as ledger:
        backend = ledger.backend
        ledger.apply(CdrEnd(did(7000), T0, 1000, "NORMAL", IDENTITY))  # a pending call beside the entries
        entries = [
            OutboxEntry(f"{n:032x}", json.dumps({"n": n}), f"2026-11-20T09:00:{n:02d}.000000Z")
            for n in range(40)
        ]
        backend.outbox_add(entries[::-1])  # 40: two BatchWriteItem calls, newest first
        assert backend.outbox_list(FAR_FUTURE, 100) == entries
        assert backend.outbox_list(FAR_FUTURE, 10) == entries[:10]
        assert backend.outbox_list(entries[5].created_at, 100) == entries[:5]  # the bound is exclusive
        later = T0 + timedelta(days=1)
        assert [c.dialog_id for c in ledger.pending(timedelta(0), 100, now=later)] == [did(7000)]
        assert [c.dialog_id for c in ledger.calls_started_between(T0 - timedelta(1), later)] == [did(7000)]
        backend.outbox_delete([e.event_id for e in entries[:35]])
        assert backend.outbox_list(FAR_FUTURE, 100) == entries[35:]


@pytest.mark.transactions
def test_a_large_batch_is_several_transactions_each_record_with_its_event(
    ledger_spec, tmp_path: Path
) -> None:
    """60 records: DynamoDB commits them in transactions of 50 (+50 events); a stale record is re-applied."""
    audit_url = (tmp_path / "audit").as_uri()
    ids = [did(1000 + i) for i in range(60)]
    with audited(ledger_spec, audit_url) as ledger:
        ledger.apply_many([CdrEnd(d, T0, 1000, "NORMAL", IDENTITY) for d in ids])
        backend = ledger.backend
        real_get_many = backend.get_many

        def stale_get_many(dialog_ids):  # another writer changes one record between read and write
            found = real_get_many(dialog_ids)
            ledger.apply(ExportRequested(ids[55], "exp-other"))
            return found

        backend.get_many = stale_get_many  # type: ignore[method-assign]
        results = ledger.apply_many([stored(d) for d in ids])
        backend.get_many = real_get_many  # type: ignore[method-assign]
        assert all(r.outcome.value == "APPLIED" for r in results)
        assert len(backend.outbox_list(FAR_FUTURE, 1000)) == 60 + 1 + 60
        ledger.flush_audit()
        assert_trail_matches_ledger(ledger, audit_url, ids)


@pytest.mark.transactions
def test_a_re_publish_after_a_crash_between_parquet_and_delete_writes_nothing_twice(
    ledger_spec, tmp_path: Path
) -> None:
    audit_url = (tmp_path / "audit").as_uri()
    with audited(ledger_spec, audit_url) as ledger:
        ids = [did(2000 + i) for i in range(5)]
        ledger.apply_many([CdrEnd(d, T0, 1000, "NORMAL", IDENTITY) for d in ids])
        backend = ledger.backend
        real_delete = backend.outbox_delete

        def crash(event_ids):  # the Parquet file is written; the process "dies" before the delete
            raise KeyboardInterrupt

        backend.outbox_delete = crash  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            outbox.publish_entries(backend, audit_url, backend.outbox_list(FAR_FUTURE, 100))
        backend.outbox_delete = real_delete  # type: ignore[method-assign]
        assert len(trail(audit_url)) == 5 and len(backend.outbox_list(FAR_FUTURE, 100)) == 5

        result = ledger.publish_audit(grace=timedelta(0))
        assert result == 5
        again = outbox.publish_leftovers(backend, audit_url, grace=timedelta(0))
        assert again.events == 0
        assert_trail_matches_ledger(ledger, audit_url, ids)


@pytest.mark.transactions
def test_a_claimed_file_missing_some_of_its_events_gets_them_re_queued(ledger_spec, tmp_path: Path) -> None:
    """If a claim's file holds fewer events than the outbox says, those are claimed anew, never lost."""
    audit_url = (tmp_path / "audit").as_uri()
    with audited(ledger_spec, audit_url) as ledger:
        ids = [did(3000 + i) for i in range(4)]
        ledger.apply_many([CdrEnd(d, T0, 1000, "NORMAL", IDENTITY) for d in ids])
        backend = ledger.backend
        entries = backend.outbox_list(FAR_FUTURE, 100)
        claimed = backend.outbox_claim([e.event_id for e in entries], "c" * 32, outbox.now_iso())
        assert claimed == {e.event_id for e in entries}
        # An earlier publisher of this claim wrote only the first two (say it read the list half-way).
        outbox.write_claim(backend, audit_url, "c" * 32, entries[:2], outbox.Published())
        assert len(backend.outbox_list(FAR_FUTURE, 100)) == 2
        outbox.publish_leftovers(backend, audit_url, grace=timedelta(0))
        assert_trail_matches_ledger(ledger, audit_url, ids)


@pytest.mark.transactions
@pytest.mark.parametrize("step", ["store", "mark", "claim", "parquet", "delete", "none"])
def test_sigkill_at_each_step_loses_no_event_and_duplicates_none(
    ledger_spec, tmp_path: Path, step: str
) -> None:
    """A real child process killed with SIGKILL at the step; then the publisher and verify."""
    audit_url = (tmp_path / "audit").as_uri()
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    env = project_env()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.ledger.outbox_crash_child",
            json.dumps(ledger_spec),
            audit_url,
            step,
            str(recordings),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if step == "none":
        assert run.returncode == 0 and "completed" in run.stdout, run.stderr
    else:
        assert run.returncode == -9, (run.returncode, run.stderr[-2000:])

    ids = [child.call_id(n) for n in range(child.CALLS)]
    with audited(ledger_spec, audit_url) as ledger:
        ledger.publish_audit(grace=timedelta(0))
        assert_trail_matches_ledger(ledger, audit_url, ids)
        settings = Settings(home=tmp_path, audit_url=audit_url)
        result = verify(ledger, settings, T0 - timedelta(days=1), T0 + timedelta(days=1))
        stored_now = [d for d in ids if ledger.get(d).s3_stored]
        assert result.checked == len(stored_now) and result.checked > 0
        assert [f for f in result.findings if f.kind == "audit_missing"] == []
        assert result.findings == []


@pytest.mark.transactions
def test_verify_counts_a_stored_event_still_in_the_outbox(ledger_spec, tmp_path: Path) -> None:
    """Committed with its transition but not published yet (the process died first): not AUDIT_MISSING."""
    audit_url = (tmp_path / "audit").as_uri()
    recording = tmp_path / "one.wav"
    recording.write_bytes(b"audio")
    sha = hashlib.sha256(b"audio").hexdigest()
    ledger = Ledger(make_backend(ledger_spec), audit=AuditSink(audit_url))
    d = did(4000)
    ledger.apply(CdrEnd(d, T0, 1000, "NORMAL", IDENTITY))
    ledger.apply(Stored(d, recording.as_uri(), sha, 5, IngestionSource.REALTIME, "wav", 1.0))
    settings = Settings(home=tmp_path, audit_url=audit_url)
    result = verify(ledger, settings, T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert trail(audit_url) == [] and result.checked == 1 and result.findings == []
    ledger.close()
    assert_trail_matches_ledger(Ledger(make_backend(ledger_spec)), audit_url, [d])


def test_the_cli_publishes_what_a_crashed_process_left(ingest_home: Path) -> None:
    from ocp_ingest.audit.events import AuditEvent
    from ocp_ingest.cli import main
    from ocp_ingest.ledger import open_ledger

    settings = Settings.from_env()
    event = AuditEvent(event_type="CDR_END", event_ts=datetime.now(UTC), dialog_id=did(5000), lob="retail")
    with Ledger(make_backend({"kind": "sqlite", "path": str(settings.ledger_sqlite_path)})) as ledger:
        ledger.backend.outbox_add([outbox.entry_for(event)])
    assert main(["audit", "publish", "--grace-seconds", "0"]) == 0
    assert [e["event_id"] for e in trail(settings.audit_url)] == [event.event_id]
    with open_ledger(settings) as ledger:
        assert ledger.backend.outbox_list(FAR_FUTURE, 10) == []


@pytest.mark.transactions
def test_racing_writers_and_publishers_leave_one_event_per_change(ledger_spec, tmp_path: Path) -> None:
    """Four writers (own ledgers, own sinks) race on the same calls and all publish, leftovers too, at once:
    every call has exactly one event per version, no event twice."""
    from concurrent.futures import ThreadPoolExecutor

    audit_url = (tmp_path / "audit").as_uri()
    ids = [did(6000 + i) for i in range(6)]

    def writer(n: int) -> None:
        with audited(ledger_spec, audit_url) as ledger:
            for round_ in range(3):
                ledger.apply_many([CdrEnd(d, T0, 1000, "NORMAL", IDENTITY) for d in ids])
                for d in ids:
                    ledger.apply(ExportRequested(d, f"exp-{n}-{round_}"))
                ledger.flush_audit()
                ledger.publish_audit(grace=timedelta(0))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, range(4)))
    with audited(ledger_spec, audit_url) as ledger:
        ledger.publish_audit(grace=timedelta(0))
        assert_trail_matches_ledger(ledger, audit_url, ids)
        assert all(ledger.get(d).version > 3 for d in ids)
