"""Benchmark: a backlog of N pending calls (4 OCP groups, 48 hours, 2 s recordings) recovered from one
trigger of ``ocp_reconciliation`` under a warm ``airflow standalone``, against the bound OCP's rules allow.

The realtime path was "down" for two days: the ledger has every call's dialog_end and no audio. The
simulator runs in its own process and prepares each export in ``--prep-s`` seconds. One run is triggered
through the REST API; if it leaves calls (it should not: a group's exports are chained inside the run),
the next run is triggered at once, up to ``--max-runs``, and the runs are counted. Printed:

* wall time (first trigger to the last run's end), runs, exports requested, mapped task instances;
* peak memory: the largest process's RSS and the PSS of all of them (this script, the simulator and the
  stack; RSS sampled every 0.5 s, PSS every 5 s);
* the api-server's health latency during the runs (p50, max);
* the **OCP-rule bound**: per group, the exports OCP needs (windows of at most 2 days covering the group's
  calls from the first start to the last end, one at a time) x the preparation time, groups in parallel,
  plus the store floor of the needed bytes (stream, SHA-256 check, durable create-only store, one
  process per group: no Airflow, validation or ledger; measured in this run after the runs, by
  ``bench_reconciliation.transfer_rates``);
* the last line: ``wall = W s = R.RRx the bound``.

Usage: ``.venv/bin/python benchmarks/bench_backlog.py --calls 10000 [--prep-s 10] [--max-runs 5] [--keep]``
Disk: about 33 KB per call (2 s of 8 kHz 16-bit WAV) twice (OCP's copy in the simulator is generated,
not stored; the recordings and the store floor's copy are), so 100,000 calls need about 7 GB free.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sqlite3
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_reconciliation as recon  # the simulator process, the seeding, the store floor

HOURS = 48
RECORDING_S = 2
OCP_WINDOW = timedelta(days=2)

CALLS_CODE = """
from datetime import UTC, datetime
from ocp_ingest_dev.simulator.calls import FlowSpec, generate_calls
FLOWS = tuple(FlowSpec(f"flow_{{g}}", g, (f"+3491000010{{i}}",)) for i, g in enumerate({groups!r}))
calls = generate_calls(
    seed=7, count={count}, window_start=datetime.fromtimestamp({start}, UTC), window_hours={hours},
    no_recording_share=0.0, mean_duration_s={secs}, min_duration_s={secs}, max_duration_s={secs}, flows=FLOWS,
)
"""


def exports_needed(calls: list) -> dict[str, int]:
    """Per group, OCP's minimum: 2-day windows (hour-aligned) covering its calls' lives, one at a time."""
    spans: dict[str, tuple[int, int]] = {}
    for call in calls:
        lo, hi = spans.get(call.ocp_group, (call.start, call.end))
        spans[call.ocp_group] = (min(lo, call.start), max(hi, call.end))
    hour_ms = 3_600_000
    return {
        group: math.ceil((math.ceil(hi / hour_ms) - lo // hour_ms) / (OCP_WINDOW.total_seconds() / 3600))
        for group, (lo, hi) in spans.items()
    }


def _memory_kb(pss: bool) -> tuple[int, str, int]:
    """(largest RSS, whose it is, PSS summed or 0) in KiB over this process and its descendants: the
    simulator and every process of the stack (not whatever else runs on the machine). PSS shares each
    shared page among its processes, so the sum is what the stack really holds (summed RSS would count
    Airflow's shared pages once per process); reading it walks every process's page tables, so it is asked
    for less often than RSS (``statm``: a counter) to keep this probe's CPU out of the run it measures."""
    from ocp_ingest_dev.stack.supervise import descendants

    ours = {os.getpid(), *descendants(os.getpid())}
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    largest, whose, total = 0, "", 0
    for pid in ours:
        try:
            with open(f"/proc/{pid}/statm") as f:
                rss = int(f.read().split()[1]) * page_kb
            if pss:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    total += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, ValueError, StopIteration):
            continue
        if rss > largest:
            largest, whose = rss, _whose(pid)
    return largest, whose, total


def _whose(pid: int) -> str:
    if pid == os.getpid():
        return "this benchmark (the generated calls)"
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return recon._component(f.read().replace(b"\0", b" ").decode(errors="replace"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--prep-s", type=float, default=10.0, help="export preparation time (simulated)")
    parser.add_argument("--max-runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ocp-bench-backlog-"))
    recon.use_bench_environment(work)
    start = int(
        (
            datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS + 4)
        ).timestamp()
    )
    calls_code = textwrap.dedent(CALLS_CODE).format(
        groups=recon.GROUPS, count=args.calls, start=start, hours=HOURS, secs=RECORDING_S
    )
    try:
        with recon.ocp_simulator(calls_code, start, args.prep_s) as url:
            return run(args, url, calls_code, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, url: str, calls_code: str, work: Path) -> int:
    import httpx

    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger
    from ocp_ingest_dev.stack import LocalStack
    from ocp_ingest_dev.stack.airflow_api import AirflowApi

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # compiled bytecode, as a deployment image has
    os.environ.setdefault("PYTHONPYCACHEPREFIX", str(work / "pycache"))
    os.environ.update(
        OCP_INGEST_RECONCILIATION_SCHEDULE="@once",  # one empty warm-up run; the measured runs are triggered
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="18893",
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="18894",
    )
    port = 18195
    stack = LocalStack(
        port=port,
        receiver_port=18897,
        simulator_port=18898,
        calls=0,
        airflow_home=work / "airflow",
        log_path=work / "stack.log",
    )
    db_path = work / "airflow" / "airflow.db"
    health: list[float] = []
    peak_process = peak_total = 0
    peak_whose = ""
    run_ids: list[str] = []
    stack.start()
    api = None
    try:
        recon.wait_until_warm(stack, db_path)
        calls, needed = recon.seed_ledger(calls_code)
        ids = [c.dialog_id for c in calls]
        api = AirflowApi.for_standalone(f"http://localhost:{port}", work / "airflow")
        settings = Settings.from_env()
        cpu = recon.CpuByComponent()
        cpu.start()
        first_trigger = time.monotonic()
        ended = first_trigger
        stored = 0
        probe = recon.health_probe()
        while len(run_ids) < args.max_runs and stored < len(calls):
            run_ids.append(api.trigger("ocp_reconciliation", {}))
            while True:
                t = time.monotonic()
                try:
                    probe.get(f"http://localhost:{port}/api/v2/monitor/health")
                    health.append((time.monotonic() - t) * 1000)
                except httpx.HTTPError:
                    health.append(10_000.0)
                largest, whose, total = _memory_kb(pss=len(health) % 10 == 1)  # PSS every 5 s
                if largest > peak_process:
                    peak_process, peak_whose = largest, whose
                peak_total = max(peak_total, total)
                if len(health) % 4 == 1:  # every 2 s
                    cpu.sample()
                if api.run_state("ocp_reconciliation", run_ids[-1]) in ("success", "failed"):
                    ended = time.monotonic()
                    cpu.sample()
                    break
                time.sleep(0.5)
            with open_ledger(settings) as ledger:
                stored = sum(1 for r in ledger.get_many(ids).values() if r.s3_stored)
        with sqlite3.connect(db_path) as db:
            marks = ",".join("?" * len(run_ids))
            mapped = db.execute(
                "SELECT COUNT(*) FROM task_instance WHERE dag_id = 'ocp_reconciliation' "
                f"AND run_id IN ({marks}) AND map_index >= 0",
                run_ids,
            ).fetchone()[0]
            exports = db.execute(
                "SELECT COUNT(*) FROM task_instance WHERE dag_id = 'ocp_reconciliation' "
                f"AND run_id IN ({marks}) AND task_id LIKE '%request_and_wait' AND map_index >= 0 "
                "AND state = 'success'",
                run_ids,
            ).fetchone()[0]
            states = [
                db.execute("SELECT state FROM dag_run WHERE run_id = ?", (r,)).fetchone()[0] for r in run_ids
            ]
            first_start = db.execute(
                "SELECT start_date FROM dag_run WHERE run_id = ?", run_ids[:1]
            ).fetchone()[0]
            timings = db.execute(
                "SELECT id, task_id, map_index, queued_dttm, start_date, end_date, try_number, state "
                f"FROM task_instance WHERE dag_id = 'ocp_reconciliation' AND run_id IN ({marks}) "
                "ORDER BY start_date, task_id, map_index",
                run_ids,
            ).fetchall()
    finally:
        if api is not None:
            api.close()
        stack.stop()
    wall = ended - first_trigger
    _, floor_rate = recon.transfer_rates(url, calls, int(os.environ["OCP_INGEST_DOWNLOAD_WORKERS"]))
    need = exports_needed(calls)
    preparation = args.prep_s * max(need.values())
    bound = preparation + needed / floor_rate
    latencies = sorted(health)
    print(
        f"calls:                      {len(calls)} over {len(need)} groups and {HOURS} h, "
        f"{RECORDING_S} s recordings"
    )
    print(f"calls stored:               {stored} / {len(calls)}")
    print(f"runs:                       {len(run_ids)} ({', '.join(states)})")
    print(f"exports requested:          {exports} (OCP's minimum: {sum(need.values())}, per group {need})")
    print(f"mapped task instances:      {mapped} over the runs (max_map_length 1024)")
    print(
        f"peak RSS:                   {peak_process / 1024:.0f} MiB largest process ({peak_whose}), "
        f"{peak_total / 1024:.0f} MiB all of the stack (PSS)"
    )
    print(
        f"api health during the runs: p50 {latencies[len(latencies) // 2]:.0f} ms, "
        f"max {latencies[-1]:.0f} ms over {len(latencies)} probes"
    )
    print(f"needed bytes:               {needed / 1e9:.2f} GB; store floor {floor_rate / 1e6:.0f} MB/s")
    print(
        f"OCP-rule bound:             {bound:.1f} s = {preparation:.1f} s preparation (the longest group's "
        f"exports one at a time, groups in parallel) + {needed / floor_rate:.1f} s store floor"
    )
    cpu.print(wall)
    tasks_cpu = cpu.seconds().get("task processes", 0.0)
    print(f"task processes' CPU per call: {tasks_cpu / len(calls) * 1e3:.2f} ms (supervisors included)")
    recon.print_timings(first_start, timings, cpu.by_task_instance())
    print(f"wall = {wall:.1f} s = {wall / bound:.2f}x the bound")
    return 0 if stored == len(calls) and all(s == "success" for s in states) else 1


if __name__ == "__main__":
    sys.exit(main())
