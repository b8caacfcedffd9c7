"""The verdict on a flow: its figures and whether the invariants hold.

Every generated call is stored with the ground truth's bytes or terminal with a reason; no recording is
stored twice or changed after it was stored; no stored object lacks its ledger row; the audit trail's
STORED events agree with the ledger.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ocp_ingest.storage.objects import object_path, sha256_of

if TYPE_CHECKING:
    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import Ledger
    from ocp_ingest_dev.demo.flow import Flow


def recordings_roots(recordings_url: str, lobs: Iterable[str]) -> list[str]:
    """The roots holding stored recordings: one per LOB when the URL has '{lob}' (a bucket per LOB)."""
    if "{lob}" in recordings_url:
        return [recordings_url.replace("{lob}", lob) for lob in lobs]
    return [recordings_url]


def stored_objects(recordings_url: str, lobs: Iterable[str]) -> dict[str, list[str]]:
    """Every stored recording by dialog id (the object name is ``{dialog_id}.{ext}``), read through the
    storage layer: local disk and S3 alike. The values are the objects' URLs as the ledger records them."""
    found: dict[str, list[str]] = {}
    for root_url in recordings_roots(recordings_url, lobs):
        root = object_path(root_url)
        if not root.exists():
            continue
        for path in sorted(root.rglob("*"), key=str):
            if path.is_file() and not path.name.startswith("."):
                found.setdefault(path.name.split(".", 1)[0].upper(), []).append(str(path))
    return found


def stored_sha256(url: str) -> str | None:
    """SHA-256 of a stored object re-read through the storage layer (None: it is not there)."""
    path = object_path(url)
    try:
        return sha256_of(path)[0]
    except FileNotFoundError:
        return None


@dataclass
class Evidence:
    """What a verdict looks at, however the flow ran (dag.test in-process or the distributed topology)."""

    #: Every generated call's dialog id.
    call_ids: list[str]
    #: The ledger's record of each call it knows.
    records: Mapping[str, Any]
    #: The ground truth: SHA-256 of OCP's recording, for the calls that have one.
    truth_sha256: Mapping[str, str]
    #: Stored recordings found in storage, by dialog id (:func:`stored_objects`).
    objects: Mapping[str, list[str]]
    #: (sha256, object_url, stored_at) of calls seen stored earlier: none may change later.
    stored_before: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    #: Audit trail vs ledger: calls checked and disagreements by kind (:func:`audit_disagreements`).
    audit_checked: int = 0
    audit: Mapping[str, list[str]] = field(default_factory=dict)


def judge(evidence: Evidence) -> dict[str, Any]:
    """The invariants and the figures of one flow (``violations`` empty and nothing unresolved: ``ok``).

    Every generated call is stored with the ground truth's bytes (re-read from storage) or terminal with a
    reason; no recording is stored twice or changed after it was stored; no stored object lacks its ledger
    row; the audit trail's STORED events agree with the ledger.
    """
    records, truth = evidence.records, evidence.truth_sha256
    violations: list[str] = []
    mismatches, orphans = [], []
    for dialog_id, record in records.items():
        if not record.s3_stored:
            continue
        if dialog_id not in truth:
            violations.append(f"{dialog_id}: stored but OCP has no recording for it")
            continue
        actual = stored_sha256(record.object_url) if record.object_url else None
        if actual != truth[dialog_id] or record.sha256 != truth[dialog_id]:
            mismatches.append(dialog_id)
    for dialog_id, urls in evidence.objects.items():
        record = records.get(dialog_id)
        if record is None or not record.s3_stored or record.object_url not in urls:
            orphans.append(dialog_id)
    duplicates = sorted(d for d, urls in evidence.objects.items() if len(urls) > 1)
    unresolved = [
        d for d in evidence.call_ids if (r := records.get(d)) is None or not (r.s3_stored or r.is_terminal)
    ]
    for dialog_id, record in records.items():
        if record.is_terminal and not record.terminal_reason:
            violations.append(f"{dialog_id}: terminal without a reason")
    violations += [f"{d}: stored bytes differ from the ground truth" for d in mismatches]
    violations += [f"{d}: stored object without its ledger row" for d in orphans]
    violations += [f"{d}: recording stored twice" for d in duplicates]
    overwritten = [
        d
        for d, before in evidence.stored_before.items()
        if (r := records.get(d)) is None or (r.sha256, r.object_url, r.s3_stored_at) != before
    ]
    violations += [f"{d}: stored recording changed after it was stored" for d in overwritten]
    violations += [f"{d}: neither stored nor terminal" for d in unresolved]
    violations += [f"{d}: audit {kind}" for kind, ids in evidence.audit.items() for d in ids]
    stored = [r for r in records.values() if r.s3_stored]
    return {
        "calls_generated": len(evidence.call_ids),
        "calls_with_recording": len(truth),
        "with_dialog_end": sum(1 for r in records.values() if r.has_cdr_end),
        "stored_realtime": sum(
            1 for r in stored if r.ingestion_source and r.ingestion_source.value == "REALTIME"
        ),
        "stored_reconciliation": sum(
            1 for r in stored if r.ingestion_source and r.ingestion_source.value == "RECONCILIATION"
        ),
        "stored_bytes": sum(r.size_bytes or 0 for r in stored),
        "terminal_by_reason": dict(
            Counter(r.terminal_state.value for r in records.values() if r.terminal_state and not r.s3_stored)
        ),
        "unresolved": len(unresolved),
        "unresolved_ids": unresolved[:50],
        "duplicates": len(duplicates),
        "checksum_mismatches": len(mismatches),
        "orphan_objects": len(orphans),
        "overwritten": len(overwritten),
        "audit_checked": evidence.audit_checked,
        "audit_disagreements": {kind: len(ids) for kind, ids in evidence.audit.items()},
        "violations": violations[:100],
        "ok": not violations,
    }


def audit_disagreements(
    ledger: Ledger, settings: Settings, window_start: datetime, window_hours: float
) -> tuple[int, dict[str, list[str]]]:
    """How many stored calls were checked, and those whose audit trail disagrees with the ledger.

    ``ocp-ingest verify``'s audit check: every STORED transition must have its audit event with the same
    SHA-256; the audit trail is on from the start of a flow, so a missing event counts too.
    """
    from ocp_ingest.report.verify import verify

    if not settings.audit_events:
        return 0, {}
    start = window_start - timedelta(hours=1)
    end = start + timedelta(hours=window_hours + 3)
    result = verify(ledger, settings, start, end)
    found: dict[str, list[str]] = {}
    for finding in result.findings:
        if finding.kind in ("audit_missing", "audit_mismatch"):
            found.setdefault(finding.kind, []).append(finding.dialog_id)
    return result.checked, found


def summarize(flow: Flow) -> dict[str, Any]:
    """The figures and the invariants of an in-process ``flow`` (``violations`` empty: ``ok``)."""
    from ocp_ingest.routing import LobRouter

    records = flow.records()
    settings = flow.settings
    audit_checked, audit = audit_disagreements(
        flow.ledger, settings, flow.sim.config.window_start, flow.sim.config.window_hours
    )
    verdict = judge(
        Evidence(
            call_ids=[c.dialog_id for c in flow.calls],
            records=records,
            truth_sha256={
                c.dialog_id: flow.sim.exports.recording_digest(c)[0] for c in flow.calls if c.has_recording
            },
            objects=stored_objects(settings.recordings_url, LobRouter.load(settings.lob_routing_file).lobs),
            stored_before=flow.stored_before_reconciliation,
            audit_checked=audit_checked,
            audit=audit,
        )
    )
    push_outcomes = Counter(p.audio for p in flow.plans.values())
    violations = verdict.pop("violations")
    ok = verdict.pop("ok")
    return {
        **verdict,
        "dialog_end_lost_in_push": sum(1 for p in flow.plans.values() if p.dialog_end_lost),
        "push_outcomes": dict(push_outcomes),
        "ocp_faults_injected": dict(flow.sim.faults.injected),
        "exports_created": len(flow.sim.exports.list(None)),
        "realtime_runs": flow.realtime_runs,
        "reconciliation_runs": flow.reconciliation_runs,
        "backfill_runs": flow.backfill_runs,
        "task_retries": flow.task_retries,
        "failed_dag_runs": list(flow.failed_runs),
        "elapsed_s": round(flow.elapsed_s, 1),
        "violations": violations,
        "ok": ok,
        "config": asdict(flow.config),
    }
