"""Benchmark: the embedded default and the production topology on the same workload, in one run.

Runs ``ocp-ingest demo`` twice with the same calls, push loss and seed (``--calls``, ``--push-loss``,
``--seed``), one after the other, each as its own process (its own Airflow configuration), each on a fresh
home:

- **embedded**: the in-process demo (``dag.test()`` of both DAGs in one process, SQLite ledger, local disk);
- **distributed**: ``--topology distributed`` (PostgreSQL, Redis, moto's S3/DynamoDB/KMS, Airflow with the
  CeleryExecutor and two workers, two receivers behind haproxy; both DAGs on their own schedule).

Printed per topology, from outside (wall) and from the demo's JSON summary: wall time of the command, time
from the command's start until every call was settled (``settled_s``), settled calls per second of that,
stored recordings and bytes, the realtime / reconciliation split, tasks per worker and pushes per receiver
(distributed), the verdict; then the ratios distributed / embedded of wall time and of throughput.

Usage: ``.venv/bin/python benchmarks/bench_topologies.py [--calls 60] [--push-loss 0.1] [--seed 1]``
(several minutes on 2 cores: most of it the distributed stack starting; run it with nothing else running).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOPOLOGIES = ("embedded", "distributed")


def run_topology(topology: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One ``ocp-ingest demo`` of ``topology``: its summary plus the wall time and exit code seen here."""
    home = work / topology
    summary_path = work / f"{topology}.json"
    log_path = work / f"{topology}.out"
    command = [
        sys.executable,
        "-m",
        "ocp_ingest.cli",
        "demo",
        "--topology",
        topology,
        "--calls",
        str(args.calls),
        "--push-loss",
        str(args.push_loss),
        "--seed",
        str(args.seed),
        "--timeout-s",
        str(args.timeout_s),
        "--home",
        str(home),
        "--json",
        str(summary_path),
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT)])}
    env.pop("AIRFLOW_HOME", None)  # each demo makes its own (embedded: under its home)
    print(f"{topology}: running ({log_path}) ...", flush=True)
    started = time.monotonic()
    with log_path.open("w") as out:
        code = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    wall = time.monotonic() - started
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    print(f"{topology}: exit {code}, wall {wall:.1f} s", flush=True)
    return {"topology": topology, "exit": code, "wall_s": wall, "summary": summary, "log": str(log_path)}


def figures(result: dict[str, Any]) -> dict[str, Any]:
    s = result["summary"]
    settled = s.get("settled_s")
    calls = s.get("calls_generated") or 0
    topology = s.get("topology") or {}
    return {
        "wall_s": result["wall_s"],
        "settled_s": settled,
        "calls": calls,
        "calls_per_s": calls / settled if settled else None,
        "stored": (s.get("stored_realtime") or 0) + (s.get("stored_reconciliation") or 0),
        "stored_realtime": s.get("stored_realtime"),
        "stored_reconciliation": s.get("stored_reconciliation"),
        "terminal": s.get("terminal_by_reason"),
        "stored_bytes": s.get("stored_bytes"),
        "tasks_per_worker": topology.get("tasks_per_worker"),
        "realtime_stores_per_worker": topology.get("realtime_stores_per_worker"),
        "pushes_per_receiver": topology.get("pushes_per_receiver"),
        "ok": bool(s.get("ok")) and result["exit"] == 0,
    }


def _shares(counts: dict[str, int] | None) -> str:
    """``{worker: n}`` as "worker-1 12 (40%), worker-2 18 (60%)"."""
    total = sum((counts or {}).values())
    if not total:
        return "none"
    return ", ".join(f"{name} {n} ({100 * n / total:.0f}%)" for name, n in sorted((counts or {}).items()))


def _num(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--push-loss", type=float, default=0.10, help="share of audio pushes dropped")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=900.0, help="per topology")
    parser.add_argument(
        "--only", choices=TOPOLOGIES, default=None, help="run one topology (no ratio; for a quick look)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the runs' homes and logs")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ocp-bench-topologies-"))
    print(
        f"workload: {args.calls} calls, push loss {args.push_loss:g}, seed {args.seed}; "
        f"{os.cpu_count()} cores; work in {work}",
        flush=True,
    )
    results = {}
    try:
        for topology in (args.only,) if args.only else TOPOLOGIES:
            results[topology] = figures(run_topology(topology, args, work))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for topology, f in results.items():
        print(
            f"{topology:<12} wall {_num(f['wall_s'], ' s')}, settled {_num(f['settled_s'], ' s')} after the "
            f"command started, {_num(f['calls_per_s'], ' calls/s', 2)}; {f['calls']} calls: {f['stored']} "
            f"stored ({f['stored_realtime']} realtime / {f['stored_reconciliation']} reconciliation), "
            f"terminal {f['terminal']}; {f['stored_bytes']} bytes stored; "
            f"{'ok' if f['ok'] else 'NOT OK'}"
        )
        if topology == "distributed":
            print(
                f"{'':<12} tasks per worker {f['tasks_per_worker']}, realtime stores per worker "
                f"{_shares(f['realtime_stores_per_worker'])}, pushes per receiver {f['pushes_per_receiver']}"
            )
        else:
            print(f"{'':<12} tasks in one process (dag.test), one in-process receiver")
    if len(results) < 2:
        return 0 if all(f["ok"] for f in results.values()) else 1
    e, d = results["embedded"], results["distributed"]
    throughput = (
        f"{d['calls_per_s'] / e['calls_per_s']:.2f}x" if d["calls_per_s"] and e["calls_per_s"] else "-"
    )
    print(f"distributed / embedded: wall {d['wall_s'] / e['wall_s']:.2f}x, throughput {throughput}")
    return 0 if e["ok"] and d["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
