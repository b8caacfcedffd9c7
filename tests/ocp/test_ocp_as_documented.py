"""OCP as documented, not as simulated (issue #17): each legal behaviour is a simulator switch, driven
against the real client over loopback HTTP; the wire rules behind them are tested directly."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from ocp_test_support import FAST_RETRY, PAT, password_client, small_config

from ocp_ingest import ids
from ocp_ingest.airflow.triggers import ExportReadyTrigger
from ocp_ingest.ocp import (
    AsyncOcpClient,
    ExportExpired,
    ExportNotReady,
    OcpClient,
    PatAuth,
    RateLimited,
    RetryPolicy,
    ServiceUnavailable,
    Throttled,
    wire,
)
from ocp_ingest_dev.simulator import FaultSettings, RunningSimulator, SimCall, Simulator, serve
from tests.sim_support import valid_cdrs

HOUR = timedelta(hours=1)
DOCUMENTED_GROUP = "78977ae3796d73ce0df345f43df8df075daa54a6.1683276326110.63abf63debd946c4bbd4592bc3d800b"


def _event(group: str) -> dict[str, object]:
    return {
        "message_type": "dialog_start",
        "event_id": "evt_1",
        "id": "AB" * 16,
        "group": group,
        "ocp_group": "ocp-banking",
        "connection_id": "c1",
        "time": 1683276326110,
        "flow": {"name": "f", "account_id": "acc-1"},
    }


def _completed(
    client: OcpClient, sim: Simulator, group: str, types: list[str], hours: int = 2
) -> wire.Export:
    start = sim.config.window_start
    export = client.create_export(group, start, start + hours * HOUR, types)
    return client.wait_for_export(export.export_id, poll_interval_s=0.05, timeout_s=10)


def _recorded(sim: Simulator, group: str, hours: int = 2) -> set[str]:
    lo = sim.config.window_start.timestamp() * 1000
    hi = lo + hours * 3600 * 1000
    return {c.dialog_id for c in sim.calls if c.ocp_group == group and c.has_recording and lo <= c.start < hi}


# ------------------------------------------------------------------------- #4 documented dialog groups
def test_the_documented_dialog_group_id_is_accepted() -> None:
    assert len(DOCUMENTED_GROUP) == 86
    assert wire.CdrEvent.model_validate(_event(DOCUMENTED_GROUP)).group == DOCUMENTED_GROUP
    assert wire.CdrEvent.model_validate(_event("0" * 32)).group == "0" * 32  # plain tokens still are


@pytest.mark.parametrize(
    "hostile",
    ["..", ".", "a..b", ".abc", "abc.", "a/b", "a\\b", "a.b/..", "a\x00b", "a b", "", "a" * 129, "ü.1"],
)
def test_dialog_group_ids_stay_safe_by_construction(hostile: str) -> None:
    # Whatever OCP sends, a group id that passes can never be a separator, a dot segment or a control byte.
    with pytest.raises(ValueError, match="group"):
        wire.CdrEvent.model_validate(_event(hostile))
    with pytest.raises(ids.InvalidIdentifier):
        wire.dialog_group(hostile)


def test_simulator_documented_group_ids_reach_the_client_through_cdr_exports(make_sim) -> None:
    running = make_sim(small_config(documented_group_ids=True))
    sim = running.sim
    assert all(len(c.dialog_group) == 86 and c.dialog_group.count(".") == 2 for c in sim.calls)
    with OcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY, timeout=10) as client:
        export = _completed(client, sim, "ocp-cards", ["dialog_start", "dialog_end"])
        events = []
        for item in client.iter_files(export.export_id):
            with client.open_file(export.export_id, item.file_id) as response:
                events += valid_cdrs(response.read().splitlines())
    by_id = {c.dialog_id: c for c in sim.calls}
    assert events and all(e.group == by_id[e.dialog_id].dialog_group for e in events)


def test_default_simulator_keeps_its_32_hex_group_ids(sim: Simulator) -> None:
    assert all(ids.DIALOG_ID_RE.fullmatch(c.dialog_group) for c in sim.calls)


# ------------------------------------------------------------------------------ #2 name-only listings
def _recording_entry(**fields: object) -> dict[str, object]:
    name = wire.recording_filename("ocp-banking", "acc-1", 1700000000000, "ab" * 16)
    return {"file_id": "f1", "name": name, "size": 1, "sha256": "0" * 64, "data_type": "recordings", **fields}


def test_a_recording_listed_by_name_only_gets_its_call_from_the_name() -> None:
    item = wire.ExportFile.model_validate(_recording_entry())
    assert (item.dialog_id, item.ocp_group, item.account_id, item.dialog_timestamp) == (
        "AB" * 16,
        "ocp-banking",
        "acc-1",
        1700000000000,
    )
    # A listed id that agrees (case aside) is kept canonical.
    assert wire.ExportFile.model_validate(_recording_entry(dialog_id="ab" * 16)).dialog_id == "AB" * 16


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"dialog_id": "CD" * 16}, "contradicts its name"),
        ({"name": "something-else.wav"}, "no dialog_id"),
        ({"name": "x.wav", "dialog_id": "not-a-dialog-id"}, "dialog_id must be 32 hex"),
    ],
    ids=["name-and-field-disagree", "no-name-no-field", "bad-field"],
)
def test_listing_entries_that_name_no_call_are_refused_alone(fields: dict[str, object], reason: str) -> None:
    good = _recording_entry(file_id="good")
    page = wire.FilePage.model_validate({"files": [_recording_entry(**fields), good]})
    assert [f.file_id for f in page.files] == ["good"]
    assert len(page.refused) == 1 and reason in page.refused[0].reason
    assert page.refused[0].entry["file_id"] == "f1"
    with pytest.raises(ValueError, match=reason):
        wire.ExportFile.model_validate(_recording_entry(**fields))


def test_cdr_files_need_no_dialog_id() -> None:
    entry = {"file_id": "c", "name": "cdr.ndjson", "size": 1, "sha256": "0" * 64, "data_type": "ALL"}
    assert wire.ExportFile.model_validate(entry).dialog_id is None


def test_simulator_name_only_listing_is_read_by_the_client(make_sim, caplog) -> None:
    running = make_sim(small_config(exports=_exports(name_only_listings=True)))
    sim = running.sim
    with OcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY, timeout=10) as client:
        export = _completed(client, sim, "ocp-banking", ["recordings"])
        raw = httpx.get(
            running.url + wire.export_files_path(export.export_id), headers={wire.PAT_HEADER: PAT}
        ).json()
        assert raw["files"] and all(set(e) & {"dialog_id", "ocp_group"} == set() for e in raw["files"])
        with caplog.at_level(logging.ERROR):
            files = list(client.iter_files(export.export_id, page_size=3))
    assert {f.dialog_id for f in files} == _recorded(sim, "ocp-banking")
    assert all(f.name == sim.calls_by_id[f.dialog_id].recording_filename for f in files)
    assert "refused" not in caplog.text


def test_client_logs_refused_listing_entries(caplog) -> None:
    good, bad = _recording_entry(file_id="good"), _recording_entry(dialog_id="CD" * 16)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"files": [bad, good], "next_page_token": None})

    transport = httpx.MockTransport(handler)
    with (
        OcpClient("http://ocp.test", PatAuth(PAT), transport=transport) as client,
        caplog.at_level(logging.ERROR, logger="ocp_ingest.ocp.client"),
    ):
        files = list(client.iter_files("exp.1"))
    assert [f.file_id for f in files] == ["good"]
    assert "listing entry refused" in caplog.text and "contradicts" in caplog.text


# ------------------------------------------------------------------------------ #1 opaque export ids
def _exports(**switches: object):  # an ExportSettings like small_config's, with switches on
    settings = small_config().exports
    for name, value in switches.items():
        setattr(settings, name, value)
    return settings


@pytest.mark.parametrize(
    ("opaque", "segment"),
    [
        ("exp.20261202.0001", "exp.20261202.0001"),
        ("a/b?c#d", "a%2Fb%3Fc%23d"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("x" * 300, "x" * 300),
    ],
)
def test_opaque_ids_become_one_encoded_path_segment(opaque: str, segment: str) -> None:
    assert wire.export_path(opaque) == f"/v1/exports/{segment}"
    assert wire.export_file_path("e", opaque) == f"/v1/exports/e/files/{segment}"
    assert httpx.URL("https://ocp.test" + wire.export_path(opaque)).raw_path.decode().endswith(segment)


def test_simulator_opaque_export_ids_download_end_to_end(make_sim) -> None:
    running = make_sim(small_config(exports=_exports(opaque_ids=True)))
    sim = running.sim
    with OcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY, timeout=10) as client:
        export = _completed(client, sim, "ocp-insurance", ["recordings", "ALL"])
        assert "." in export.export_id and len(export.export_id) > 64
        assert client.get_export(export.export_id).export_id == export.export_id
        files = list(client.iter_files(export.export_id, page_size=2))
        assert files and all("." in f.file_id for f in files)
        for item in files:
            with client.open_file(export.export_id, item.file_id) as response:
                assert hashlib.sha256(response.read()).hexdigest() == item.sha256
    assert {f.dialog_id for f in files if f.dialog_id} == _recorded(sim, "ocp-insurance")


def test_async_client_and_trigger_take_opaque_ids(make_sim, monkeypatch) -> None:
    running = make_sim(small_config(exports=_exports(opaque_ids=True)))
    _ocp_connection(monkeypatch, running)

    async def scenario() -> dict:
        async with AsyncOcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY) as c:
            start = running.sim.config.window_start
            export = await c.create_export("ocp-cards", start, start + HOUR)
        return await _first_event(ExportReadyTrigger(export.export_id, poll_interval_s=0.05))

    event = asyncio.run(scenario())
    assert event["status"] == "COMPLETED" and len(event["export_id"]) > 64


def test_default_simulator_ids_keep_their_form(client: OcpClient, sim: Simulator) -> None:
    export = _completed(client, sim, "ocp-cards", ["recordings"])
    assert export.export_id.startswith("exp-") and "." not in export.export_id
    assert all(f.file_id == f"rec-{f.dialog_id}" for f in client.iter_files(export.export_id))


# ---------------------------------------------------------------------- CDR selection by event time
def _calls_across_the_hour(sim_calls: list[SimCall], window_start_ms: int) -> list[SimCall]:
    """Two calls of ocp-cards: one crosses the end of the first hour, one crosses its start."""
    first, second = [c for c in sim_calls if c.ocp_group == "ocp-cards"][:2]
    hour_end = window_start_ms + 3600_000
    return [
        replace(first, start=hour_end - 1000, duration_ms=5000),  # starts in hour 1, ends in hour 2
        replace(second, start=window_start_ms - 1000, duration_ms=5000),  # starts before, ends in hour 1
    ]


@pytest.fixture
def crossing() -> Iterator[tuple[RunningSimulator, list[SimCall]]]:
    def make(selection: str) -> tuple[RunningSimulator, list[SimCall]]:
        config = small_config(exports=_exports(cdr_selection=selection))
        template = Simulator(config)
        calls = _calls_across_the_hour(template.calls, int(config.window_start.timestamp() * 1000))
        ctx = serve(Simulator(config, calls=calls))
        contexts.append(ctx)
        return ctx.__enter__(), calls

    contexts: list = []
    yield make  # type: ignore[misc]
    for ctx in contexts:
        ctx.__exit__(None, None, None)


def _dialog_ends_of_first_hour(running: RunningSimulator) -> set[str]:
    sim = running.sim
    with OcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY, timeout=10) as client:
        export = _completed(client, sim, "ocp-cards", ["dialog_end"], hours=1)
        ends = set()
        for item in client.iter_files(export.export_id):
            with client.open_file(export.export_id, item.file_id) as response:
                ends |= {e.dialog_id for e in valid_cdrs(response.read().splitlines())}
    return ends


def test_cdr_lines_selected_by_call_start_by_default(crossing) -> None:
    running, (leaving, _) = crossing("call_start")
    assert _dialog_ends_of_first_hour(running) == {leaving.dialog_id}


def test_cdr_lines_selected_by_their_own_event_time(crossing) -> None:
    # The call that starts in the hour and ends after it has no dialog_end in this export at all.
    running, (_, arriving) = crossing("event_time")
    assert _dialog_ends_of_first_hour(running) == {arriving.dialog_id}


# ------------------------------------------------------------------------------------- throttling
def test_quota_with_a_long_retry_after_hands_the_wait_to_the_caller(make_sim) -> None:
    faults = FaultSettings(quota_per_window=2, quota_retry_after_s=300)
    running = make_sim(small_config(faults=faults))
    with OcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY) as client:
        client.list_exports()
        client.list_exports()
        started = time.monotonic()
        with pytest.raises(Throttled) as info:
            client.list_exports()
    assert time.monotonic() - started < 2.0  # no worker slot spent sleeping on it
    assert info.value.retry_after_s == 300 and info.value.status_code == 429
    assert isinstance(info.value, RateLimited)  # callers that catch RateLimited still do


def test_http_date_retry_after_is_read_as_the_wait(make_sim) -> None:
    faults = FaultSettings(quota_per_window=1, quota_retry_after_s=600, retry_after_http_date=True)
    running = make_sim(small_config(faults=faults))
    with OcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY) as client:
        client.list_exports()
        with pytest.raises(Throttled) as info:
            client.list_exports()
    assert 590 <= info.value.retry_after_s <= 601


def test_a_quota_window_within_the_budget_is_waited_out(make_sim) -> None:
    running = make_sim(small_config(faults=FaultSettings(quota_per_window=2, quota_window_s=1.0)))
    with OcpClient(running.url, PatAuth(PAT), retry=RetryPolicy(max_total_s=10)) as client:
        for _ in range(5):
            client.list_exports()
    assert running.sim.faults.injected["429"] >= 1


def test_retries_without_retry_after_still_give_up_plainly(client: OcpClient, sim: Simulator) -> None:
    sim.faults.force(429, count=100)
    with pytest.raises(RateLimited) as info:
        client.list_exports()
    assert not isinstance(info.value, Throttled) and info.value.retry_after_s is None


def _ocp_connection(monkeypatch, running: RunningSimulator, **extra: object) -> None:
    conn = {"conn_type": "ocp", "host": running.url, "password": PAT, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_OCP_DEFAULT", json.dumps(conn))


async def _first_event(trigger: ExportReadyTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger fired no event")


def test_trigger_waits_in_the_triggerer_as_long_as_ocp_says(make_sim, monkeypatch) -> None:
    running = make_sim(small_config())
    # A client budget far below OCP's Retry-After: the client hands the wait over at once.
    _ocp_connection(monkeypatch, running, max_attempts=2, max_total_s=0.5)
    sim = running.sim
    start = sim.config.window_start
    with OcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY) as client:
        export = client.create_export("ocp-banking", start, start + HOUR)
    sim.faults.settings.retry_after_http_date = True
    sim.faults.force(429, count=1, retry_after=2)
    sim.faults.force(503, count=6)  # 5xx without Retry-After, outlasting the client's retries too
    started = time.monotonic()
    event = asyncio.run(_first_event(ExportReadyTrigger(export.export_id, poll_interval_s=0.1, max_polls=3)))
    assert event["status"] == "COMPLETED", event
    assert time.monotonic() - started >= 1.0  # the HTTP-date has 1 s resolution: at least 1 of the 2 s
    assert sim.faults.injected["forced"] == 7


def test_trigger_gives_up_once_ocp_stays_unavailable_past_its_bound(make_sim, monkeypatch) -> None:
    running = make_sim(small_config())
    _ocp_connection(monkeypatch, running, max_attempts=1, max_total_s=0.5)
    running.sim.faults.force(503, count=1000)
    trigger = ExportReadyTrigger("exp.unknown", poll_interval_s=0.1, max_throttled_s=0.5)
    event = asyncio.run(_first_event(trigger))
    assert event["status"] == "error" and "OCP unavailable" in event["message"]
    assert ExportReadyTrigger(**trigger.serialize()[1]).max_throttled_s == 0.5


# ---------------------------------------------------------------------- listing lags COMPLETED
def test_a_completed_exports_lagging_listing_is_waited_for(make_sim) -> None:
    running = make_sim(small_config(exports=_exports(listing_lag_s=1.0)))
    sim = running.sim
    with OcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY) as client:
        export = _completed(client, sim, "ocp-banking", ["recordings"])
        impatient = replace(FAST_RETRY, max_listing_lag_s=0.1)
        # The raw API really answers 409 "not ready" after COMPLETED: a client that does not wait fails.
        with OcpClient(running.url, PatAuth(PAT), retry=impatient) as c, pytest.raises(ExportNotReady):
            c.list_files_page(export.export_id)
        files = list(client.iter_files(export.export_id))
    assert {f.dialog_id for f in files} == _recorded(sim, "ocp-banking")


def test_a_completed_exports_lagging_listing_is_waited_for_async(make_sim) -> None:
    running = make_sim(small_config(exports=_exports(listing_lag_s=0.5)))
    sim = running.sim

    async def scenario() -> list[wire.ExportFile]:
        async with AsyncOcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY) as c:
            start = sim.config.window_start
            export = await c.create_export("ocp-cards", start, start + 2 * HOUR)
            await c.wait_for_export(export.export_id, poll_interval_s=0.05, timeout_s=10)
            return [f async for f in c.iter_files(export.export_id)]

    assert {f.dialog_id for f in asyncio.run(scenario())} == _recorded(sim, "ocp-cards")


def test_listing_an_export_still_being_prepared_fails_at_once(make_sim) -> None:
    running = make_sim(small_config(exports=_exports(prep_s=30.0, listing_lag_s=5.0)))
    start = running.sim.config.window_start
    with OcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY) as client:
        export = client.create_export("ocp-cards", start, start + HOUR)
        started = time.monotonic()
        with pytest.raises(ExportNotReady):
            client.list_files_page(export.export_id)
    assert time.monotonic() - started < 2.0


# ------------------------------------------------------------------------ expiry mid-download
def test_export_expires_mid_download(make_sim) -> None:
    running = make_sim(small_config(exports=_exports(expire_after_downloads=2)))
    sim = running.sim
    with OcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY) as client:
        export = _completed(client, sim, "ocp-banking", ["recordings"])
        files = list(client.iter_files(export.export_id))
        assert len(files) >= 3
        for item in files[:2]:
            with client.open_file(export.export_id, item.file_id) as response:
                assert hashlib.sha256(response.read()).hexdigest() == item.sha256
        with pytest.raises(ExportExpired) as info, client.open_file(export.export_id, files[2].file_id):
            pass
        assert info.value.status_code == 410
        assert client.get_export(export.export_id).status is wire.ExportStatus.EXPIRED
        with pytest.raises(ExportExpired):
            client.list_files_page(export.export_id)
        # The group is free again: the export can be re-created at once.
        again = _completed(client, sim, "ocp-banking", ["recordings"])
        assert again.export_id != export.export_id


def test_service_unavailable_carries_no_wait_without_retry_after(client: OcpClient, sim: Simulator) -> None:
    sim.faults.force(503, count=100)
    with pytest.raises(ServiceUnavailable) as info:
        client.list_exports()
    assert info.value.retry_after_s is None


def test_a_throttled_token_endpoint_hands_its_wait_over_too(running: RunningSimulator) -> None:
    running.sim.faults.force(429, count=1, path_prefix="/auth/", retry_after=300)
    with password_client(running.url) as client, pytest.raises(Throttled) as info:
        client.list_exports()
    assert info.value.retry_after_s == 300
