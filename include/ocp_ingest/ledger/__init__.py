"""The call ledger: one record per call, the source of truth for every recording's state."""

from __future__ import annotations

from ocp_ingest.config import Settings
from ocp_ingest.ledger.base import Ledger, LedgerBackend, LedgerContention, state_label
from ocp_ingest.ledger.model import CallRecord, CallStatus, IngestionSource, TerminalState
from ocp_ingest.ledger.transitions import Outcome, TransitionResult


def open_ledger(settings: Settings | None = None, *, actor: str | None = None) -> Ledger:
    """The ledger the configuration selects: SQLite (embedded default) or DynamoDB (production).

    With ``OCP_INGEST_AUDIT_EVENTS`` on (the default) every applied transition also becomes an audit event,
    attributed to ``actor``, committed with the change in the ledger's outbox and published to Parquet on
    close (or :meth:`Ledger.flush_audit`). Off: no event, no outbox row.
    """
    settings = settings or Settings.from_env()
    audit = None
    if settings.audit_events:
        from ocp_ingest.audit.sink import AuditSink

        audit = AuditSink(settings.audit_url, actor=actor, batch_size=settings.audit_batch_size)
    backend: LedgerBackend
    if settings.ledger_backend == "dynamodb":
        from ocp_ingest.ledger.dynamodb import DynamoLedgerBackend

        backend = DynamoLedgerBackend(
            settings.dynamodb_table,
            region_name=settings.aws_region,
            endpoint_url=settings.dynamodb_endpoint_url,
            pending_horizon_days=settings.ocp_retention_days + 30,
        )
    else:
        from ocp_ingest.ledger.sqlite import SqliteLedgerBackend

        backend = SqliteLedgerBackend(settings.ledger_sqlite_path)
    return Ledger(backend, audit=audit)


__all__ = [
    "CallRecord",
    "CallStatus",
    "IngestionSource",
    "Ledger",
    "LedgerBackend",
    "LedgerContention",
    "Outcome",
    "TerminalState",
    "TransitionResult",
    "open_ledger",
    "state_label",
]
