"""Integrity check: re-read stored recordings, recompute SHA-256, compare with the ledger and the audit.

The audit side is the Parquet trail plus the events still waiting in the ledger's outbox (committed with
their transition, not published yet).

``ocp-ingest verify`` lists every stored call whose object is missing, whose bytes or size differ from the
ledger, or whose audit STORED event names other bytes, and exits non-zero when there is any.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ocp_ingest.audit.schema import AuditEventType
from ocp_ingest.audit.tables import read_events
from ocp_ingest.config import Settings
from ocp_ingest.ledger import Ledger
from ocp_ingest.ledger.model import CallRecord
from ocp_ingest.storage import object_path, sha256_of

#: Problems that fail verification. ``audit_missing`` is reported but does not fail (the audit trail may
#: have been enabled after the call was stored).
FAILING = ("missing", "sha256_mismatch", "size_mismatch", "audit_mismatch")


@dataclass(frozen=True)
class Finding:
    dialog_id: str
    kind: str
    object_url: str | None
    detail: str


@dataclass
class VerifyResult:
    checked: int = 0
    ok: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(f.kind in FAILING for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "ok": self.ok,
            "failed": self.failed,
            "findings": [asdict(f) for f in self.findings],
        }


def stored_calls(ledger: Ledger, start: datetime, end: datetime, lob: str | None = None) -> list[CallRecord]:
    return [r for r in ledger.calls_started_between(start, end, lob=lob) if r.s3_stored]


def audit_stored_sha(audit_url: str, first: date, last: date, lob: str | None) -> dict[str, set[str]]:
    """SHA-256 of every STORED audit event between the days (a call's events come after its start)."""
    table = read_events(audit_url, first, last, lob)
    found: dict[str, set[str]] = {}
    for row in table.select(["event_type", "dialog_id", "sha256"]).to_pylist():
        if row["event_type"] == AuditEventType.STORED.value and row["dialog_id"]:
            found.setdefault(row["dialog_id"], set()).add(row["sha256"])
    return found


def outbox_stored_sha(ledger: Ledger, lob: str | None, limit: int = 100_000) -> dict[str, set[str]]:
    """STORED events committed in the ledger's outbox, not published yet: recorded, durably."""
    listing = getattr(ledger.backend, "outbox_list", None)
    if listing is None:
        return {}
    from ocp_ingest.audit.events import AuditEvent

    found: dict[str, set[str]] = {}
    for entry in listing("9999", limit):
        event = AuditEvent.from_json(entry.body)
        if event.event_type == AuditEventType.STORED.value and event.dialog_id and lob in (None, event.lob):
            found.setdefault(event.dialog_id, set()).add(event.sha256 or "")
    return found


def verify(
    ledger: Ledger,
    settings: Settings,
    start: datetime,
    end: datetime,
    *,
    lob: str | None = None,
    sample: int | None = None,
    seed: int | None = None,
    now: datetime | None = None,
) -> VerifyResult:
    """Check the stored recordings of calls started in ``[start, end)`` (all, or a random sample)."""
    calls = stored_calls(ledger, start, end, lob)
    if sample is not None and sample < len(calls):
        calls = random.Random(seed).sample(calls, sample)
    today = (now or datetime.now(UTC)).date()
    audit = None
    if settings.audit_events:
        audit = audit_stored_sha(settings.audit_url, start.date(), today, lob)
        for dialog_id, sha in outbox_stored_sha(ledger, lob).items():
            audit.setdefault(dialog_id, set()).update(sha)
    result = VerifyResult()
    for record in sorted(calls, key=lambda r: r.dialog_id):
        result.checked += 1
        before = len(result.findings)
        _check_object(record, result)
        if audit is not None:
            shas = audit.get(record.dialog_id)
            if not shas:
                result.findings.append(
                    Finding(record.dialog_id, "audit_missing", record.object_url, "no STORED audit event")
                )
            elif shas != {record.sha256}:
                detail = f"audit STORED sha256 {sorted(shas)} != ledger {record.sha256}"
                result.findings.append(Finding(record.dialog_id, "audit_mismatch", record.object_url, detail))
        if len(result.findings) == before:
            result.ok += 1
    return result


def _check_object(record: CallRecord, result: VerifyResult) -> None:
    url = record.object_url or ""
    try:
        sha, size = sha256_of(object_path(url))
    except FileNotFoundError:
        result.findings.append(Finding(record.dialog_id, "missing", url, "stored object not found"))
        return
    if sha != record.sha256:
        detail = f"object sha256 {sha} != ledger {record.sha256}"
        result.findings.append(Finding(record.dialog_id, "sha256_mismatch", url, detail))
    elif record.size_bytes is not None and size != record.size_bytes:
        detail = f"object size {size} != ledger {record.size_bytes}"
        result.findings.append(Finding(record.dialog_id, "size_mismatch", url, detail))


def window(
    day: date | None, since: date | None, until: date | None, default_days: int = 1
) -> tuple[datetime, datetime]:
    """``--date`` (one day), or ``--since``/``--until`` (inclusive days), or the last ``default_days``."""
    if day is not None:
        since = until = day
    today = datetime.now(UTC).date()
    until = until or today
    since = since or until - timedelta(days=default_days - 1)
    start = datetime(since.year, since.month, since.day, tzinfo=UTC)
    end = datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1)
    return start, end
