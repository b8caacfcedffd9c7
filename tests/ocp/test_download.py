"""Streaming export files: resume after a broken connection, checksum and size checks, nothing partial left.

The bytes are stored the way reconciliation stores a large file: ``iter_file_chunks`` into the create-only
writer, verified against the listing before anything gets its name.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from ocp_ingest import storage
from ocp_ingest.ocp import ChecksumMismatch, DownloadError, OcpClient, iter_file_chunks, wire
from ocp_ingest.ocp.download import _Progress
from ocp_ingest.storage import ObjectExists, object_path, write_create_only
from ocp_ingest_dev.simulator import Simulator

HOUR = timedelta(hours=1)


def _completed_files(client: OcpClient, sim: Simulator) -> tuple[str, list[wire.ExportFile]]:
    start = sim.config.window_start
    export = client.create_export("ocp-banking", start, start + 2 * HOUR, ["recordings"])
    client.wait_for_export(export.export_id, poll_interval_s=0.05, timeout_s=5)
    return export.export_id, sorted(client.iter_files(export.export_id), key=lambda f: -f.size)


def _truth(sim: Simulator, f: wire.ExportFile) -> str:
    return sim.exports.recording_digest(sim.calls_by_id[f.dialog_id])[0]


def _store(
    client: OcpClient, export_id: str, f: wire.ExportFile, dest: Path, **kwargs: object
) -> storage.StoredObject:
    """Stream one listed file to ``dest``, create-only, verified against the listing."""
    return write_create_only(
        object_path(dest.as_uri()),
        iter_file_chunks(client, export_id, f, **kwargs),  # type: ignore[arg-type]
        expected_sha256=f.sha256,
        expected_size=f.size,
    )


def test_downloads_match_ground_truth(client: OcpClient, sim: Simulator, tmp_path: Path) -> None:
    export_id, files = _completed_files(client, sim)
    for f in files:
        result = _store(client, export_id, f, tmp_path / "rec" / f.name)
        assert result.sha256 == f.sha256 == _truth(sim, f) and result.size == f.size
        assert hashlib.sha256((tmp_path / "rec" / f.name).read_bytes()).hexdigest() == f.sha256
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == sorted(f.name for f in files)


def test_broken_download_is_resumed_with_range(client: OcpClient, sim: Simulator, tmp_path: Path) -> None:
    export_id, files = _completed_files(client, sim)
    big = files[0]
    sim.faults.break_downloads(2, after_bytes=big.size // 3)
    progress = _Progress()
    _store(client, export_id, big, tmp_path / big.name, progress=progress)
    assert progress.resumes == 2 and sim.faults.injected["broken"] == 2
    assert hashlib.sha256((tmp_path / big.name).read_bytes()).hexdigest() == big.sha256 == _truth(sim, big)


def test_resumes_exhausted_leave_nothing(client: OcpClient, sim: Simulator, tmp_path: Path) -> None:
    export_id, files = _completed_files(client, sim)
    sim.faults.break_downloads(10, after_bytes=100)
    with pytest.raises(DownloadError, match="gave up"):
        _store(client, export_id, files[0], tmp_path / files[0].name, max_resumes=2)
    assert list(tmp_path.iterdir()) == []


def test_checksum_mismatch_stores_nothing(client: OcpClient, sim: Simulator, tmp_path: Path) -> None:
    export_id, files = _completed_files(client, sim)
    lying = files[0].model_copy(update={"sha256": "0" * 64})
    with pytest.raises(storage.ChecksumMismatch, match="does not match"):
        _store(client, export_id, lying, tmp_path / lying.name)
    assert list(tmp_path.iterdir()) == []
    shorter = files[0].model_copy(update={"size": files[0].size - 1})
    with pytest.raises(ChecksumMismatch, match="more bytes than the listed size"):
        _store(client, export_id, shorter, tmp_path / shorter.name)
    assert list(tmp_path.iterdir()) == []


def test_create_only_and_idempotent(client: OcpClient, sim: Simulator, tmp_path: Path) -> None:
    export_id, files = _completed_files(client, sim)
    dest = tmp_path / files[0].name
    assert _store(client, export_id, files[0], dest).created
    again = _store(client, export_id, files[0], dest)
    assert not again.created and again.sha256 == files[0].sha256
    other = tmp_path / "other.wav"
    other.write_bytes(b"not the same bytes")
    with pytest.raises(ObjectExists):
        _store(client, export_id, files[0], other)
    assert other.read_bytes() == b"not the same bytes"
