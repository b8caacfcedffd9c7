"""CDR events in the realtime stage: record an accepted event, roll accepted events into the manifest.

- ``landing/cdr/{opaque_key(event_id)}.json``: one file per accepted CDR event (create-only: the key is
  the de-dup; OCP's opaque event id encoded so that any id is one safe segment and no two ids share one);
  the DAG rolls them into the hourly CDR manifest ``cdr_manifest/dt=YYYY-MM-DD/hour=HH/*.ndjson``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime

from ocp_ingest import ids
from ocp_ingest.ledger import Ledger
from ocp_ingest.ledger.cdr import cdr_transition
from ocp_ingest.ledger.model import from_epoch_ms
from ocp_ingest.ocp.wire import CdrEvent
from ocp_ingest.routing import LobRouter
from ocp_ingest.storage import ObjectExists, StorageLayout, sync_names, write_create_only
from ocp_ingest.storage.objects import ObjectPath, object_path

log = logging.getLogger(__name__)


class EventIdReused(Exception):
    """The event id already names a different accepted event: refused, nothing was written."""


def record_cdr_event(event: CdrEvent, ledger: Ledger, layout: StorageLayout, router: LobRouter) -> bool:
    """Record one accepted event (see :func:`record_cdr_events`); False when it was a duplicate. Raises
    :class:`EventIdReused` when its id already names a different event, before anything is written."""
    (outcome,) = record_cdr_events([event], ledger, layout, router)
    if isinstance(outcome, EventIdReused):
        raise outcome
    return outcome


def record_cdr_events(
    events: Sequence[CdrEvent], ledger: Ledger, layout: StorageLayout, router: LobRouter
) -> list[bool | EventIdReused]:
    """Record a push's accepted events: their landing files (each id's claim), then their ledger
    transitions in one batch. Per event: True (new), False (the same event was already accepted, an
    idempotent duplicate) or :class:`EventIdReused` (its id names a different event; nothing was written
    for it).

    Checks before writes: the transitions are computed first (a pure step that raises on impossible
    data), and the create-only landing file decides whether an id is new, the same event or another one,
    so a refused event leaves no ledger change. The landing files' names are made durable together (one
    directory fsync) before the ledger batch. If we crash between the landing files and the ledger, the
    sender had no answer and redelivers: the identical landing file (or its manifest line) is found and
    the transition applied then (transitions are idempotent). The de-dup lasts until the roll moves the
    landing file into the manifest, which is at-least-once and keyed by ``event_id``.
    """
    transitions = [cdr_transition(event, router) for event in events]
    folder = object_path(layout.landing_url) / "cdr"
    outcomes: list[bool | EventIdReused] = []
    written = []
    for event in events:
        dest = folder / f"{ids.opaque_key(event.event_id)}.json"
        try:
            created = write_create_only(dest, [event.to_json()], sync_name=False).created
        except ObjectExists:
            outcomes.append(EventIdReused(f"event_id {event.event_id} already names a different event"))
            continue
        outcomes.append(created)
        if created:
            written.append(dest)
    sync_names(written)
    # A duplicate's transition is applied again (idempotent): a crash may have come before the ledger.
    ledger.apply_many(
        [t for t, o in zip(transitions, outcomes, strict=True) if t and not isinstance(o, EventIdReused)]
    )
    return outcomes


def roll_cdr_manifest(layout: StorageLayout, limit: int = 5000) -> int:
    """Move accepted CDR events from landing into the hourly manifest; returns how many were rolled.

    Each output file is named after the hash of the event ids it holds, so a retried roll of the same
    events writes nothing new. The manifest is at-least-once across runs; ``event_id`` is its key.

    A landed event that no longer reads as a valid event (e.g. accepted before a stricter rule) is moved to
    quarantine with a log line instead of failing every roll.
    """
    folder = object_path(layout.landing_url) / "cdr"
    if not folder.exists():
        return 0
    files = sorted(folder.glob("*.json"), key=lambda p: p.name)[:limit]
    by_hour: dict[datetime, list[tuple[str, bytes]]] = {}
    for path in files:
        body = path.read_bytes()
        try:
            event = CdrEvent.model_validate_json(body)
            hour = from_epoch_ms(event.time).replace(minute=0, second=0, microsecond=0)
        except Exception as exc:  # parsing is pure: whatever it raises is this event's fault
            _quarantine_event(layout, path, body, f"{type(exc).__name__}: {exc}")
            continue
        by_hour.setdefault(hour, []).append((event.event_id, body.strip()))
    for hour, events in by_hour.items():
        events.sort()
        name = hashlib.sha256("\n".join(e for e, _ in events).encode()).hexdigest()[:32]
        write_create_only(layout.cdr_manifest_path(hour, name), [b"\n".join(b for _, b in events) + b"\n"])
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return len(files)


def _quarantine_event(layout: StorageLayout, path: ObjectPath, body: bytes, error: str) -> None:
    sha16 = hashlib.sha256(body).hexdigest()[:16]
    dest = object_path(layout.quarantine_url) / "invalid_cdr_event" / f"{path.stem}.{sha16}.json"
    with contextlib.suppress(ObjectExists):  # a retried roll: these bytes are kept already
        write_create_only(dest, [body])
    log.error("landed CDR event %s cannot be rolled (%s); kept at %s", path.name, error[:300], dest)
