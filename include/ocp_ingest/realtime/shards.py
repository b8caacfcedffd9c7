"""Realtime fan-out: which mapped store task takes which landed recording.

A run splits what has landed into shards by a stable hash of the dialog id, so every recording belongs to
exactly one shard of a run, the same call always to the same shard of a given count, and any worker can
take any shard. The number of shards follows the backlog (about ``per_shard`` recordings each) up to
``max_shards``, so mapped task instances per run stay in the tens whatever the backlog.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any


def shard_of(dialog_id: str, shards: int) -> int:
    """The shard (0 .. shards-1) of a dialog id; stable across processes and runs (not Python's hash)."""
    digest = hashlib.sha256(dialog_id.upper().encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


@dataclass(frozen=True)
class Shard:
    """One mapped store task's part of a run: the recordings whose dialog id hashes to ``index``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count} does not exist")

    def holds(self, dialog_id: str) -> bool:
        return shard_of(dialog_id, self.count) == self.index

    @property
    def label(self) -> str:
        return f"shard {self.index + 1}/{self.count}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Shard:
        return cls(int(data["index"]), int(data["count"]))


def plan_shards(landed: int, per_shard: int, max_shards: int) -> list[Shard]:
    """The shards of a run with ``landed`` recordings in landing (none when nothing landed)."""
    if landed <= 0:
        return []
    count = max(1, min(max_shards, math.ceil(landed / per_shard)))
    return [Shard(i, count) for i in range(count)]
