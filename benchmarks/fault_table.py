"""Run the fault-injection scenarios (``ocp_ingest_dev.fault_scenarios``) and print a markdown table.

    .venv/bin/python benchmarks/fault_table.py [--only ID ...] [--json PATH]

Same engine as the tests and ``ocp-ingest demo``: simulator + receiver on loopback, both DAGs with
``dag.test()`` on a private AIRFLOW_HOME (SQLite), one fresh data home per scenario.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def render(rows: list[tuple[str, dict[str, Any]]]) -> None:
    """Print the markdown table: one row per (fault, summary)."""
    print(
        "| fault | calls (with audio) | stored realtime | stored by reconciliation | terminal | unresolved | "
        "dup / mismatch / orphan | DAG runs (rt / rec) | task retries | elapsed s | invariants | notes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for fault, s in rows:
        terminal = ", ".join(f"{k} {v}" for k, v in s["terminal_by_reason"].items()) or "0"
        notes = [f"{k}={v}" for k, v in s["notes"].items() if v]
        if s["dialog_end_lost_in_push"]:
            notes.append(f"dialog_end lost for {s['dialog_end_lost_in_push']} calls")
        injected = {k: v for k, v in s["ocp_faults_injected"].items() if v}
        if injected:
            notes.append("OCP faults " + ", ".join(f"{k}: {v}" for k, v in injected.items()))
        if s["backfill_runs"]:
            notes.append(f"{s['backfill_runs']} window backfill run")
        print(
            f"| {fault} | {s['calls_generated']} ({s['calls_with_recording']}) | "
            f"{s['stored_realtime']} | {s['stored_reconciliation']} | {terminal} | {s['unresolved']} | "
            f"{s['duplicates']} / {s['checksum_mismatches']} / {s['orphan_objects']} | "
            f"{s['realtime_runs']} / {s['reconciliation_runs']} | {s['task_retries']} | {s['elapsed_s']} | "
            f"{'hold' if s['ok'] else 'VIOLATED'} | {'; '.join(notes)} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", default=None, help="scenario ids")
    parser.add_argument("--json", default=None, help="also write every summary here")
    parser.add_argument("--from-json", default=None, help="only render a table from an earlier --json")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        render([(s.get("fault", key), s) for key, s in saved.items()])
        return 0
    work = Path(tempfile.mkdtemp(prefix="fault-table-"))

    from ocp_ingest_dev.demo import prepare_airflow

    prepare_airflow(work / "airflow_home")  # before Airflow is imported by the scenarios
    logging.basicConfig(level=logging.ERROR)
    for name in ("airflow", "ocp_ingest", "httpx", "uvicorn"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    from ocp_ingest_dev.fault_scenarios import SCENARIOS, run_scenario

    rows = []
    # dag.test() logs every task line to stdout/stderr: keep those in a file, the console for the table.
    console = os.fdopen(os.dup(1), "w", buffering=1)
    saved = os.dup(1), os.dup(2)
    with open(work / "fault_table.log", "ab") as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        try:
            for scenario in SCENARIOS:
                if args.only and scenario.id not in args.only:
                    continue
                summary = run_scenario(scenario, work / scenario.id)
                rows.append((scenario, summary))
                print(f"{scenario.id}: ok={summary['ok']} {summary['elapsed_s']} s", file=console)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
    print(f"logs: {work / 'fault_table.log'}", file=sys.stderr)
    render([(scenario.fault, summary) for scenario, summary in rows])
    if args.json:
        Path(args.json).write_text(
            json.dumps({sc.id: {"fault": sc.fault, **s} for sc, s in rows}, indent=2, default=str)
        )
    return 0 if all(s["ok"] for _, s in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
