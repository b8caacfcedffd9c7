"""Task callables of the ``ocp_realtime_ingest`` DAG: configuration in, summaries out."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ocp_ingest.airflow.audit_actor import task_actor
from ocp_ingest.config import Settings
from ocp_ingest.ledger import open_ledger
from ocp_ingest.realtime import (
    RealtimeProcessor,
    Shard,
    count_landed_recordings,
    list_arrivals,
    plan_shards,
    roll_cdr_manifest,
)
from ocp_ingest.storage import StorageLayout

log = logging.getLogger(__name__)


def roll_cdr_events() -> int:
    """Move accepted CDR events from landing into the hourly manifest (once per run); how many moved."""
    settings = Settings.from_env()
    with open_ledger(settings, actor=task_actor()) as ledger:
        rolled = roll_cdr_manifest(StorageLayout.from_settings(settings), ledger)
    log.info("%d CDR events rolled into the manifest", rolled)
    return rolled


def plan_batch() -> list[dict[str, Any]]:
    """Split what has landed into shards, one mapped ``store_shard`` each (none when nothing landed)."""
    settings = Settings.from_env()
    landed = count_landed_recordings(StorageLayout.from_settings(settings))
    shards = plan_shards(landed, settings.realtime_shard_size, settings.realtime_max_shards)
    log.info("%d recordings landed: %d shards", landed, len(shards))
    return [s.to_dict() for s in shards]


def store_shard(context: Any, shard: dict[str, Any], workers: int = 4) -> dict[str, Any]:
    """Validate and store one shard's landed recordings (at most ``realtime_batch_size`` of them)."""
    part = Shard.from_dict(shard)
    context["shard_label"] = part.label  # the mapped instance's name (map_index_template)
    settings = Settings.from_env()
    layout = StorageLayout.from_settings(settings)
    with open_ledger(settings, actor=task_actor()) as ledger:  # flushes its audit events on close
        processor = RealtimeProcessor(settings, ledger, layout)
        arrivals = list_arrivals(layout, settings.realtime_batch_size, part)
        summary = processor.process(arrivals, workers=workers)
    if summary.orphaned:
        log.warning("recordings waiting over an hour for their dialog_end: %s", ", ".join(summary.orphaned))
    # which worker stored them: the run's summary shows how the shards spread over the workers
    result = {**summary.to_dict(), "worker": context["ti"].hostname}
    log.info("realtime %s: %s", part.label, result)
    return result


def summarize(cdr_events_rolled: int, shards: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The run's summary: every shard's figures added up (the same keys as one shard's), how many shards
    ran, and the calls each worker stored (`stored_by_worker`: more workers, more of them store)."""
    total: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    stored_by_worker: Counter[str] = Counter()
    orphaned: list[str] = []
    done = 0
    for summary in shards:
        done += 1
        stored_by_worker[str(summary.get("worker"))] += int(summary.get("stored", 0))
        for key, value in summary.items():
            if key == "reasons":
                reasons.update(value)
            elif key == "orphaned":
                orphaned += value
            elif isinstance(value, int):
                total[key] += value
    result: dict[str, Any] = {**total, "reasons": dict(reasons), "orphaned": orphaned}
    result.update(shards=done, cdr_events_rolled=cdr_events_rolled, stored_by_worker=dict(stored_by_worker))
    log.info("realtime run: %s", result)
    return result
