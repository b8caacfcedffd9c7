"""Verified downloads: resume after a broken connection, checksum mismatch, nothing partial left behind."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from ocp_ingest.ocp import ChecksumMismatch, DownloadError, OcpClient, wire
from ocp_ingest_dev.simulator import Simulator

HOUR = timedelta(hours=1)


def _completed_files(client: OcpClient, sim: Simulator) -> tuple[str, list[wire.ExportFile]]:
    start = sim.config.window_start
    export = client.create_export("ocp-banking", start, start + 2 * HOUR, ["recordings"])
    client.wait_for_export(export.export_id, poll_interval_s=0.05, timeout_s=5)
    return export.export_id, sorted(client.iter_files(export.export_id), key=lambda f: -f.size)


def _truth(sim: Simulator, f: wire.ExportFile) -> str:
    return sim.exports.recording_digest(sim.calls_by_id[f.dialog_id])[0]


def test_downloads_match_ground_truth(client: OcpClient, sim: Simulator, tmp_path: Path) -> None:
    export_id, files = _completed_files(client, sim)
    for f in files:
        result = client.download(export_id, f, tmp_path / "rec" / f.name)
        assert result.sha256 == f.sha256 == _truth(sim, f) and result.size == f.size
        assert hashlib.sha256((tmp_path / "rec" / f.name).read_bytes()).hexdigest() == f.sha256
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == sorted(f.name for f in files)


def test_broken_download_is_resumed_with_range(client: OcpClient, sim: Simulator, tmp_path: Path) -> None:
    export_id, files = _completed_files(client, sim)
    big = files[0]
    sim.faults.break_downloads(2, after_bytes=big.size // 3)
    result = client.download(export_id, big, tmp_path / big.name)
    assert result.resumes == 2 and sim.faults.injected["broken"] == 2
    assert hashlib.sha256((tmp_path / big.name).read_bytes()).hexdigest() == big.sha256 == _truth(sim, big)


def test_resumes_exhausted_leave_nothing(client: OcpClient, sim: Simulator, tmp_path: Path) -> None:
    export_id, files = _completed_files(client, sim)
    sim.faults.break_downloads(10, after_bytes=100)
    with pytest.raises(DownloadError, match="gave up"):
        client.download(export_id, files[0], tmp_path / files[0].name, max_resumes=2)
    assert list(tmp_path.iterdir()) == []


def test_checksum_mismatch_stores_nothing(client: OcpClient, sim: Simulator, tmp_path: Path) -> None:
    export_id, files = _completed_files(client, sim)
    lying = files[0].model_copy(update={"sha256": "0" * 64})
    with pytest.raises(ChecksumMismatch, match="nothing stored"):
        client.download(export_id, lying, tmp_path / lying.name)
    assert list(tmp_path.iterdir()) == []
    shorter = files[0].model_copy(update={"size": files[0].size - 1})
    with pytest.raises(ChecksumMismatch):
        client.download(export_id, shorter, tmp_path / shorter.name)
    assert list(tmp_path.iterdir()) == []


def test_create_only_and_idempotent(client: OcpClient, sim: Simulator, tmp_path: Path) -> None:
    export_id, files = _completed_files(client, sim)
    dest = tmp_path / files[0].name
    client.download(export_id, files[0], dest)
    again = client.download(export_id, files[0], dest)
    assert again.already_present and again.sha256 == files[0].sha256
    other = tmp_path / "other.wav"
    other.write_bytes(b"not the same bytes")
    with pytest.raises(FileExistsError):
        client.download(export_id, files[0], other)
    assert other.read_bytes() == b"not the same bytes"
