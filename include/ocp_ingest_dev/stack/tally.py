"""Where the local stack's calls stand: the progress ``make run`` prints and the moment all are settled.

:func:`tally` accounts for exactly the calls the simulator plays (its ground truth, written before the
first push) against the ledger: stored by realtime / by reconciliation, terminal by reason, pending
(ended, not stored), open (no dialog_end yet) and not yet seen. It only reads the ledger.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ocp_ingest.ledger import IngestionSource, Ledger
from ocp_ingest.ledger.base import state_label


@dataclass
class RunTally:
    """Where the simulated calls of this run stand."""

    calls: int = 0
    push_complete: bool = False
    stored_realtime: int = 0
    stored_reconciliation: int = 0
    terminal: Counter[str] = field(default_factory=Counter)
    pending: int = 0
    open: int = 0
    unseen: int = 0

    @property
    def stored(self) -> int:
        return self.stored_realtime + self.stored_reconciliation

    @property
    def settled(self) -> bool:
        """Every call stored or terminal with a reason, and no push still to come."""
        return (
            self.push_complete and self.calls > 0 and self.stored + sum(self.terminal.values()) == self.calls
        )

    def line(self, elapsed_s: float) -> str:
        terminal = sum(self.terminal.values())
        return (
            f"[{elapsed_s:6.0f}s] calls {self.calls}{'' if self.push_complete else ' (pushing)'}  "
            f"stored {self.stored} (realtime {self.stored_realtime}, reconciliation "
            f"{self.stored_reconciliation})  terminal {terminal}  pending {self.pending}  "
            f"open {self.open}  not seen {self.unseen}"
        )


def load_truth(path: Path) -> dict[str, Any] | None:
    """The simulator's ground truth, or None before it is written (it is replaced atomically)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def tally(ledger: Ledger, truth: dict[str, Any]) -> RunTally:
    ids = [c["dialog_id"] for c in truth["calls"]]
    records = ledger.get_many(ids)
    result = RunTally(calls=len(ids), push_complete=bool(truth.get("push_complete", True)))
    for dialog_id in ids:
        record = records.get(dialog_id)
        label = state_label(record) if record is not None else "UNSEEN"
        if label == "STORED" and record is not None:
            reconciled = record.ingestion_source is IngestionSource.RECONCILIATION
            result.stored_reconciliation += reconciled
            result.stored_realtime += not reconciled
        elif label.startswith("TERMINAL:"):
            result.terminal[label.removeprefix("TERMINAL:")] += 1
        elif label == "PENDING":
            result.pending += 1
        elif label == "OPEN":
            result.open += 1
        else:
            result.unseen += 1
    return result


def call_days(truth: dict[str, Any]) -> list[date]:
    """The UTC days the calls started on: one completeness report each."""
    return sorted({datetime.fromtimestamp(c["start"] / 1000, UTC).date() for c in truth["calls"]})
