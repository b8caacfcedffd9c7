"""Manifests: call lists of any length kept in storage, the XCom / pod argument carrying a reference."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ocp_ingest.config import Settings
from ocp_ingest.reconcile.detect import Detection, PendingCall
from ocp_ingest.reconcile.manifests import ManifestError, read_manifest, write_manifest
from ocp_ingest.reconcile.plan import ExportPlan, plan_exports
from ocp_ingest.storage import StorageLayout

T0 = datetime(2026, 11, 24, 9, tzinfo=UTC)


@pytest.fixture
def layout(ingest_home: Path) -> StorageLayout:
    return StorageLayout.from_settings(Settings.from_env())


def test_a_plan_of_100k_calls_travels_as_a_small_reference_and_comes_back_whole(layout) -> None:
    calls = [PendingCall(f"{i:032X}", "grp-a", T0 + timedelta(seconds=i)) for i in range(100_000)]
    (plan,) = plan_exports(calls).plans  # no cap: 100k calls of one group in 28 hours, one export
    reference = plan.to_reference(layout)
    assert len(json.dumps(reference)) < 1024  # an XCom row, a pod argument (128 KiB at most)
    assert reference["label"] == plan.label and reference["count"] == 100_000
    assert ExportPlan.from_dict(json.loads(json.dumps(reference))) == plan
    # a retried plan task writes the same object again (named by content, create-only)
    assert plan.to_reference(layout) == reference


def test_a_detection_reference_keeps_window_groups_and_every_call(layout) -> None:
    calls = tuple(PendingCall(f"{i:032X}", "grp-b", T0, T0 + timedelta(minutes=3), i % 3) for i in range(500))
    detection = Detection(calls, (T0, T0 + timedelta(hours=2)), ("grp-b",), dry_run=True)
    reference = detection.to_reference(layout)
    assert "calls" not in reference and reference["count"] == 500
    assert Detection.from_dict(reference) == detection
    assert Detection.from_dict(detection.to_dict()) == detection  # the inline form still reads


def test_a_missing_or_altered_manifest_is_an_error_never_an_empty_plan(layout) -> None:
    reference = write_manifest(layout, ["A" * 32, "B" * 32])
    path = Path(reference["manifest"].removeprefix("file://"))
    path.chmod(0o644)
    path.write_text(json.dumps(["A" * 32]))
    with pytest.raises(ManifestError, match="SHA-256"):
        read_manifest(reference)
    path.unlink()
    with pytest.raises(ManifestError, match="missing"):
        read_manifest(reference)
    wrong_count = write_manifest(layout, ["C" * 32])
    with pytest.raises(ManifestError, match="entries"):
        read_manifest({**wrong_count, "count": 2})


def test_short_lists_and_dry_runs_travel_inline_and_write_nothing(layout, ingest_home: Path) -> None:
    few = ExportPlan("grp-a", T0, T0 + timedelta(hours=1), tuple(f"{i:032X}" for i in range(100)))
    assert few.to_reference(layout) == few.to_dict()
    many = ExportPlan("grp-a", T0, T0 + timedelta(hours=1), tuple(f"{i:032X}" for i in range(101)))
    assert many.to_reference(None) == many.to_dict()  # a dry run: no layout, nothing written
    assert not list(ingest_home.rglob("manifests/*.json"))
    assert "manifest" in many.to_reference(layout)
    assert len(list(ingest_home.rglob("manifests/*.json"))) == 1


def test_a_long_downloads_per_call_results_travel_as_a_manifest_and_close_reads_them_back(layout) -> None:
    from ocp_ingest.reconcile.close import match_outcomes
    from ocp_ingest.reconcile.download import CallDownload, DownloadSummary, per_call_results

    ids = [f"{i:032X}" for i in range(25_000)]
    plan = ExportPlan("grp-a", T0, T0 + timedelta(days=2), tuple(ids[:-5]))
    summary = DownloadSummary("exp-1", plan_label=plan.label, bytes_downloaded=123)
    summary.outcomes = {d: CallDownload.STORED for d in ids[:-10]}
    summary.outcomes.update({d: CallDownload.NOT_IN_EXPORT for d in ids[-10:]})
    summary.details = {ids[0]: "ChecksumMismatch: short read", ids[-1]: "not listed"}
    summary.discovered = ids[-5:]  # lost events: rows created by the manifest diff
    summary.no_recording = {ids[-2]: "tel:+34910000000"}

    reference = summary.to_reference(layout)
    assert len(json.dumps(reference)) < 2048  # an XCom row, a pod's return.json
    assert reference["counts"] == {"stored": 24_990, "not_in_export": 10}
    assert not {"outcomes", "details", "discovered", "no_recording"} & set(reference)
    travelled = json.loads(json.dumps(reference))
    assert per_call_results(travelled) == per_call_results(summary.to_dict())
    (inline,) = match_outcomes([plan], [summary.to_dict()])
    (by_reference,) = match_outcomes([plan], [travelled])
    assert by_reference == inline and len(by_reference.call_outcomes) == 25_000
    # a short result, or one without a layout (a dry run writes nothing), stays inline
    short = DownloadSummary("exp-2", plan_label="p", outcomes={ids[0]: CallDownload.STORED})
    assert short.to_reference(layout) == short.to_dict()
    assert summary.to_reference(None) == summary.to_dict()
    # an altered manifest is refused, never read as "no calls"
    path = Path(reference["calls"]["manifest"].removeprefix("file://"))
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b"stored", b"stired", 1))
    with pytest.raises(ManifestError):
        per_call_results(travelled)
