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
