"""Publishing the ledger's audit outbox to the Parquet trail, idempotently by event id.

An applied transition's event is committed in the ledger's outbox in the same transaction as the change
(:class:`~ocp_ingest.ledger.base.OutboxEntry`). Publishing one file:

1. **claim**: the file's entries (one ``(dt, lob)`` partition) get the file's name (``claim``) in one
   ledger transaction; entries another publisher claimed (or already published) are left out;
2. **write**: ``audit_events/dt=<day>/lob=<lob>/part-<claim>.parquet`` create-only, rows in a fixed
   order, so a re-write of the same entries is the same object;
3. **delete** the entries from the outbox.

A crash after 1 or 2 leaves claimed entries: a later publisher (:func:`publish_leftovers`) writes the same
file name again: if the file is there already (the crash came after 2) nothing is written twice; it checks
that the file holds every entry it deletes, and un-claims any that it does not hold, so no event is lost
either. Unclaimed leftovers (a crash before 1) are claimed into new files.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq

from ocp_ingest.audit.events import AuditEvent
from ocp_ingest.ledger.base import LedgerBackend, OutboxEntry
from ocp_ingest.storage import ObjectExists, write_create_only
from ocp_ingest.storage.layout import audit_events_file

log = logging.getLogger(__name__)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def now_iso() -> str:
    return _iso(datetime.now(UTC))


def entry_for(event: AuditEvent) -> OutboxEntry:
    return OutboxEntry(event.event_id, event.to_json(), now_iso())


def partition_of(body: str) -> tuple[str, str]:
    """The ``(dt, lob)`` partition of an event in its JSON form (:meth:`AuditEvent.to_json`)."""
    from ocp_ingest.audit.sink import partition_lob

    plain = json.loads(body)
    # the ISO date of the event's own timestamp, as f"{event_ts:%Y-%m-%d}" gives it
    return plain["event_ts"][:10], partition_lob(plain.get("lob"))


@dataclass
class Published:
    files: list[str] = field(default_factory=list)
    events: int = 0
    #: files that were already there (a re-publish after a crash): not written again
    existing: list[str] = field(default_factory=list)


def write_claim(
    store: LedgerBackend, audit_url: str, claim: str, entries: Sequence[OutboxEntry], result: Published
) -> list[OutboxEntry]:
    """Steps 2 and 3 for the entries claimed as ``claim`` (one partition); returns the entries it had to
    un-claim (the file was there without them): they need a new claim."""
    from ocp_ingest.audit.sink import events_table, parquet_bytes

    day, lob = partition_of(entries[0].body)
    dest = audit_events_file(audit_url, day, lob, claim)
    ids = [e.event_id for e in entries]
    requeued: list[OutboxEntry] = []
    try:
        table = events_table([e.body for e in entries], ordered=True)
        stored = write_create_only(dest, [parquet_bytes(table)])
        created = stored.created
    except ObjectExists:  # written by an earlier publisher of this claim, perhaps with fewer entries
        created = False
    if not created:
        with dest.open("rb") as handle:
            there = set(pq.read_table(handle, columns=["event_id"]).column("event_id").to_pylist())
        missing = [i for i in ids if i not in there]
        if missing:  # never delete an entry the trail does not hold: it gets a new claim next time
            store.outbox_unclaim(missing)
            log.warning("audit file %s lacks %d of its claimed events; re-queued", dest, len(missing))
            requeued = [
                OutboxEntry(e.event_id, e.body, e.created_at) for e in entries if e.event_id in missing
            ]
        ids = [i for i in ids if i in there]
        result.existing.append(str(dest))
    else:
        result.files.append(str(dest))
    store.outbox_delete(ids)
    result.events += len(ids)
    return requeued


def publish_entries(
    store: LedgerBackend, audit_url: str, entries: Sequence[OutboxEntry], result: Published | None = None
) -> Published:
    """Claim, write and delete these (unclaimed) entries: one file per partition and claim batch."""
    result = result or Published()
    groups: dict[tuple[str, str], list[OutboxEntry]] = defaultdict(list)
    for entry in entries:
        groups[partition_of(entry.body)].append(entry)
    limit = int(getattr(store, "outbox_claim_limit", 1000))
    for _, group in sorted(groups.items()):
        for i in range(0, len(group), limit):
            chunk = group[i : i + limit]
            claim = uuid.uuid4().hex
            claimed = store.outbox_claim([e.event_id for e in chunk], claim, now_iso())
            mine = [e for e in chunk if e.event_id in claimed]
            if mine:
                write_claim(store, audit_url, claim, mine, result)
    return result


def publish_leftovers(
    store: LedgerBackend,
    audit_url: str,
    *,
    grace: timedelta = timedelta(minutes=5),
    limit: int = 10_000,
    now: datetime | None = None,
    into: Published | None = None,
) -> Published:
    """Publish what crashed (or failed) publishers left in the outbox, committed more than ``grace`` ago.

    Claimed entries are re-written under their claim's file name (claimed more than ``grace`` ago: a live
    publisher finishes its file well within it); unclaimed ones are claimed into new files.
    """
    bound = _iso((now or datetime.now(UTC)) - grace)
    result = into or Published()
    start = result.events
    while True:
        entries = store.outbox_list(bound, limit)
        claims: dict[str, list[OutboxEntry]] = defaultdict(list)
        unclaimed: list[OutboxEntry] = []
        for entry in entries:
            if entry.claim is None:
                unclaimed.append(entry)
            elif (entry.claimed_at or "") < bound:
                claims[entry.claim].append(entry)
        before = result.events
        for claim, group in sorted(claims.items()):
            unclaimed.extend(write_claim(store, audit_url, claim, group, result))
        publish_entries(store, audit_url, unclaimed, result)
        if len(entries) < limit or result.events == before:
            break
    if result.events > start:
        log.info("published %d audit events left in the outbox", result.events - start)
    return result
