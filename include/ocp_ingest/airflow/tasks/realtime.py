"""Task callables of the ``ocp_realtime_ingest`` DAG: configuration in, summary out."""

from __future__ import annotations

import logging
from typing import Any

from ocp_ingest.airflow.audit_actor import task_actor
from ocp_ingest.config import Settings
from ocp_ingest.ledger import open_ledger
from ocp_ingest.realtime import RealtimeProcessor, list_arrivals, roll_cdr_manifest
from ocp_ingest.storage import StorageLayout

log = logging.getLogger(__name__)


def store_arrivals(batch_size: int = 500, workers: int = 4) -> dict[str, Any]:
    """One batch: roll accepted CDR events into the manifest, then validate and store landed audio."""
    settings = Settings.from_env()
    layout = StorageLayout.from_settings(settings)
    rolled = roll_cdr_manifest(layout)
    with open_ledger(settings, actor=task_actor()) as ledger:  # flushes its audit events on close
        processor = RealtimeProcessor(settings, ledger, layout)
        summary = processor.process(list_arrivals(layout, batch_size), workers=workers)
    summary.cdr_events_rolled = rolled
    if summary.orphaned:
        log.warning("recordings waiting over an hour for their dialog_end: %s", ", ".join(summary.orphaned))
    log.info("realtime batch: %s", summary.to_dict())
    return summary.to_dict()
