"""The export lifecycle, the one place it lives: request (or adopt) a plan's export, remember it on the
planned calls, re-create it when it expired, keep its metadata, and put its milestones (EXPORT_COMPLETED,
EXPORT_EXPIRED) in each planned call's audit trail.

OCP runs one export at a time per group; a 409 means "another export is being prepared", never failure.
If that export is this plan's own (same group, window and data types: a retried task or a cleared run)
it is adopted. The Airflow sensor (waiting deferred) and the downloader (waiting synchronously, after an
export expired during its download) both use these functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Literal

from ocp_ingest.ledger import CallRecord, Ledger, Outcome
from ocp_ingest.ledger.transitions import ExportRequested
from ocp_ingest.ocp import wire
from ocp_ingest.ocp.client import OcpClient
from ocp_ingest.ocp.errors import ExportConflict, OcpError
from ocp_ingest.reconcile.plan import ExportPlan
from ocp_ingest.storage import ObjectExists, StorageLayout, write_create_only

log = logging.getLogger(__name__)

#: What every reconciliation export asks for: the audio and the dialog_end CDRs of the same window
#: (one export, so the manifest diff and the recordings describe exactly the same calls).
EXPORT_DATA_TYPES: tuple[str, ...] = (wire.DataType.RECORDINGS.value, wire.DataType.DIALOG_END.value)
#: Ledger transitions written per transaction (a short write lock: other writers interleave between batches)
LEDGER_BATCH = 500


class ExportOutcomeStatus(StrEnum):
    """How one plan's export chain ended (the values travel as plain strings in XComs and summaries)."""

    #: OCP's final states of an export
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    #: still being prepared when the wait gave up
    TIMEOUT = "TIMEOUT"
    #: another export kept the group busy: nothing was tried
    BLOCKED = "BLOCKED"
    #: params.dry_run: nothing was asked of OCP
    DRY_RUN = "DRY_RUN"
    #: requesting or waiting failed after its retries (our failure, not the call's)
    ERROR = "ERROR"
    #: the download failed after its retries (our failure, not the call's)
    DOWNLOAD_FAILED = "DOWNLOAD_FAILED"


def adoptable(export: wire.Export, plan: ExportPlan) -> bool:
    """An existing export this plan can use instead of its own: same group, window and data types.

    That is what a retried task or a cleared run finds after a 409: its own earlier export.
    """
    return (
        export.group == plan.ocp_group
        and (export.start, export.end) == (plan.start, plan.end)
        and set(EXPORT_DATA_TYPES) <= {d.value for d in export.data_types}
        and (export.status.is_active or export.status is wire.ExportStatus.COMPLETED)
    )


def create_or_adopt(client: OcpClient, plan: ExportPlan) -> tuple[str | None, str | None]:
    """Create the plan's export. Returns ``(export_id, None)`` when created or adopted, or
    ``(None, blocking_export_id)`` when another export holds the group: a 409 means "wait", not failure.
    """
    for _ in range(3):  # the blocker may finish between the 409 and our look at it
        try:
            export = client.create_export(plan.ocp_group, plan.start, plan.end, EXPORT_DATA_TYPES)
            return export.export_id, None
        except ExportConflict as conflict:
            blocker = getattr(conflict, "active_export_id", None)
            if blocker:
                candidates = [client.get_export(blocker)]
            else:
                candidates = [e for e in client.list_exports(plan.ocp_group) if e.status.is_active]
            for export in candidates:
                if adoptable(export, plan):
                    log.info(
                        "adopting export %s for %s (409: it is this plan's own)", export.export_id, plan.label
                    )
                    return export.export_id, None
            active = [e for e in candidates if e.status.is_active]
            if active:
                return None, active[0].export_id
    raise ExportConflict(f"group {plan.ocp_group}: export keeps conflicting without an active export")


def remember_export(ledger: Ledger, dialog_ids: Sequence[str], export_id: str) -> int:
    """``ExportRequested`` on each planned call: the export that carries it (the stored record keeps it).

    Done once the export exists, while OCP prepares it; re-applying the same export is UNCHANGED (no write,
    no audit event), so a retried task changes nothing twice. Returns how many records changed.
    """
    todo = [ExportRequested(d, export_id) for d in dict.fromkeys(dialog_ids)]
    changed = 0
    for i in range(0, len(todo), LEDGER_BATCH):  # one transaction per batch
        results = ledger.apply_many(todo[i : i + LEDGER_BATCH])
        changed += sum(r.outcome is Outcome.APPLIED for r in results)
    log.info("export %s remembered on %d of %d planned calls", export_id, changed, len(dialog_ids))
    return changed


Milestone = Literal["EXPORT_COMPLETED", "EXPORT_EXPIRED"]


def milestone_event_id(event_type: Milestone, export_id: str, dialog_id: str) -> str:
    """The audit event id of one milestone: the same (kind, export, call) is the same event wherever and
    however often it is observed, so any copy that slips through is one event to the outbox and compaction."""
    return hashlib.sha256(f"{event_type}\0{export_id}\0{dialog_id}".encode()).hexdigest()[:32]


def audit_milestone(
    ledger: Ledger,
    layout: StorageLayout,
    event_type: Milestone,
    dialog_ids: Sequence[str],
    export_id: str,
    detail: str | Callable[[str], str],
    *,
    records: Mapping[str, CallRecord] | None = None,
) -> int:
    """Put an export milestone in each planned call's audit trail, once; returns how many calls got it now.

    One export's expiry (or completion) is observed by the sensor, by the downloader, and again by every
    retried task; the trail must hold it once per (export, kind, call). So the events are put in the
    ledger's outbox, then a create-only marker ``reconciliation/milestones/...`` (named by export, kind and
    the calls) says they are written, and an observer that finds the marker writes nothing. A crash between
    the two writes them again with the same event ids (:func:`milestone_event_id`): never a second event.
    ``detail``: one text for every call, or a function of the dialog id. ``records``: the calls' ledger
    records, if read already.
    """
    if ledger.audit is None:
        return 0
    # Imported here: the audit schema loads pyarrow, which only a milestone needs.
    from dataclasses import replace

    from ocp_ingest.audit.events import export_event
    from ocp_ingest.audit.schema import AuditEventType

    wanted = list(dict.fromkeys(dialog_ids))
    calls = hashlib.sha256("\n".join(sorted(wanted)).encode()).hexdigest()[:16]
    marker = layout.reconciliation_record_path("milestones", f"{export_id} {event_type} {calls}")
    if marker.exists():
        log.info("%s of export %s is in the audit trail already (%s)", event_type, export_id, marker)
        return 0
    if records is None:
        records = ledger.get_many(wanted)
    at = ledger.clock()
    written = 0
    for dialog_id in wanted:
        if dialog_id in records:
            text = detail if isinstance(detail, str) else detail(dialog_id)
            event = export_event(
                AuditEventType(event_type), records[dialog_id], export_id, at=at, detail=text
            )
            ledger.audit_event(replace(event, event_id=milestone_event_id(event_type, export_id, dialog_id)))
            written += 1
    ledger.persist_audit()  # durable in the outbox before the marker says so (published at the flush)
    body = {"export_id": export_id, "event_type": event_type, "dialog_ids": wanted}
    with contextlib.suppress(ObjectExists):  # another observer got there first: same events, same ids
        write_create_only(marker, [json.dumps(body, sort_keys=True).encode()])
    return written


def replace_expired(
    client: OcpClient, ledger: Ledger, layout: StorageLayout, plan: ExportPlan, expired_id: str, detail: str
) -> tuple[str | None, str | None]:
    """An expired export's replacement: the EXPORT_EXPIRED milestone (once), then :func:`create_or_adopt`."""
    log.warning("export %s expired (%s): re-creating it for %s", expired_id, detail, plan.label)
    audit_milestone(ledger, layout, "EXPORT_EXPIRED", plan.dialog_ids, expired_id, detail)
    return create_or_adopt(client, plan)


def recreate_and_wait(
    client: OcpClient,
    ledger: Ledger,
    layout: StorageLayout,
    plan: ExportPlan,
    expired_id: str,
    *,
    poll_interval_s: float,
    max_wait_s: float,
) -> str:
    """:func:`replace_expired`, waited for synchronously (rare: results live a day); the new export id."""
    deadline = time.monotonic() + max_wait_s
    export_id, blocker = replace_expired(
        client, ledger, layout, plan, expired_id, "expired during the download"
    )
    while export_id is None:  # another export holds the group: wait for it to finish, then create
        if time.monotonic() > deadline:
            raise OcpError(f"group {plan.ocp_group} is busy with export {blocker}; left for the next run")
        time.sleep(poll_interval_s)
        export_id, blocker = create_or_adopt(client, plan)
    client.wait_for_export(export_id, poll_interval_s=poll_interval_s, timeout_s=max_wait_s)
    return export_id


def keep_export_metadata(
    client: OcpClient,
    export_id: str,
    listing: Sequence[wire.ExportFile],
    plan: ExportPlan,
    ledger: Ledger,
    layout: StorageLayout,
    *,
    records: Mapping[str, CallRecord] | None = None,
) -> bool:
    """Keep the export with its calls: its metadata and listing as ``reconciliation/exports/{id}.json``
    (create-only) and an EXPORT_COMPLETED milestone in each planned call's audit trail (once: see
    :func:`audit_milestone`), so a retried download (or a re-run) writes neither again.

    Returns True when this call wrote the record. ``records``: the planned calls' ledger records, if read
    already.
    """
    export = client.get_export(export_id)
    planned = set(plan.dialog_ids)
    record: dict[str, object] = {
        "export": json.loads(export.model_dump_json()),
        "plan": plan.to_dict(),
        "files": dict(Counter(f.data_type.value for f in listing)),
        "bytes": sum(f.size for f in listing),
        "planned_recordings": {
            f.dialog_id: {"name": f.name, "size": f.size, "sha256": f.sha256}
            for f in listing
            if f.dialog_id in planned
        },
    }
    listed = sum(f.data_type is wire.DataType.RECORDINGS for f in listing)
    missing = "not in the export's listing"
    if listed and planned and not record["planned_recordings"]:
        # Kept with the export and in each call's trail: the listing had recordings, none of ours.
        record["anomaly"] = f"{listed} recording(s) listed, none of the plan's {len(planned)} call(s)"
        missing += f" ({record['anomaly']}: anomaly)"
    dest = layout.reconciliation_record_path("exports", export_id)
    try:
        first_time = write_create_only(dest, [json.dumps(record, sort_keys=True, indent=1).encode()]).created
    except ObjectExists:  # written by an earlier try with other content (e.g. a re-listing): it stands
        first_time = False
    names = {f.dialog_id: f.name for f in listing if f.dialog_id}
    audit_milestone(
        ledger,
        layout,
        "EXPORT_COMPLETED",
        plan.dialog_ids,
        export_id,
        lambda d: f"file {names[d]}" if d in names else missing,
        records=records,
    )
    return first_time
