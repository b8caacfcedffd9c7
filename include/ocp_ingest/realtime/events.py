"""CDR events in the realtime stage: record an accepted event, roll accepted events into the manifest.

- ``landing/cdr/{event_id}.json``: one file per accepted CDR event (create-only: the key is the de-dup);
  the DAG rolls them into the hourly CDR manifest ``cdr_manifest/dt=YYYY-MM-DD/hour=HH/*.ndjson``.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import datetime

from airflow.sdk import ObjectStoragePath

from ocp_ingest import ids
from ocp_ingest.ledger import Ledger
from ocp_ingest.ledger.cdr import cdr_transition
from ocp_ingest.ledger.model import from_epoch_ms
from ocp_ingest.ocp.wire import CdrEvent
from ocp_ingest.routing import LobRouter
from ocp_ingest.storage import StorageLayout, write_create_only


def record_cdr_event(event: CdrEvent, ledger: Ledger, layout: StorageLayout, router: LobRouter) -> bool:
    """Apply one accepted event to the ledger, then append it to the manifest.

    Ledger first: if we crash between the two, the redelivered event re-applies idempotently and is then
    written to the manifest. Returns False when the event id was already in the manifest (a duplicate).
    """
    transition = cdr_transition(event, router)
    if transition is not None:
        ledger.apply(transition)
    dest = ObjectStoragePath(layout.landing_url) / "cdr" / f"{ids.token('event_id', event.event_id)}.json"
    return write_create_only(dest, [event.to_json()]).created


def roll_cdr_manifest(layout: StorageLayout, limit: int = 5000) -> int:
    """Move accepted CDR events from landing into the hourly manifest; returns how many were rolled.

    Each output file is named after the hash of the event ids it holds, so a retried roll of the same
    events writes nothing new. The manifest is at-least-once across runs; ``event_id`` is its key.
    """
    folder = ObjectStoragePath(layout.landing_url) / "cdr"
    if not folder.exists():
        return 0
    files = sorted(folder.glob("*.json"), key=lambda p: p.name)[:limit]
    by_hour: dict[datetime, list[tuple[str, bytes]]] = {}
    for path in files:
        body = path.read_bytes()
        event = CdrEvent.model_validate_json(body)
        hour = from_epoch_ms(event.time).replace(minute=0, second=0, microsecond=0)
        by_hour.setdefault(hour, []).append((event.event_id, body.strip()))
    for hour, events in by_hour.items():
        events.sort()
        name = hashlib.sha256("\n".join(e for e, _ in events).encode()).hexdigest()[:32]
        write_create_only(layout.cdr_manifest_path(hour, name), [b"\n".join(b for _, b in events) + b"\n"])
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return len(files)
