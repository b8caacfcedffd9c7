"""The call ledger: one record per call, the source of truth for every recording's state."""

from __future__ import annotations

from ocp_ingest.config import Settings
from ocp_ingest.ledger.base import Ledger, LedgerBackend, LedgerContention, state_label
from ocp_ingest.ledger.model import CallRecord, CallStatus, IngestionSource, TerminalState
from ocp_ingest.ledger.transitions import Outcome, TransitionResult


def open_ledger(settings: Settings | None = None) -> Ledger:
    """The ledger the configuration selects: SQLite (embedded default) or DynamoDB (production)."""
    settings = settings or Settings.from_env()
    if settings.ledger_backend == "dynamodb":
        from ocp_ingest.ledger.dynamodb import DynamoLedgerBackend

        return Ledger(
            DynamoLedgerBackend(
                settings.dynamodb_table,
                region_name=settings.aws_region,
                endpoint_url=settings.dynamodb_endpoint_url,
                pending_horizon_days=settings.ocp_retention_days + 30,
            )
        )
    from ocp_ingest.ledger.sqlite import SqliteLedgerBackend

    return Ledger(SqliteLedgerBackend(settings.ledger_sqlite_path))


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
