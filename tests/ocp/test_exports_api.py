"""The Exports API rules, simulator and client against each other over real HTTP on loopback."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

import pytest
from ocp_test_support import FAST_RETRY, PAT, small_config, window_start

from ocp_ingest.ocp import (
    ExportConflict,
    ExportExpired,
    ExportFailed,
    ExportNotReady,
    InvalidRequest,
    InvalidWindow,
    NotFound,
    OcpClient,
    PatAuth,
    iter_file_chunks,
    wire,
)
from ocp_ingest_dev.simulator import Simulator
from tests.sim_support import valid_cdrs

HOUR = timedelta(hours=1)


def _calls(sim: Simulator, group: str, hours: int = 2) -> list:
    lo, hi = sim.config.window_start, sim.config.window_start + hours * HOUR
    return [
        c
        for c in sim.calls
        if c.ocp_group == group and lo.timestamp() * 1000 <= c.start < hi.timestamp() * 1000
    ]


def test_window_minutes_are_ignored(client: OcpClient, sim: Simulator) -> None:
    start = sim.config.window_start
    export = client.create_export(
        "ocp-banking", start + timedelta(minutes=59), start + 2 * HOUR + timedelta(seconds=30)
    )
    assert (export.start, export.end) == (start, start + 2 * HOUR)
    assert export.status is wire.ExportStatus.PENDING


@pytest.mark.parametrize(
    ("offset", "length"),
    [(timedelta(minutes=10), timedelta(minutes=40)), (timedelta(0), 2 * 24 * HOUR + HOUR), (HOUR, -HOUR)],
    ids=["under-1h-after-truncation", "over-2-days", "reversed"],
)
def test_window_out_of_bounds_is_422(
    client: OcpClient, sim: Simulator, offset: timedelta, length: timedelta
) -> None:
    start = sim.config.window_start + offset
    with pytest.raises(InvalidWindow, match="export window") as info:
        client.create_export("ocp-banking", start, start + length)
    assert info.value.status_code == 422


def test_two_days_is_accepted(client: OcpClient, sim: Simulator) -> None:
    start = sim.config.window_start - 46 * HOUR
    export = client.create_export("ocp-cards", start, start + 48 * HOUR)
    assert export.end - export.start == timedelta(days=2)


def test_bad_payload_is_a_validation_error(client: OcpClient, sim: Simulator) -> None:
    with pytest.raises(InvalidRequest):
        client.create_export("../etc", sim.config.window_start, sim.config.window_start + HOUR)


def test_one_export_per_group_while_other_groups_proceed(client: OcpClient, sim: Simulator) -> None:
    start, end = sim.config.window_start, sim.config.window_start + 2 * HOUR
    first = client.create_export("ocp-banking", start, end)
    with pytest.raises(ExportConflict) as info:
        client.create_export("ocp-banking", start, end)
    assert info.value.status_code == 409
    assert info.value.active_export_id == first.export_id  # type: ignore[attr-defined]
    other = client.create_export("ocp-cards", start, end)  # another group is not blocked
    assert other.status.is_active
    assert [e.export_id for e in client.list_exports("ocp-banking")] == [first.export_id]
    with pytest.raises(ExportNotReady):
        client.list_files_page(first.export_id)
    client.wait_for_export(first.export_id, poll_interval_s=0.05, timeout_s=5)
    again = client.create_export("ocp-banking", start, end)  # allowed once the first one is done
    assert again.export_id != first.export_id


def test_status_progression_and_pagination(client: OcpClient, sim: Simulator) -> None:
    start, end = sim.config.window_start, sim.config.window_start + 2 * HOUR
    export = client.create_export("ocp-banking", start, end, [wire.DataType.RECORDINGS])
    seen = {export.status}
    while export.status is not wire.ExportStatus.COMPLETED:
        time.sleep(0.03)
        export = client.get_export(export.export_id)
        seen.add(export.status)
    assert wire.ExportStatus.PROCESSING in seen
    pages, token = [], None
    while True:
        page = client.list_files_page(export.export_id, token, page_size=3)
        pages.append(page.files)
        token = page.next_page_token
        if token is None:
            break
    files = [f for p in pages for f in p]
    assert len(pages) > 2 and all(len(p) == 3 for p in pages[:-1])
    expected = {c.dialog_id for c in _calls(sim, "ocp-banking") if c.has_recording}
    assert [f.dialog_id for f in files] == sorted(expected, key=[f.dialog_id for f in files].index)
    assert {f.dialog_id for f in files} == expected and len(files) == len(expected)
    assert export.counts.skipped == len([c for c in _calls(sim, "ocp-banking") if not c.has_recording])
    assert [f.file_id for f in client.iter_files(export.export_id, page_size=4)] == [f.file_id for f in files]
    for f in files:
        assert wire.parse_recording_filename(f.name).dialog_id == f.dialog_id
    with pytest.raises(InvalidRequest):
        client.list_files_page(export.export_id, page_token="bm90LWEtdG9rZW4=")


def test_expired_export_is_gone(client: OcpClient, sim: Simulator) -> None:
    start = sim.config.window_start
    export = client.create_export("ocp-banking", start, start + 2 * HOUR)
    export = client.wait_for_export(export.export_id, poll_interval_s=0.05, timeout_s=5)
    first = next(client.iter_files(export.export_id))
    sim.clock.advance(sim.config.exports.ttl_s + 1)  # a day later
    assert client.get_export(export.export_id).status is wire.ExportStatus.EXPIRED
    with pytest.raises(ExportExpired):
        client.wait_for_export(export.export_id, poll_interval_s=0.05, timeout_s=1)
    with pytest.raises(ExportExpired):
        client.list_files_page(export.export_id)
    with pytest.raises(ExportExpired), client.open_file(export.export_id, first.file_id):
        pass
    with pytest.raises(NotFound):
        client.get_export("exp-unknown")


def test_failed_export(client: OcpClient, sim: Simulator) -> None:
    sim.exports.fail_next("ocp-cards")
    start = sim.config.window_start
    export = client.create_export("ocp-cards", start, start + HOUR)
    with pytest.raises(ExportFailed):
        client.wait_for_export(export.export_id, poll_interval_s=0.05, timeout_s=5)
    retry = client.create_export("ocp-cards", start, start + HOUR)  # a failed export does not block the group
    assert (
        client.wait_for_export(retry.export_id, poll_interval_s=0.05, timeout_s=5).status.value == "COMPLETED"
    )


def test_calls_older_than_retention_are_not_exportable(make_sim) -> None:
    running = make_sim(small_config(window_start=window_start() - timedelta(days=61)))
    sim = running.sim
    with OcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY) as client:
        start = sim.config.window_start
        export = client.create_export("ocp-banking", start, start + 2 * HOUR, ["recordings", "dialog_end"])
        export = client.wait_for_export(export.export_id, poll_interval_s=0.05, timeout_s=5)
        assert export.counts.dialogs == 0
        assert [f.data_type for f in client.iter_files(export.export_id)] == ["dialog_end", "dialog_end"]
        sim.clock.advance(-2 * 86400)  # two days earlier the same calls were still within retention
        export = client.create_export("ocp-cards", start, start + 2 * HOUR, ["recordings"])
        export = client.wait_for_export(export.export_id, poll_interval_s=0.05, timeout_s=5)
        assert export.counts.dialogs == len(_calls(sim, "ocp-cards")) > 0


def test_cdr_export_is_the_manifest_of_every_call(client: OcpClient, sim: Simulator, tmp_path) -> None:
    start = sim.config.window_start
    export = client.create_export("ocp-banking", start, start + 2 * HOUR, [wire.DataType.DIALOG_END])
    export = client.wait_for_export(export.export_id, poll_interval_s=0.05, timeout_s=5)
    files = list(client.iter_files(export.export_id))
    assert [f.name for f in files] == [
        f"cdr_ocp-banking_{(start + i * HOUR).strftime('%Y%m%dT%H')}.ndjson" for i in range(2)
    ]
    events = []
    for f in files:
        body = b"".join(iter_file_chunks(client, export.export_id, f))  # as reconciliation reads a CDR file
        assert hashlib.sha256(body).hexdigest() == f.sha256
        events += valid_cdrs(body.splitlines())
    assert {e.message_type for e in events} == {wire.MessageType.DIALOG_END}
    # Every call OCP knows, with or without a recording, whatever happened to its pushes.
    assert {e.id for e in events} == {c.dialog_id for c in _calls(sim, "ocp-banking")}
    by_id = {c.dialog_id: c for c in sim.calls}
    assert all(e.duration == by_id[e.id].duration_ms and e.end_type == by_id[e.id].end_type for e in events)
