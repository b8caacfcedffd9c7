"""CDR event pushes into the ledger under contention, against a bare durable insert of the same events.

Usage::

    python benchmarks/bench_events.py [--seconds 15] [--processes 2] [--threads 12]

Two sides, each on a fresh embedded-default home (SQLite ledger), ``--processes`` processes of
``--threads`` threads pushing one simulated call's events (dialog_start, IVR end, dialog_end) at a time,
as fast as they can, for ``--seconds``:

* **system**: ``realtime.record_cdr_events``, what the receiver runs for a push (the CDR inbox keyed by
  event id, then the calls' transitions with their audit events), while one more process rolls the
  inbox into the hourly manifest every 2 s, as the realtime DAG does;
* **floor**: one SQLite transaction per push inserting the events' bodies under their ids into a bare
  table (the same file settings: WAL, ``synchronous=NORMAL``): the least a durable de-duplicated record
  of the events costs, with no ledger, no transitions and no roll.

Prints pushes per second, push latency p50/p95/max and system / floor. No HTTP: the receiver's own cost
per push is in ``bench_realtime.py``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

CALLS_PER_PROCESS = 30_000


def _calls(seed: int) -> Iterator[Any]:
    from ocp_ingest_dev.simulator.calls import generate_calls

    start = datetime.now(UTC) - timedelta(hours=3)
    return iter(generate_calls(seed=seed, count=CALLS_PER_PROCESS, window_start=start, window_hours=2))


def _push_for(seconds: float, threads: int, push: Callable[[Any], None], calls: Iterator[Any]) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run() -> None:
        while time.monotonic() < deadline:
            with lock:
                call = next(calls)
            t = time.monotonic()
            push(call)
            latencies.append(time.monotonic() - t)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return latencies


def _system_pusher(seed: int, seconds: float, threads: int, out: Any) -> None:
    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger
    from ocp_ingest.realtime import record_cdr_events
    from ocp_ingest.routing import LobRouter
    from ocp_ingest.storage import StorageLayout

    settings = Settings.from_env()
    layout = StorageLayout.from_settings(settings)
    router = LobRouter.load(settings.lob_routing_file)
    calls = _calls(seed)
    with open_ledger(settings) as ledger:

        def push(call: Any) -> None:
            record_cdr_events(call.events(), ledger, layout, router)

        out.put(_push_for(seconds, threads, push, calls))


def _roller(seconds: float, out: Any) -> None:
    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger
    from ocp_ingest.realtime import roll_cdr_manifest
    from ocp_ingest.storage import StorageLayout

    settings = Settings.from_env()
    layout = StorageLayout.from_settings(settings)
    rolled = 0
    deadline = time.monotonic() + seconds + 1
    while time.monotonic() < deadline:
        time.sleep(2)
        with open_ledger(settings) as ledger:
            rolled += roll_cdr_manifest(layout, ledger)
    out.put(("rolled", rolled))


def _floor_pusher(seed: int, seconds: float, threads: int, out: Any) -> None:
    path = os.path.join(os.environ["OCP_INGEST_HOME"], "floor.sqlite3")
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, body TEXT NOT NULL)")
    lock = threading.Lock()  # one connection per process, as the ledger has

    def push(call: Any) -> None:
        # the calls' bodies over again, each under a new id (the floor outruns any list of calls)
        n = next(pushes)
        rows = [(f"{e.event_id}.{n}", e.to_json().decode()) for e in call.events()]
        with lock:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR IGNORE INTO events VALUES (?, ?)", rows)
            conn.execute("COMMIT")

    pushes = itertools.count()
    out.put(_push_for(seconds, threads, push, itertools.cycle(_calls(seed))))
    conn.close()


def run_side(name: str, args: argparse.Namespace) -> dict[str, float]:
    home = tempfile.mkdtemp(prefix=f"bench-events-{name}-")
    os.environ["OCP_INGEST_HOME"] = home  # inherited by the processes (fork)
    out: Any = mp.Queue()
    target = _system_pusher if name == "system" else _floor_pusher
    procs = [
        mp.Process(target=target, args=(i, args.seconds, args.threads, out)) for i in range(args.processes)
    ]
    if name == "system":
        procs.append(mp.Process(target=_roller, args=(args.seconds, out)))
    try:
        for proc in procs:
            proc.start()
        results = [out.get() for _ in procs]
        for proc in procs:
            proc.join()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    latencies = sorted(x for r in results if isinstance(r, list) for x in r)
    rolled = [r[1] for r in results if isinstance(r, tuple)]
    row = {
        "pushes_per_s": len(latencies) / args.seconds,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1e3,
        "max_ms": latencies[-1] * 1e3,
    }
    extra = f", {rolled[0]} events rolled meanwhile" if rolled else ""
    print(
        f"{name:6s}: {row['pushes_per_s']:.0f} pushes/s ({3 * row['pushes_per_s']:.0f} events/s), "
        f"latency p50 {row['p50_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms, max {row['max_ms']:.0f} ms{extra}",
        flush=True,
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--processes", type=int, default=2, help="pushing processes (receivers)")
    parser.add_argument("--threads", type=int, default=12, help="pushing threads per process")
    args = parser.parse_args()
    mp.set_start_method("fork")
    print(f"{args.processes} processes x {args.threads} threads, {args.seconds:.0f} s a side, 3 events each")
    floor = run_side("floor", args)
    system = run_side("system", args)
    print(f"system / floor = {system['pushes_per_s'] / floor['pushes_per_s']:.2f}x the pushes per second")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
