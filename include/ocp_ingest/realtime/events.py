"""CDR events in the realtime stage: record an accepted event, roll accepted events into the manifest.

- The ledger's CDR inbox keeps each accepted event, keyed by OCP's event id (the de-dup), until the DAG
  rolls it into the hourly CDR manifest ``cdr_manifest/dt=YYYY-MM-DD/hour=HH/*.ndjson``. No file per event:
  a file each cost the receiver a create, an fsync and a later delete per event (three per call).
- ``landing/cdr_waiting``: an empty file that wakes the realtime DAG's landing trigger when events wait.
- ``landing/cdr/*.json``: one file per event, as versions before the inbox kept them; rolled the same way.
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
from ocp_ingest.ledger.model import format_ts, from_epoch_ms, utcnow
from ocp_ingest.ocp.wire import CdrEvent
from ocp_ingest.realtime.landing import remove
from ocp_ingest.routing import LobRouter
from ocp_ingest.storage import ObjectExists, StorageLayout, write_create_only
from ocp_ingest.storage.layout import cdr_waiting_marker
from ocp_ingest.storage.objects import object_path

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
    """Record a push's accepted events: into the ledger's CDR inbox (each id's claim), then their ledger
    transitions in one batch. Per event: True (new), False (the same event was already accepted, an
    idempotent duplicate) or :class:`EventIdReused` (its id names a different event; nothing was written
    for it).

    Checks before writes: the transitions are computed first (a pure step that raises on impossible
    data), and the inbox decides whether an id is new, the same event or another one, so a refused event
    leaves no ledger change. If we crash between the inbox and the transitions, the sender had no answer
    and redelivers: the identical event is found and its transition applied then (transitions are
    idempotent). The de-dup lasts until the roll moves the event into the manifest, which is
    at-least-once and keyed by ``event_id``.
    """
    transitions = [cdr_transition(event, router) for event in events]
    kept = ledger.backend.cdr_inbox_add(
        [(event.event_id, event.to_json().decode()) for event in events], format_ts(utcnow())
    )
    outcomes: list[bool | EventIdReused] = [
        EventIdReused(f"event_id {e.event_id} already names a different event") if k is None else k
        for e, k in zip(events, kept, strict=True)
    ]
    # A duplicate's transition is applied again (idempotent): a crash may have come before the ledger.
    ledger.apply_many([t for t, k in zip(transitions, kept, strict=True) if t and k is not None])
    if any(k is not None for k in kept):
        _wake_roll(layout)
    return outcomes


def _wake_roll(layout: StorageLayout) -> None:
    """Leave the marker the landing trigger counts, unless it is there. The roll removes it before it
    lists the inbox, and we come after our events' commit: an event it did not list leaves the marker.

    Only a hint: the events are in the ledger already, and the DAG's idle run (at most ``max_wait_s``
    later) rolls them without it. So a failing write is logged, not turned into a refused push.
    """
    marker = cdr_waiting_marker(layout.landing_url)
    try:
        if not marker.exists():
            write_create_only(marker, [b""], sync_name=False)
    except Exception as exc:  # the storage's own error types vary (local disk, S3)
        log.warning("could not leave %s (%s): the idle run rolls the events", marker, type(exc).__name__)


def roll_cdr_manifest(layout: StorageLayout, ledger: Ledger, limit: int = 5000) -> int:
    """Move accepted CDR events from the ledger's inbox (and files landed by earlier versions) into the
    hourly manifest; returns how many were rolled.

    Each output file is named after the hash of the event ids it holds, so a retried roll of the same
    events writes nothing new. The manifest is at-least-once across runs; ``event_id`` is its key.

    A kept event that no longer reads as a valid event (e.g. accepted before a stricter rule) is moved to
    quarantine with a log line instead of failing every roll.
    """
    remove(cdr_waiting_marker(layout.landing_url))
    kept = ledger.backend.cdr_inbox_list(limit)
    folder = layout.landing_cdr_folder()
    landed = sorted(folder.glob("*.json"), key=lambda p: p.name) if folder.exists() else []
    files = landed[: limit - len(kept)]
    # (a safe name for its quarantine copy, its bytes); a landed file's stem is the opaque key already
    found = [(ids.opaque_key(event_id), body.encode()) for event_id, body in kept]
    found += [(path.stem, path.read_bytes()) for path in files]
    by_hour: dict[datetime, list[tuple[str, bytes]]] = {}
    for key, body in found:
        try:
            event = CdrEvent.model_validate_json(body)
            hour = from_epoch_ms(event.time).replace(minute=0, second=0, microsecond=0)
        except Exception as exc:  # parsing is pure: whatever it raises is this event's fault
            _quarantine_event(layout, key, body, f"{type(exc).__name__}: {exc}")
            continue
        by_hour.setdefault(hour, []).append((event.event_id, body.strip()))
    for hour, events in by_hour.items():
        events.sort()
        name = hashlib.sha256("\n".join(e for e, _ in events).encode()).hexdigest()[:32]
        write_create_only(layout.cdr_manifest_path(hour, name), [b"\n".join(b for _, b in events) + b"\n"])
    ledger.backend.cdr_inbox_delete([event_id for event_id, _ in kept])
    for path in files:
        remove(path)
    if len(found) >= limit:  # more may wait: the next run rolls them at once
        _wake_roll(layout)
    return len(found)


def _quarantine_event(layout: StorageLayout, key: str, body: bytes, error: str) -> None:
    sha16 = hashlib.sha256(body).hexdigest()[:16]
    dest = object_path(layout.quarantine_url) / "invalid_cdr_event" / f"{key}.{sha16}.json"
    with contextlib.suppress(ObjectExists):  # a retried roll: these bytes are kept already
        write_create_only(dest, [body])
    log.error("CDR event %s cannot be rolled (%s); kept at %s", key, error[:300], dest)
