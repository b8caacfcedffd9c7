"""Watching a running stack's calls until every one is settled, then running the completeness report.

Shared by the embedded ``make run`` and the distributed topology: both read the simulator's ground truth
and the configured ledger (SQLite or DynamoDB), print a progress line, and once every call is stored or
terminal with a reason trigger the report of each day of calls through Airflow's REST API.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ocp_ingest_dev.stack.airflow_api import AirflowApi
from ocp_ingest_dev.stack.tally import RunTally


def watch_calls(
    truth_path: Path,
    alive: Callable[[], bool],
    started: float,
    interval_s: float,
    stream: Any,
    timeout_s: float | None = None,
    on_tick: Callable[[Any, dict[str, Any]], None] | None = None,
    settle_check_s: float | None = None,
    until: Callable[[], bool] | None = None,
) -> tuple[RunTally, dict[str, Any]] | None:
    """Print progress until every call is settled: the settled tally and the truth, or None if a component
    died (``alive`` turned false) or ``timeout_s`` passed first. ``on_tick(ledger, truth)`` runs at each
    look at the ledger (e.g. to remember what was stored when). The ledger is read every ``settle_check_s``
    (default: ``interval_s``) and a progress line printed every ``interval_s``, and once settled; with
    ``until``, settled calls are not the end until it holds too (e.g. every scheduled fault struck and
    recovered)."""
    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger
    from ocp_ingest_dev.stack.tally import load_truth, tally

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    check_s = min(interval_s, settle_check_s) if settle_check_s else interval_s
    tty = bool(getattr(stream, "isatty", lambda: False)())
    last_check = last_line = -float("inf")  # the first look is at once, whatever the clock reads
    with open_ledger(Settings.from_env()) as ledger:
        while alive() and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.5)
            if time.monotonic() - last_check < check_s:
                continue
            last_check = time.monotonic()
            truth = load_truth(truth_path)
            if truth is None:
                continue
            now = tally(ledger, truth)
            if on_tick is not None:
                on_tick(ledger, truth)
            done = now.settled and (until is None or until())
            if done or time.monotonic() - last_line >= interval_s:
                last_line = time.monotonic()
                line = now.line(time.monotonic() - started)
                stream.write(("\r\x1b[K" + line) if tty else line + "\n")
                stream.flush()
            if done:
                stream.write("\n" if tty else "")
                return now, truth
    return None


def report_settled(
    settled: RunTally,
    truth: dict[str, Any],
    elapsed_s: float,
    stream: Any,
    api: AirflowApi,
    ui_url: str,
) -> list[Any]:
    """Every call is settled: say so, run the completeness report of each day of calls, say where it is."""
    from ocp_ingest.config import Settings
    from ocp_ingest_dev.stack.reports import run_reports
    from ocp_ingest_dev.stack.tally import call_days

    reasons = ", ".join(f"{k} {v}" for k, v in sorted(settled.terminal.items())) or "none"
    stream.write(
        f"All {settled.calls} calls settled in {elapsed_s:.0f} s: "
        f"{settled.stored_realtime} stored by realtime, {settled.stored_reconciliation} by "
        f"reconciliation, terminal with a reason: {reasons}.\nRunning the completeness report...\n"
    )
    stream.flush()
    outcomes: list[Any] = []
    try:
        outcomes = run_reports(api, call_days(truth), Settings.from_env().audit_url)
        for outcome in outcomes:
            stream.write(outcome.line() + "\n")
    except (httpx.HTTPError, OSError, ValueError) as exc:
        stream.write(f"  the report could not be run through the Airflow API: {exc}\n")
    finally:
        api.close()
    stream.write(f"Airflow UI: {ui_url}  (Ctrl-C stops everything)\n")
    stream.flush()
    return outcomes
