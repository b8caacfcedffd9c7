"""Run the fault-injection scenarios (``ocp_ingest_dev.fault_scenarios``) and print a markdown table.

    .venv/bin/python benchmarks/fault_table.py [--only ID ...] [--json PATH]
    .venv/bin/python benchmarks/fault_table.py --distributed [--calls 50] [--json PATH]

Same engine as the tests and ``ocp-ingest demo``: simulator + receiver on loopback, both DAGs with
``dag.test()`` on a private AIRFLOW_HOME (SQLite), one fresh data home per scenario (runner ``dag.test``).
``--distributed`` instead runs the process-fault schedule once on the production topology
(``ocp-ingest demo --topology distributed --faults process``: real SIGKILLs of the triggerer, a task
process, a Celery worker, the scheduler and PostgreSQL) and prints one row per fault of that run (runner
``distributed``).
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


def render(rows: list[tuple[str, dict[str, Any]]], runner: str = "dag.test") -> None:
    """Print the markdown table: one row per (fault, summary)."""
    print(
        "| fault | runner | calls (with audio) | stored realtime | stored by reconciliation | terminal "
        "| unresolved | dup / mismatch / orphan | DAG runs (rt / rec) | task retries | elapsed s "
        "| invariants | notes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for fault, s in rows:
        terminal = ", ".join(f"{k} {v}" for k, v in s["terminal_by_reason"].items()) or "0"
        notes = [*s.get("note_lines", []), *(f"{k}={v}" for k, v in s.get("notes", {}).items() if v)]
        if s["dialog_end_lost_in_push"]:
            notes.append(f"dialog_end lost for {s['dialog_end_lost_in_push']} calls")
        injected = {k: v for k, v in (s["ocp_faults_injected"] or {}).items() if v}
        if injected:
            notes.append("OCP faults " + ", ".join(f"{k}: {v}" for k, v in injected.items()))
        if s["backfill_runs"]:
            notes.append(f"{s['backfill_runs']} window backfill run")
        print(
            f"| {fault} | {runner} | {s['calls_generated']} ({s['calls_with_recording']}) | "
            f"{s['stored_realtime']} | {s['stored_reconciliation']} | {terminal} | {s['unresolved']} | "
            f"{s['duplicates']} / {s['checksum_mismatches']} / {s['orphan_objects']} | "
            f"{s['realtime_runs']} / {s['reconciliation_runs']} | {s['task_retries']} | {s['elapsed_s']} | "
            f"{'hold' if s['ok'] else 'VIOLATED'} | {'; '.join(notes)} |"
        )


def distributed_rows(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """One row per fault of a distributed fault run: the run's figures, the fault's own in its notes."""
    rows = []
    for fault in summary.get("faults", []):
        if fault["struck_at"] is None:
            lines = ["NEVER struck"]
        else:
            # the target without the run id: the component, pid or worker, the task and its try
            target = " ".join(w for w in str(fault["target"]).split() if not w.startswith("scheduled__"))
            if target == "run":
                target = "reconciliation run under way"
            lines = [f"struck at {fault['struck_at']} s ({target})"]
            lines.append(f"recovered in {fault['recover_s']} s" if fault["recovered"] else "NOT recovered")
        if fault["collateral"]:
            lines.append("restarted with it: " + ", ".join(fault["collateral"]))
        rows.append((fault["what"], {**summary, "notes": {}, "note_lines": lines}))
    return rows


def run_distributed(calls: int, seed: int, work: Path) -> dict[str, Any]:
    from ocp_ingest_dev.demo.config import FlowConfig
    from ocp_ingest_dev.demo.distributed import run_distributed_demo

    config = FlowConfig(calls=calls, seed=seed, push_loss=0.3, timeout_s=900.0)
    with open(work / "distributed.log", "a") as console:
        return run_distributed_demo(config, work / "distributed", console=console, faults="process")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", default=None, help="scenario ids")
    parser.add_argument("--json", default=None, help="also write every summary here")
    parser.add_argument("--from-json", default=None, help="only render a table from an earlier --json")
    parser.add_argument("--distributed", action="store_true", help="the process faults, distributed topology")
    parser.add_argument("--calls", type=int, default=50, help="with --distributed")
    parser.add_argument("--seed", type=int, default=4, help="with --distributed")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        if "faults" in saved:  # a --distributed summary
            render(distributed_rows(saved), runner="distributed")
            return 0
        render([(s.get("fault", key), s) for key, s in saved.items()])
        return 0
    work = Path(tempfile.mkdtemp(prefix="fault-table-"))
    if args.distributed:
        summary = run_distributed(args.calls, args.seed, work)
        print(f"logs: {work / 'distributed.log'}, {work / 'distributed' / 'logs'}", file=sys.stderr)
        render(distributed_rows(summary), runner="distributed")
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
        for violation in summary["violations"]:
            print(f"violation: {violation}", file=sys.stderr)
        return 0 if summary["ok"] else 1

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
