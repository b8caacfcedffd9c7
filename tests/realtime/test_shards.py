"""Realtime fan-out: every landed recording in exactly one shard, shards bounded, stable across processes."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ocp_ingest.config import Settings
from ocp_ingest.realtime import Shard, count_landed_recordings, list_arrivals, plan_shards, shard_of
from ocp_ingest.realtime.landing import Arrival, land_sidecar
from ocp_ingest.storage import StorageLayout


def test_every_dialog_id_is_in_exactly_one_shard_and_shards_are_balanced() -> None:
    ids = [uuid.uuid4().hex.upper() for _ in range(4000)]
    shards = plan_shards(len(ids), per_shard=500, max_shards=8)
    assert [s.index for s in shards] == list(range(8)) and {s.count for s in shards} == {8}
    sizes = [sum(1 for d in ids if s.holds(d)) for s in shards]
    assert sum(sizes) == len(ids)
    assert all(len(ids) / 8 * 0.8 < n < len(ids) / 8 * 1.2 for n in sizes), sizes
    assert shard_of(ids[0].lower(), 8) == shard_of(ids[0], 8)  # OCP's ids are case-insensitive hex


def test_the_shard_count_follows_the_backlog_up_to_the_bound() -> None:
    assert plan_shards(0, 200, 8) == []
    assert len(plan_shards(1, 200, 8)) == 1
    assert len(plan_shards(201, 200, 8)) == 2
    assert len(plan_shards(1_000_000, 200, 8)) == 8
    with pytest.raises(ValueError):
        Shard(3, 3)


def test_shards_are_the_same_in_another_process() -> None:
    """Python's hash() is salted per process; the shard of a call must not be."""
    ids = [f"{n:032X}" for n in range(50)]
    code = "import sys; from ocp_ingest.realtime import shard_of as s; print([s(d, 7) for d in sys.argv[1:]])"
    other = subprocess.run([sys.executable, "-c", code, *ids], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == str([shard_of(d, 7) for d in ids])


def test_a_shard_lists_only_its_arrivals_and_together_they_list_all(ingest_home: Path) -> None:
    layout = StorageLayout.from_settings(Settings.from_env())
    landing = Path(layout.landing_url.removeprefix("file://")) / "audio"
    ids = [uuid.uuid4().hex.upper() for _ in range(60)]
    for n, dialog_id in enumerate(ids):
        url = (landing / f"{dialog_id}.{n:08x}.wav").as_uri()
        land_sidecar(Arrival(dialog_id, "0" * 64, 1, "2026-12-03T00:00:00Z", url, f"{dialog_id}.wav"))
    assert count_landed_recordings(layout) == len(ids)
    shards = plan_shards(len(ids), per_shard=20, max_shards=8)
    assert len(shards) == 3
    listed = [[a.dialog_id for a in list_arrivals(layout, 1000, s)] for s in shards]
    assert sorted(d for part in listed for d in part) == sorted(ids)
    for shard, part in zip(shards, listed, strict=True):
        assert all(shard.holds(d) for d in part)
    assert len(list_arrivals(layout, 5, shards[0])) == 5
