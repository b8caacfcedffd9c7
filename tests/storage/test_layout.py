"""Every key outside the recordings: landing, the audit area, reports. The strings are a contract with data
already stored and with the Athena tables, so they are pinned here."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from ocp_ingest import ids
from ocp_ingest.ids import InvalidIdentifier
from ocp_ingest.storage import StorageLayout
from ocp_ingest.storage import layout as keys

DIALOG = "0123456789ABCDEF0123456789ABCDEF"
SHA = "ab" * 32


@pytest.fixture
def store(tmp_path: Path) -> StorageLayout:
    root = tmp_path.as_uri()
    return StorageLayout(f"{root}/rec", f"{root}/landing", f"{root}/quarantine", audit_url=f"{root}/audit")


def test_landing_keys(store: StorageLayout, tmp_path: Path) -> None:
    landing = f"{tmp_path}/landing"
    audio = store.landing_path(DIALOG, SHA)
    assert str(audio).endswith(f"{landing}/audio/{DIALOG}.{SHA[:16]}.wav")
    assert str(store.landing_path(DIALOG, SHA, "mp3")).endswith(f"/audio/{DIALOG}.{SHA[:16]}.mp3")
    with pytest.raises(ValueError, match="extension"):
        store.landing_path(DIALOG, SHA, "ogg")
    assert str(keys.arrival_sidecar_path(str(audio))).endswith(f"{landing}/audio/{DIALOG}.{SHA[:16]}.json")
    assert str(keys.waiting_sidecar_path(str(audio))).endswith(
        f"{landing}/audio/waiting/{DIALOG}.{SHA[:16]}.json"
    )
    assert str(store.landing_audio_folder()).endswith(f"{landing}/audio")
    assert str(store.landing_waiting_folder()).endswith(f"{landing}/audio/waiting")
    assert str(store.landing_cdr_folder()).endswith(f"{landing}/cdr")
    assert str(keys.cdr_waiting_marker(store.landing_url)).endswith(f"{landing}/cdr_waiting")


def test_audit_area_keys(store: StorageLayout, tmp_path: Path) -> None:
    audit = (tmp_path / "audit").as_uri()
    day = date(2026, 11, 20)
    assert str(keys.audit_events_day(audit, day)).endswith("/audit/audit_events/dt=2026-11-20")
    assert str(keys.audit_events_day(audit, "2026-11-20")) == str(keys.audit_events_day(audit, day))
    first, second = (keys.new_audit_events_file(audit, day, "retail") for _ in range(2))
    assert first != second and first.parent == second.parent  # a new file every time, same partition
    assert str(first.parent).endswith("/audit/audit_events/dt=2026-11-20/lob=retail")
    assert first.name.startswith("part-") and first.name.endswith(".parquet")
    record = keys.new_audit_compaction_record(audit, day, "none")
    assert str(record.parent).endswith("/audit/audit_compactions/dt=2026-11-20/lob=none")
    snapshot = keys.snapshot_file(audit, day, 3)
    assert str(snapshot).endswith("/audit/ledger_snapshot/dt=2026-11-20/part-00003.parquet")
    stamp = "20261121T020000Z"
    assert str(keys.report_path(audit, day, stamp, "html")).endswith(
        f"/audit/reports/dt=2026-11-20/completeness-{stamp}.html"
    )
    at = datetime(2026, 11, 21, 2, 0, 0, 42, tzinfo=UTC)
    alert = keys.sla_alert_path(audit, at)
    assert str(alert).endswith("/audit/reports/alerts/sla-20261121T020000000042Z.json")
    hour = datetime(2026, 11, 20, 7, tzinfo=UTC)
    manifest = store.cdr_manifest_path(hour, "abc")
    assert str(manifest).endswith("/audit/cdr_manifest/dt=2026-11-20/hour=07/abc.ndjson")
    assert str(store.reconciliation_record_path("exports", "exp-1")).endswith(
        "/audit/reconciliation/exports/exp-1.json"
    )


LONG_ID = "exp." + "0123456789abcdef" * 12 + ".tail"  # 200+ characters, dots


@pytest.mark.parametrize(
    "opaque",
    [
        "exp.20261202.0001",
        LONG_ID,
        "../../x",
        "..",
        "a/b/../../c",
        "exp 2026 12 02",
        "exp-ü-日本-0001",
        "日本",
        "-leading-dash",
        "x" * 65,
        "exp\x00nul\r\n",
    ],
)
def test_opaque_export_ids_become_one_safe_deterministic_segment(store: StorageLayout, opaque: str) -> None:
    path = store.reconciliation_record_path("exports", opaque)
    folder = store.reconciliation_record_path("exports", "exp-1").parent
    assert path.parent == folder  # one segment, right where it belongs: no traversal, no sub-folder
    name = path.name.removesuffix(".json")
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*\.[0-9a-f]{32}", name), name
    assert len(path.name) <= 80
    assert store.reconciliation_record_path("exports", opaque) == path  # the same id, the same key
    assert ids.opaque_key(opaque) == name


def test_opaque_keys_never_collide() -> None:
    similar = ["exp.1", "exp/1", "exp 1", "exp-1", "exp..1", "exp_1", "EXP.1", LONG_ID, LONG_ID + "x"]
    similar += ["x" * 64, "x" * 65, "x" * 66, "..", ".", "日本", "中国"]
    keys_ = [ids.opaque_key(v) for v in similar]
    assert len(set(keys_)) == len(similar)
    # A token is kept as it is (keys written before stay put) and never equals an encoded id.
    assert ids.opaque_key("exp-1") == "exp-1"
    assert ids.opaque_key("exp.1") != "exp-1" and "." in ids.opaque_key("exp.1")
    # Encoding the encoded form gives yet another key, not the first id's.
    assert ids.opaque_key(ids.opaque_key("exp.1")) != ids.opaque_key("exp.1")


@pytest.mark.parametrize("bad", ["", None, 42])
def test_an_opaque_id_must_still_be_a_non_empty_string(bad: object) -> None:
    with pytest.raises(InvalidIdentifier):
        ids.opaque_key(bad)
