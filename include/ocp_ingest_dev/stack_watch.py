"""What ``make run`` shows while the stack works: progress, the moment every call is settled, the report.

* :func:`tally` accounts for exactly the calls the simulator plays (its ground truth, written before the
  first push) against the ledger: stored by realtime / by reconciliation, terminal by reason, pending
  (ended, not stored), open (no dialog_end yet) and not yet seen.
* :class:`AirflowApi` is the few calls of Airflow's public REST API the stack needs: a JWT from the simple
  auth manager, trigger a DAG run with a conf, read its state.
* :func:`run_reports` triggers ``ocp_completeness_report`` for each day the calls started on, waits for the
  runs, and returns where the HTML reports and the runs are.

Nothing here runs inside Airflow; it only reads the ledger and talks HTTP.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx

from ocp_ingest.ledger import IngestionSource, Ledger
from ocp_ingest.ledger.base import state_label

REPORT_DAG = "ocp_completeness_report"


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


class AirflowApi:
    """Airflow's public REST API (v2) with a token from the simple auth manager."""

    def __init__(self, base_url: str, username: str, password: str, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)
        self._token: str | None = None

    @classmethod
    def for_standalone(cls, base_url: str, airflow_home: Path) -> AirflowApi:
        """The admin user ``airflow standalone`` generated (its password file in AIRFLOW_HOME)."""
        passwords = json.loads((airflow_home / "simple_auth_manager_passwords.json.generated").read_text())
        username = "admin" if "admin" in passwords else next(iter(passwords))
        return cls(base_url, username, passwords[username])

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            response = self._http.post("/auth/token", json=self._credentials)
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        response = self._http.post(
            f"/api/v2/dags/{dag_id}/dagRuns",
            json={"logical_date": None, "conf": conf},
            headers=self._headers(),
        )
        response.raise_for_status()
        return str(response.json()["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        response = self._http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", headers=self._headers())
        response.raise_for_status()
        return str(response.json()["state"])

    def wait(self, dag_id: str, run_id: str, timeout_s: float = 600.0, poll_s: float = 2.0) -> str:
        deadline = time.monotonic() + timeout_s
        state = self.run_state(dag_id, run_id)
        while state not in ("success", "failed") and time.monotonic() < deadline:
            time.sleep(poll_s)
            state = self.run_state(dag_id, run_id)
        return state

    def run_url(self, dag_id: str, run_id: str) -> str:
        return f"{self.base_url}/dags/{dag_id}/runs/{run_id}"

    def close(self) -> None:
        self._http.close()


@dataclass(frozen=True)
class ReportOutcome:
    day: date
    state: str
    run_url: str
    html: Path | None
    total: dict[str, Any] | None

    def line(self) -> str:
        if self.total is None:
            return f"  report {self.day}: run {self.state}, no report file ({self.run_url})"
        t = self.total
        return (
            f"  report {self.day}: {t.get('completeness_pct')}% complete of {t.get('calls_ended')} calls "
            f"(stored {t.get('stored')}, terminal {t.get('terminal_by_reason')}, unresolved "
            f"{t.get('unresolved')}), run {self.state}\n"
            f"    {self.html.as_uri() if self.html else '-'}\n    {self.run_url}"
        )


def newest_report(reports_root: Path, day: date, since: float) -> tuple[Path | None, dict[str, Any] | None]:
    """The HTML and JSON totals of the newest report of ``day`` written after ``since`` (epoch seconds)."""
    folder = reports_root / f"dt={day:%Y-%m-%d}"
    found = sorted(p for p in folder.glob("completeness-*.json") if p.stat().st_mtime >= since)
    if not found:
        return None, None
    newest = found[-1]
    return newest.with_suffix(".html"), json.loads(newest.read_text())["total"]


def run_reports(api: AirflowApi, days: list[date], reports_root: Path) -> list[ReportOutcome]:
    """One ``ocp_completeness_report`` run per day (the DAG's ``date`` param), waited for in turn."""
    outcomes = []
    for day in days:
        started = time.time() - 1
        run_id = api.trigger(REPORT_DAG, {"date": day.isoformat()})
        state = api.wait(REPORT_DAG, run_id)
        html, total = newest_report(reports_root, day, started)
        outcomes.append(ReportOutcome(day, state, api.run_url(REPORT_DAG, run_id), html, total))
    return outcomes


__all__ = ["AirflowApi", "ReportOutcome", "RunTally", "call_days", "load_truth", "run_reports", "tally"]
