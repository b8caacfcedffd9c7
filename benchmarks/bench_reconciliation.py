"""Benchmark: a 10,000-call backlog (30 s recordings, 4 OCP groups, 46 hours) recovered by reconciliation.

46 hours, not 48: each call's export window holds its whole life plus a margin (10 min, widened to the
hour), so a group's 46 hours of calls need OCP's largest window, 2 days, and one export per group still
recovers all of them. 48 hours of calls need more than 2 days: the run would carry some to the next run.

The realtime path was "down": the ledger has every call's dialog_end, no audio. The simulator runs in its
own process (OCP is remote) and prepares each export in ``--prep-s`` seconds. One run of the
``ocp_reconciliation`` DAG (``dag.test()``: tasks run one after another in this process, triggers inline)
recovers the backlog. Printed:

* mapped task instances per run (limit: max_map_length 1024);
* wall time of the run;
* the lower bound: export preparation, serial per group (one export per group, groups in parallel), plus
  the raw transfer of the needed bytes at the rate measured in this run (every needed file streamed
  again by plain httpx, one process per group with the run's threads, no hashing, no storing; the best of
  three rounds);
* their ratio (target <= 1.5);
* the store floor: the same files in the same layout streamed, SHA-256 checked and stored with the
  project's durable create-only write, with no Airflow, no audio validation and no ledger (the best of
  two rounds): what storing costs on this machine before any of the DAG's work, as a second reference;
  preparation + store floor is what a run with no orchestration at all would take, so it says whether
  the 1.5x target can be met on this machine at all.

With ``--runner standalone`` the same backlog is recovered by a real ``airflow standalone`` (scheduler,
triggerer, LocalExecutor: mapped chains run in parallel, waits are deferred). The stack is warm when the
measured run starts, as a deployment's scheduler is when the 30-minute schedule fires: its start-up runs
(an empty ``@once`` reconciliation, the completeness report) are over, then the backlog is seeded and one
run is triggered through the REST API; it is measured from the metadata DB. During the run the
api-server's health endpoint is timed every 0.5 s, the ``request_and_wait`` task instances are sampled
(running = a worker slot held: the request itself and the resume; deferred = none) and every process's
CPU time is attributed to its component. A per-task-instance timing table (queued, started, ended,
seconds from the run's start) shows the critical path. The stack's output goes to ``stack.log`` in the
data directory (kept with ``--keep``). The stack's processes use compiled bytecode (cached under the data
directory if the environment forbids writing it), as a deployment image would.

Usage: ``.venv/bin/python benchmarks/bench_reconciliation.py [--calls 10000] [--prep-s 10]
[--runner dagtest|standalone] [--keep]``
Needs about 5 GB free for 10,000 x 30 s WAV (the data lives in a temporary directory, removed at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("ocp-g1", "ocp-g2", "ocp-g3", "ocp-g4")
#: Hours of calls: with their margins they fill OCP's 2-day window (one export per group), no more.
WINDOW_HOURS = 46

CALLS_CODE = """
from datetime import UTC, datetime
from ocp_ingest_dev.simulator.calls import FlowSpec, generate_calls
FLOWS = tuple(FlowSpec(f"flow_{{g}}", g, (f"+3491000010{{i}}",)) for i, g in enumerate({groups!r}))
calls = generate_calls(
    seed=5, count={count}, window_start=datetime.fromtimestamp({start}, UTC), window_hours={hours},
    no_recording_share=0.0, mean_duration_s=30, min_duration_s=30, max_duration_s=30, flows=FLOWS,
)
"""

SERVER = """
import sys
from ocp_ingest_dev.simulator import Simulator, SimulatorConfig
from ocp_ingest_dev.simulator.server import start
{calls}
config = SimulatorConfig(window_start=datetime.fromtimestamp({start}, UTC))
config.exports.prep_s = {prep}
sim = Simulator(config, calls=calls)
# OCP has its recordings (and their checksums) before anyone asks for an export; the simulator would
# otherwise hash every file of an export inside the create request, on its event loop.
for call in calls:
    if call.has_recording:
        sim.exports.recording_digest(call)
running = start(sim, log_level="warning")
print(running.url, flush=True)
sys.stdin.read()
running.stop()
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--prep-s", type=float, default=10.0, help="export preparation time (simulated)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--runner", choices=("dagtest", "standalone"), default="dagtest")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ocp-bench-recon-"))
    use_bench_environment(work)
    start = int(
        (datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=50)).timestamp()
    )
    calls_code = textwrap.dedent(CALLS_CODE).format(
        groups=GROUPS, count=args.calls, start=start, hours=WINDOW_HOURS
    )
    try:
        with ocp_simulator(calls_code, start, args.prep_s) as url:
            if args.runner == "standalone":
                return run_standalone(args, url, calls_code, work)
            subprocess.run(
                [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
                check=True,
                capture_output=True,
            )
            return run(args, url, calls_code, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def use_bench_environment(work: Path) -> None:
    """This process's Airflow and ingest settings for a reconciliation benchmark under ``work``: no grace
    period, exports polled every 0.5 s, 4 download threads."""
    os.environ.update(
        AIRFLOW_HOME=str(work / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
        OCP_INGEST_HOME=str(work / "ingest"),
        OCP_INGEST_PENDING_GRACE_S="0",
        OCP_INGEST_EXPORT_POLL_INTERVAL_S="0.5",
        OCP_INGEST_EXPORT_POLL_BACKOFF="1.0",
        OCP_INGEST_DOWNLOAD_WORKERS="4",
    )


@contextlib.contextmanager
def ocp_simulator(calls_code: str, start: int, prep_s: float) -> Iterator[str]:
    """The simulator with ``calls_code``'s calls in its own process (OCP is remote), exports prepared in
    ``prep_s``; the ``ocp_default`` connection points at it. Yields its URL."""
    server = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SERVER).format(calls=calls_code, start=start, prep=prep_s)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = server.stdout.readline().strip()  # type: ignore[union-attr]
        from ocp_ingest_dev.simulator.auth import SIMULATOR_PAT

        os.environ["AIRFLOW_CONN_OCP_DEFAULT"] = json.dumps(
            {"conn_type": "ocp", "host": url, "password": SIMULATOR_PAT}
        )
        yield url
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=30)


def seed_ledger(calls_code: str) -> tuple[list, int]:
    """Put every generated call in the ledger as ended-without-audio (the realtime path was down)."""
    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger
    from ocp_ingest.ledger.cdr import cdr_transition
    from ocp_ingest.routing import LobRouter

    scope: dict = {}
    exec(calls_code, scope)  # the very calls the simulator generated (same seed)
    calls = scope["calls"]
    settings = Settings.from_env()
    router = LobRouter.load(settings.lob_routing_file)
    t = time.monotonic()
    with open_ledger(settings) as ledger:
        for call in calls:
            ledger.apply(cdr_transition(call.dialog_end(), router))
    print(f"ledger seeded: {len(calls)} pending calls in {time.monotonic() - t:.1f} s")
    return calls, sum(call.recording_size for call in calls)


def _fresh_exports(url: str, calls: list) -> list[tuple[str, list]]:
    """One new 2-day export per group (the groups' exports run in parallel, as in the run) and the
    recordings each lists: the very files the run needed."""
    from ocp_ingest.ocp import OcpClient, PatAuth
    from ocp_ingest_dev.simulator.auth import SIMULATOR_PAT

    window_start = datetime.fromtimestamp(calls[0].start // 3_600_000 * 3600, UTC)
    with OcpClient(url, PatAuth(SIMULATOR_PAT)) as client:
        ids = [
            client.create_export(group, window_start, window_start + timedelta(hours=48)).export_id
            for group in GROUPS
        ]
        exports = []
        for export_id in ids:
            client.wait_for_export(export_id, poll_interval_s=0.5, timeout_s=600)
            files = [f for f in client.iter_files(export_id, page_size=1000) if f.dialog_id]
            exports.append((export_id, files))
    return exports


def _transfer(url: str, export_id: str, files: list, workers: int, store_in: str | None) -> tuple[int, float]:
    """Stream ``files`` with ``workers`` threads; with ``store_in``, also check each file's SHA-256 against
    the listing and store it with the project's durable create-only write (``storage.write_create_only``:
    a file without a name, fsync, link; the directory fsynced once per batch of names, as the download
    does before its ledger marks): the least any store must do. Returns the bytes moved and this
    process's CPU seconds."""
    import hashlib

    from airflow.sdk import ObjectStoragePath

    from ocp_ingest.ocp import OcpClient, PatAuth
    from ocp_ingest.reconcile.download import MARK_BATCH
    from ocp_ingest.storage import sync_names, write_create_only
    from ocp_ingest_dev.simulator.auth import SIMULATOR_PAT

    cpu = time.process_time()
    client = OcpClient(url, PatAuth(SIMULATOR_PAT))
    root = ObjectStoragePath(Path(store_in).as_uri()) if store_in else None

    def one(file) -> int:  # the plainest stream httpx offers: socket chunks as they come, not decoded
        with client.open_file(export_id, file.file_id) as response:
            if root is None:
                return sum(len(chunk) for chunk in response.iter_raw())
            data = b"".join(response.iter_raw())
        sha256 = hashlib.sha256(data).hexdigest()
        if sha256 != file.sha256:
            raise RuntimeError(f"{file.file_id}: SHA-256 mismatch")
        write_create_only(
            root / file.file_id, [data], expected_sha256=sha256, precomputed_sha256=sha256, sync_name=False
        )
        return len(data)

    moved, unsynced = 0, []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for file, size in zip(files, pool.map(one, files), strict=True):
            moved += size
            if root is not None:
                unsynced.append(root / file.file_id)
                if len(unsynced) == MARK_BATCH or file is files[-1]:
                    sync_names(unsynced)
                    unsynced.clear()
    client.close()
    return moved, time.process_time() - cpu


def _rate_in_processes(
    url: str, exports: list[tuple[str, list]], workers: int, store: bool
) -> tuple[float, float]:
    """Bytes/s of every export's files moved at once, one process per export with ``workers`` threads
    (the run's layout: one download task per export chain), and the processes' CPU seconds per file;
    ``store``: checked and stored too."""
    from concurrent.futures import ProcessPoolExecutor

    # on the recordings' filesystem, beside them
    store_in = tempfile.mkdtemp(prefix="floor-", dir=os.environ["OCP_INGEST_HOME"]) if store else None
    try:
        os.sync()  # earlier gigabytes of writeback must not slow this measurement down
        t = time.monotonic()
        with ProcessPoolExecutor(len(exports)) as pool:
            jobs = [
                pool.submit(_transfer, url, export_id, files, workers, store_in)
                for export_id, files in exports
            ]
            results = [job.result() for job in jobs]
        elapsed = time.monotonic() - t
        file_count = sum(len(files) for _, files in exports)
        return sum(m for m, _ in results) / elapsed, sum(c for _, c in results) / file_count
    finally:
        if store_in:
            shutil.rmtree(store_in, ignore_errors=True)


def transfer_rates(url: str, calls: list, workers: int) -> tuple[float, float]:
    """Over **all** the needed files, in the run's layout (one process per group, ``workers`` threads):
    (1) the raw transfer: plain streams, nothing checked or kept; the best of three, since a lower bound
    must not be inflated by a noisy round; (2) the store floor: streamed, SHA-256 checked and durably
    stored, with no Airflow, no audio validation and no ledger; the best of two. Every file, not a sample:
    a sample that fits the disk's burst window makes durable writes look faster than they are sustained.
    """
    exports = _fresh_exports(url, calls)
    raw, raw_cpu = max(_rate_in_processes(url, exports, workers, store=False) for _ in range(3))
    floor, floor_cpu = max(_rate_in_processes(url, exports, workers, store=True) for _ in range(2))
    print(
        f"references' CPU per file:   {raw_cpu * 1e3:.2f} ms raw transfer, {floor_cpu * 1e3:.2f} ms store "
        "floor (their fastest rounds; the simulator's and the kernel's CPU not counted)"
    )
    return raw, floor


class Proc(NamedTuple):
    """One process as a CPU sample sees it."""

    component: str
    cpu: float  #: its own CPU seconds so far (user + system)
    instance: str  #: a task runner's task instance id, else ""
    ppid: int
    reaped_cpu: float  #: CPU seconds of its children it has reaped (the kernel adds them up then)


def _cpu_by_component() -> dict[int, Proc]:
    """Every process: its component (from its command line), CPU seconds so far and, for a task runner
    (``airflow worker -- <task instance id>``), its task instance's id."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, Proc] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        runner = _TASK_RUNNER.fullmatch(cmd.strip())
        found[int(entry)] = Proc(
            _component(cmd),
            (int(fields[11]) + int(fields[12])) / tick,
            runner.group(1) if runner else "",
            int(fields[1]),
            (int(fields[13]) + int(fields[14])) / tick,
        )
    return found


#: The task runner's process title (the Task SDK's ``task_runner``); its supervisor's names the same id.
_TASK_RUNNER = re.compile(r"airflow worker -- ([0-9a-f-]{36})")


class CpuByComponent:
    """CPU seconds each component used between :meth:`start` and the last :meth:`sample`.

    A process that starts and ends between two samples is missed, and one that ends loses what it used
    after the last sample; except a task runner: once its supervisor (its parent) has reaped it, the
    supervisor's reaped-children CPU has grown by the runner's whole CPU, which is then counted exactly,
    even for a task shorter than the sampling period. Sample every second or two. ``names`` gives some
    processes (by pid) a component of the caller's choosing.
    """

    def __init__(self, names: Mapping[int, str] | None = None) -> None:
        self._names = dict(names or {})
        self._first: dict[int, Proc] = {}
        self._last: dict[int, Proc] = {}
        #: runner pid -> its whole CPU seconds, from its supervisor's reaped-children CPU
        self._reaped: dict[int, float] = {}
        self._ended: set[int] = set()
        #: runners that started and ended between two samples (seen by their supervisor only)
        self._unseen_runners = 0.0

    def _scan(self) -> dict[int, Proc]:
        found = _cpu_by_component()
        for pid, name in self._names.items():
            if pid in found:
                found[pid] = found[pid]._replace(component=name)
        return found

    def start(self) -> None:
        self._first = self._scan()
        self._last = dict(self._first)

    def sample(self) -> None:
        now = self._scan()
        for pid, proc in now.items():
            if proc.component == KERNEL:  # no command line: a kernel thread, or a process that exited
                known = self._last.get(pid)  # every process of start() is in _last from then on
                if known is not None:  # exited, not reaped yet: still whose it was
                    proc = proc._replace(component=known.component, instance=known.instance)
                elif _supervises(now.get(proc.ppid)):  # a task runner first seen after it exited
                    proc = proc._replace(component=TASK_PROCESSES)
                now[pid] = proc
            self._first.setdefault(pid, proc._replace(cpu=0.0))  # started since: all its CPU counts
        self._count_reaped(now)
        self._last.update(now)

    def _count_reaped(self, now: dict[int, Proc]) -> None:
        """Give each task runner reaped since the last sample its whole CPU (see the class)."""
        gone: dict[int, list[int]] = {}
        for pid, proc in self._last.items():
            if pid not in now and pid not in self._ended and _supervises(self._last.get(proc.ppid)):
                self._ended.add(pid)
                gone.setdefault(proc.ppid, []).append(pid)
        for parent, before in self._last.items():
            after = now.get(parent)
            if after is None or not _supervises(before):
                continue
            grew = after.reaped_cpu - before.reaped_cpu
            runners = gone.get(parent, [])
            if len(runners) == 1:
                self._reaped[runners[0]] = max(grew, self._last[runners[0]].cpu)
            elif grew > 0:  # runners that lived between two samples, or several at once (those keep
                # their sampled CPU; the rest counts here)
                self._unseen_runners += max(0.0, grew - sum(self._last[r].cpu for r in runners))

    def _used(self) -> Iterator[tuple[str, float, str]]:
        for pid, proc in self._last.items():
            yield proc.component, self._reaped.get(pid, proc.cpu) - self._first[pid].cpu, proc.instance
        yield TASK_PROCESSES, self._unseen_runners, ""

    def seconds(self) -> dict[str, float]:
        cpu: dict[str, float] = {}
        for name, used, _ in self._used():
            cpu[name] = cpu.get(name, 0.0) + used
        return cpu

    def by_task_instance(self) -> dict[str, float]:
        """CPU seconds of each task instance's runner process (not its supervisor), by instance id (hex)."""
        cpu: dict[str, float] = {}
        for _, used, instance in self._used():
            if instance:
                key = instance.replace("-", "")
                cpu[key] = cpu.get(key, 0.0) + used
        return cpu

    def print(self, wall: float) -> None:
        cores = os.cpu_count() or 1
        print(f"CPU seconds during the run ({cores} cores x {wall:.0f} s = {cores * wall:.0f} available):")
        for name, seconds in sorted(self.seconds().items(), key=lambda kv: -kv[1]):
            if seconds >= 0.05:
                print(f"  {name:<30} {seconds:6.1f}")


KERNEL = "kernel (writeback, journal, ...)"
TASK_PROCESSES = "task processes"


def _supervises(proc: Proc | None) -> bool:
    """A task's supervisor (a LocalExecutor worker): its children are task runners."""
    return proc is not None and proc.component == TASK_PROCESSES and not proc.instance


def _component(cmd: str) -> str:
    if not cmd:
        return KERNEL
    for needle, name in (
        ("airflow worker", TASK_PROCESSES),
        ("airflow supervisor", TASK_PROCESSES),
        ("executor", TASK_PROCESSES),
        ("ocp_ingest_dev.simulator", "OCP simulator"),
        ("api-server", "api-server"),
        ("api_server", "api-server"),
        ("scheduler", "scheduler (+ LocalExecutor)"),
        ("triggerer", "triggerer"),
        ("dag-processor", "dag-processor"),
        ("dag_processor", "dag-processor"),
        ("supervisor", TASK_PROCESSES),
        ("task-runner", TASK_PROCESSES),
        ("receiver", "receiver"),
        ("bench_reconciliation", "this benchmark (probes)"),
        ("bench_backlog", "this benchmark (probes)"),
    ):
        if needle in cmd:
            return name
    return "airflow (other)" if "airflow" in cmd else "other processes on the machine"


def health_probe() -> Any:
    """One client for the api-server's health probes during a run: ``httpx.get`` builds a client, and its
    SSL context, per call (about 25 ms CPU), which the measured run would pay every half second."""
    import httpx

    return httpx.Client(timeout=10)


def wait_until_warm(stack: Any, db_path: Path) -> None:
    """The stack is healthy and its start-up runs (the empty ``@once`` reconciliation, the report) are
    over: a measured run then starts on a warm stack, as a deployment's scheduled run would."""
    if not stack.wait_until_healthy(300):
        raise RuntimeError("airflow standalone did not become healthy")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        with sqlite3.connect(db_path, timeout=30) as db:
            runs = db.execute("SELECT dag_id, state FROM dag_run").fetchall()
        recon_done = any(d == "ocp_reconciliation" and s in ("success", "failed") for d, s in runs)
        others_busy = any(d != "ocp_realtime_ingest" and s in ("queued", "running") for d, s in runs)
        if recon_done and not others_busy:
            return
        time.sleep(1.0)


def run_standalone(args: argparse.Namespace, url: str, calls_code: str, work: Path) -> int:
    """A warm ``airflow standalone``: its start-up runs are over before the measured run is triggered.

    The stack starts with an empty ledger (the ``@once`` schedule gives the DAG a first, empty run, as a
    deployment's earlier runs would); once every DAG run is finished, the backlog is seeded and one run is
    triggered through the REST API. The run is measured from the metadata DB (its start and end dates).
    """

    import httpx

    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger
    from ocp_ingest_dev.stack import LocalStack
    from ocp_ingest_dev.stack.airflow_api import AirflowApi

    # Compiled bytecode, as in any deployment image (pip compiles on install; the official Airflow image
    # ships it): every task process imports Airflow, the DAG and this package, and compiling them from
    # source would be charged to every process. Where PYTHONDONTWRITEBYTECODE is set (and the venv was
    # installed without --compile-bytecode), the stack's processes cache it under the data directory;
    # the start-up runs fill the cache.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.setdefault("PYTHONPYCACHEPREFIX", str(work / "pycache"))
    os.environ.update(
        # One scheduled run at start-up (empty ledger, a warm-up); the measured run is triggered.
        OCP_INGEST_RECONCILIATION_SCHEDULE="@once",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="18793",
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="18794",
    )
    port = 18095
    stack = LocalStack(
        port=port,
        receiver_port=18797,
        simulator_port=18798,
        calls=0,
        airflow_home=work / "airflow",
        log_path=work / "stack.log",
    )
    stack.start()
    db_path = work / "airflow" / "airflow.db"
    health: list[tuple[float, float]] = []  # (seconds since the trigger, ms)
    wait_states: dict[str, int] = {}
    cpu = CpuByComponent()
    api = None
    try:
        wait_until_warm(stack, db_path)
        calls, needed = seed_ledger(calls_code)
        time.sleep(2.0)
        api = AirflowApi.for_standalone(f"http://localhost:{port}", work / "airflow")
        cpu.start()
        triggered = time.monotonic()
        run_id = api.trigger("ocp_reconciliation", {})
        deadline = time.monotonic() + 3600
        run_row = None
        probe = health_probe()
        while time.monotonic() < deadline:
            t = time.monotonic()
            try:
                probe.get(f"http://localhost:{port}/api/v2/monitor/health")
                health.append((t - triggered, (time.monotonic() - t) * 1000))
            except httpx.HTTPError:
                health.append((t - triggered, 10_000.0))
            cpu.sample()
            with sqlite3.connect(db_path, timeout=30) as db:
                run_row = db.execute(
                    "SELECT run_id, state, start_date, end_date FROM dag_run "
                    "WHERE dag_id = 'ocp_reconciliation' AND run_id = ?",
                    (run_id,),
                ).fetchone()
                for (state,) in db.execute(
                    "SELECT state FROM task_instance WHERE dag_id = 'ocp_reconciliation' "
                    "AND run_id = ? AND task_id LIKE '%request_and_wait'",
                    (run_id,),
                ):
                    if state in ("running", "deferred"):
                        wait_states[state] = wait_states.get(state, 0) + 1
            if run_row and run_row[1] in ("success", "failed"):
                break
            time.sleep(0.5)
        with sqlite3.connect(db_path) as db:
            mapped = db.execute(
                "SELECT COUNT(*) FROM task_instance WHERE dag_id = 'ocp_reconciliation' AND run_id = ? "
                "AND map_index >= 0",
                (run_id,),
            ).fetchone()[0]
            total = db.execute(
                "SELECT COUNT(*) FROM task_instance WHERE dag_id = 'ocp_reconciliation' AND run_id = ?",
                (run_id,),
            ).fetchone()[0]
            timings = db.execute(
                "SELECT id, task_id, map_index, queued_dttm, start_date, end_date, try_number, state "
                "FROM task_instance WHERE dag_id = 'ocp_reconciliation' AND run_id = ? "
                "ORDER BY start_date, task_id, map_index",
                (run_id,),
            ).fetchall()
    finally:
        if api is not None:
            api.close()
        stack.stop()
    if run_row is None or run_row[3] is None:
        print(f"the run did not finish: {run_row}")
        return 1
    wall = (datetime.fromisoformat(run_row[3]) - datetime.fromisoformat(run_row[2])).total_seconds()
    settings = Settings.from_env()
    with open_ledger(settings) as ledger:
        stored = sum(1 for r in ledger.get_many([c.dialog_id for c in calls]).values() if r.s3_stored)
    rate, floor_rate = transfer_rates(url, calls, settings.download_workers)
    print_figures(args, run_row[1], stored, len(calls), mapped, total, needed, rate, floor_rate, wall)
    latencies = sorted(ms for _, ms in health)
    worst_at, worst = max(health, key=lambda h: h[1])
    print(
        f"api health during the run:  p50 {latencies[len(latencies) // 2]:.0f} ms, "
        f"max {worst:.0f} ms (at {worst_at:.0f} s) over {len(latencies)} probes"
    )
    print(f"request_and_wait samples:   {wait_states} (running = worker slot held)")
    print("runner: airflow standalone (LocalExecutor, triggerer), warm; run triggered through the REST API")
    complete = stored == len(calls)
    cpu.print(wall)
    print_timings(run_row[2], timings, cpu.by_task_instance())
    return 0 if run_row[1] == "success" and complete else 1


def print_timings(run_start: str, rows: list, cpu: Mapping[str, float]) -> None:
    """Per task instance: seconds from the run's start to queued / started / ended (the critical path),
    and the CPU seconds its task runner used (``cpu``, by instance id; its supervisor's not counted)."""
    t0 = datetime.fromisoformat(run_start)

    def rel(value: str | None) -> str:
        return f"{(datetime.fromisoformat(value) - t0).total_seconds():7.1f}" if value else "      -"

    print("task instance timings (s from the run's start; CPU s of the task runner):")
    header = f"{'task':<36} {'map':>3} {'queued':>7} {'start':>7} {'end':>7} {'took':>6} {'cpu':>6}"
    print(f"  {header}  try state")
    by_task: dict[str, float] = {}
    for instance, task_id, map_index, queued, start, end, tries, state in rows:
        took = (
            f"{(datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds():6.1f}"
            if start and end
            else "     -"
        )
        used = cpu.get(str(instance).replace("-", ""))  # SQLite keeps the uuid as 32 hex digits
        if used is not None:
            by_task[task_id] = by_task.get(task_id, 0.0) + used
        shown = f"{used:6.1f}" if used is not None else "     -"
        print(
            f"  {task_id:<36} {map_index:>3} {rel(queued)} {rel(start)} {rel(end)} {took} {shown}"
            f"  {tries:>3} {state}"
        )
    print("task runners' CPU seconds by task:")
    for task_id, used in sorted(by_task.items(), key=lambda kv: -kv[1]):
        print(f"  {task_id:<36} {used:6.1f}")


def print_figures(
    args: argparse.Namespace,
    state: str,
    stored: int,
    calls: int,
    mapped: int,
    total_tis: int,
    needed: int,
    rate: float,
    floor_rate: float,
    wall: float,
) -> None:
    """The same report for both runners: stored, mapped instances, lower bound and the ratio to it."""
    bound = args.prep_s + needed / rate
    floor = args.prep_s + needed / floor_rate
    print(f"dag run state:              {state}")
    short = "" if stored == calls else " (NOT all: some were carried, see the plans)"
    print(f"calls stored:               {stored} / {calls}{short}")
    print(f"mapped task instances/run:  {mapped} (max_map_length 1024); all task instances: {total_tis}")
    print(f"needed bytes:               {needed / 1e9:.2f} GB")
    print(
        f"raw transfer rate:          {rate / 1e6:.0f} MB/s (every needed file, {len(GROUPS)} processes x "
        "the run's threads, best of 3)"
    )
    print(
        f"lower bound:                {bound:.1f} s (= {args.prep_s:.1f} s export preparation per group, "
        f"groups in parallel, + {needed / rate:.1f} s raw transfer)"
    )
    print(f"wall time:                  {wall:.1f} s")
    print(f"ratio wall / lower bound:   {wall / bound:.2f}x (target <= 1.5x)")
    print(
        f"store floor:                {floor_rate / 1e6:.0f} MB/s (every needed file, same layout: stream, "
        "SHA-256 check, durable create-only store; no Airflow, validation or ledger; best of 2)"
    )
    print(
        f"prep + store floor:         {floor:.1f} s = {floor / bound:.2f}x the lower bound "
        f"({'within' if floor <= 1.5 * bound else 'beyond'} the 1.5x target before any orchestration); "
        f"wall / it = {wall / floor:.2f}x"
    )


def run(args: argparse.Namespace, url: str, calls_code: str, work: Path) -> int:
    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger
    from ocp_ingest_dev.airflow_internals import load_dag

    calls, needed = seed_ledger(calls_code)
    settings = Settings.from_env()
    dag = load_dag("ocp_reconciliation")
    t = time.monotonic()
    dag_run = dag.test()
    wall = time.monotonic() - t
    tis = dag_run.get_task_instances()
    mapped = sum(1 for ti in tis if ti.map_index >= 0)
    with open_ledger(settings) as ledger:
        stored = sum(1 for r in ledger.get_many([c.dialog_id for c in calls]).values() if r.s3_stored)
    rate, floor_rate = transfer_rates(url, calls, settings.download_workers)
    print_figures(args, dag_run.state, stored, len(calls), mapped, len(tis), needed, rate, floor_rate, wall)
    print("runner: dag.test() (tasks run serially in one process, triggers inline), not airflow standalone")
    # A run that leaves calls for the next run did not recover the backlog: its wall time means nothing.
    return 0 if dag_run.state == "success" and stored == len(calls) else 1


if __name__ == "__main__":
    sys.exit(main())
