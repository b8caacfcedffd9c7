"""The verdict on a flow: its figures and whether the invariants hold.

Every generated call is stored with the ground truth's bytes or terminal with a reason; no recording is
stored twice or changed after it was stored; no stored object lacks its ledger row; the audit trail's
STORED events agree with the ledger.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ocp_ingest_dev.demo.flow import Flow


def stored_objects(home: Path) -> dict[str, list[Path]]:
    """Every stored recording file under ``home`` by dialog id (the file name is ``{dialog_id}.{ext}``)."""
    root = home / "recordings"
    found: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")) if root.exists() else []:
        if path.is_file() and not path.name.startswith("."):
            found.setdefault(path.name.split(".", 1)[0].upper(), []).append(path)
    return found


def audit_findings(flow: Flow) -> tuple[int, dict[str, list[str]]]:
    """How many stored calls were checked, and those whose audit trail disagrees with the ledger.

    ``ocp-ingest verify``'s audit check: every STORED transition must have its audit event with the same
    SHA-256; the audit trail is on from the start of a flow, so a missing event counts too.
    """
    from ocp_ingest.report.verify import verify

    if not flow.settings.audit_events:
        return 0, {}
    start = flow.sim.config.window_start - timedelta(hours=1)
    end = start + timedelta(hours=flow.sim.config.window_hours + 3)
    result = verify(flow.ledger, flow.settings, start, end)
    found: dict[str, list[str]] = {}
    for finding in result.findings:
        if finding.kind in ("audit_missing", "audit_mismatch"):
            found.setdefault(finding.kind, []).append(finding.dialog_id)
    return result.checked, found


def _stored_path(record: Any) -> Path:
    return Path((record.object_url or "").removeprefix("file://"))


def summarize(flow: Flow) -> dict[str, Any]:
    """The figures and the invariants of ``flow`` (``violations`` empty and nothing unresolved: ``ok``)."""
    records = flow.records()
    objects = stored_objects(flow.home)
    truth = {c.dialog_id: flow.sim.exports.recording_digest(c) for c in flow.calls if c.has_recording}
    violations: list[str] = []
    mismatches, orphans = [], []
    for dialog_id, record in records.items():
        if not record.s3_stored:
            continue
        if dialog_id not in truth:
            violations.append(f"{dialog_id}: stored but OCP has no recording for it")
            continue
        path = _stored_path(record)
        actual = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        if actual != truth[dialog_id][0] or record.sha256 != truth[dialog_id][0]:
            mismatches.append(dialog_id)
    for dialog_id, paths in objects.items():
        record = records.get(dialog_id)
        if record is None or not record.s3_stored or _stored_path(record) not in paths:
            orphans.append(dialog_id)
    duplicates = sorted(d for d, paths in objects.items() if len(paths) > 1)
    unresolved = flow.unresolved()
    for dialog_id, record in records.items():
        if record.is_terminal and not record.terminal_reason:
            violations.append(f"{dialog_id}: terminal without a reason")
    violations += [f"{d}: stored bytes differ from the ground truth" for d in mismatches]
    violations += [f"{d}: stored object without its ledger row" for d in orphans]
    violations += [f"{d}: recording stored twice" for d in duplicates]
    overwritten = [
        d
        for d, before in flow.stored_before_reconciliation.items()
        if (r := records.get(d)) is None or (r.sha256, r.object_url, r.s3_stored_at) != before
    ]
    violations += [f"{d}: stored recording changed after it was stored" for d in overwritten]
    violations += [f"{d}: neither stored nor terminal" for d in unresolved]
    audit_checked, audit = audit_findings(flow)
    violations += [f"{d}: audit {kind}" for kind, ids in audit.items() for d in ids]
    stored = [r for r in records.values() if r.s3_stored]
    push_outcomes = Counter(p.audio for p in flow.plans.values())
    return {
        "calls_generated": len(flow.calls),
        "calls_with_recording": len(truth),
        "with_dialog_end": sum(1 for r in records.values() if r.has_cdr_end),
        "dialog_end_lost_in_push": sum(1 for p in flow.plans.values() if p.dialog_end_lost),
        "stored_realtime": sum(
            1 for r in stored if r.ingestion_source and r.ingestion_source.value == "REALTIME"
        ),
        "stored_reconciliation": sum(
            1 for r in stored if r.ingestion_source and r.ingestion_source.value == "RECONCILIATION"
        ),
        "terminal_by_reason": dict(
            Counter(r.terminal_state.value for r in records.values() if r.terminal_state and not r.s3_stored)
        ),
        "unresolved": len(unresolved),
        "unresolved_ids": unresolved[:50],
        "duplicates": len(duplicates),
        "checksum_mismatches": len(mismatches),
        "orphan_objects": len(orphans),
        "overwritten": len(overwritten),
        "audit_checked": audit_checked,
        "audit_disagreements": {kind: len(ids) for kind, ids in audit.items()},
        "push_outcomes": dict(push_outcomes),
        "ocp_faults_injected": dict(flow.sim.faults.injected),
        "exports_created": len(flow.sim.exports.list(None)),
        "realtime_runs": flow.realtime_runs,
        "reconciliation_runs": flow.reconciliation_runs,
        "backfill_runs": flow.backfill_runs,
        "task_retries": flow.task_retries,
        "failed_dag_runs": list(flow.failed_runs),
        "elapsed_s": round(flow.elapsed_s, 1),
        "violations": violations[:100],
        "ok": not violations,
        "config": asdict(flow.config),
    }
