"""``ocp-ingest demo``: the whole flow of ``make run``, unattended, with a verdict and a JSON summary.

The flow runs in this process on a private ``AIRFLOW_HOME`` (SQLite) under ``--home``; the terminal shows
the progress line and the verdict, the Airflow and task logs go to ``demo.log``. Exit codes: 0 every call
stored or terminal with a reason, 1 an invariant violated or a call unresolved, 2 ``--home`` not fresh,
3 timed out, 4 an error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from ocp_ingest_dev.demo.airflow_env import airflow_environment, prepare_airflow
from ocp_ingest_dev.demo.config import FlowConfig
from ocp_ingest_dev.demo.flow import Flow
from ocp_ingest_dev.demo.progress import Progress

log = logging.getLogger(__name__)


def run_demo(
    config: FlowConfig,
    home: Path,
    *,
    progress: bool = True,
    console: Any = None,
    started: float | None = None,
) -> dict[str, Any]:
    """Run the whole flow once over ``home`` and return its summary (``ok`` tells the verdict).

    ``settled_s``: seconds from ``started`` (a ``time.monotonic()``; default the flow's start) until every
    call was settled, as the distributed demo counts from its command's start (None: timed out)."""
    home.mkdir(parents=True, exist_ok=True)
    with Flow(config, home) as flow:
        timed_out = False
        settled_at = None
        origin = started if started is not None else time.monotonic() - flow.elapsed_s  # the flow's start
        with Progress(flow, stream=console) if progress else contextlib.nullcontext():
            try:
                flow.run()
                settled_at = time.monotonic()
            except TimeoutError as exc:
                timed_out = True
                log.error("%s", exc)
        summary = flow.summary()
        summary["timed_out"] = timed_out
        summary["settled_s"] = round(settled_at - origin, 1) if settled_at is not None else None
        summary["ok"] = summary["ok"] and not timed_out
        from ocp_ingest_dev.simulator import ground_truth

        ground_truth.write(
            home / "ground_truth.json",
            ground_truth.build(flow.calls, flow.sim.exports, flow.plans, seed=config.seed),
        )
        return summary


def _quiet_logging() -> None:
    # dag.test() logs every task line to the console; the demo's output is its progress and verdict.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for name in ("airflow", "ocp_ingest", "httpx", "uvicorn", "sqlalchemy", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)


def cmd_demo(args: argparse.Namespace) -> int:
    """``ocp-ingest demo`` (its parser is in :mod:`ocp_ingest_dev.cli`)."""
    started = time.monotonic()
    if getattr(args, "topology", "embedded") == "distributed":
        return cmd_demo_distributed(args)
    if getattr(args, "faults", None):
        print("--faults needs --topology distributed (real processes to strike)", file=sys.stderr)
        return 2
    home = Path(args.home or tempfile.mkdtemp(prefix="ocp-ingest-demo-")).resolve()
    airflow_env = airflow_environment(home / "airflow_home")
    if os.environ.get("AIRFLOW_HOME") != airflow_env["AIRFLOW_HOME"]:
        if "airflow" in sys.modules:
            # Airflow reads its configuration once, at import, and something already imported it: start
            # again with the private AIRFLOW_HOME in the environment (never the user's DAG runs).
            argv = [sys.executable, "-m", "ocp_ingest.cli", *sys.argv[1:], "--home", str(home)]
            os.execve(sys.executable, argv, {**os.environ, **airflow_env})
        os.environ.update(airflow_env)  # before the first Airflow import
    data = home / "data"
    if data.exists() and any(data.iterdir()):
        print(
            f"{data} is not empty; give a fresh --home (the demo's ledger must start empty)", file=sys.stderr
        )
        return 2
    data.mkdir(parents=True, exist_ok=True)
    # dag.test() logs every task line to the process's stdout/stderr: send those file descriptors to a log
    # file and keep the terminal for the progress line and the verdict.
    console = os.fdopen(os.dup(1), "w", buffering=1)
    log_path = home / "demo.log"
    print(f"demo: {args.calls} calls, push loss {args.push_loss:g}, seed {args.seed}", file=console)
    print(f"      data {data}, Airflow/task logs {log_path}", file=console)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        try:
            prepare_airflow()
            _quiet_logging()
            config = FlowConfig(
                calls=args.calls, seed=args.seed, push_loss=args.push_loss, timeout_s=args.timeout_s
            )
            summary = run_demo(config, data, progress=not args.no_progress, console=console, started=started)
        except Exception as exc:
            log.exception("demo failed")  # the traceback goes to the log file
            print(f"demo ERROR: {exc!r} (traceback in {log_path})", file=console)
            return 4
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
    summary["home"] = str(home)
    summary["log"] = str(log_path)
    return finish(summary, args, console)


def finish(summary: dict[str, Any], args: argparse.Namespace, console: Any) -> int:
    """Write the JSON summary, print the verdict; the exit code (0 ok, 1 not ok, 3 timed out)."""
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
    figures = {k: summary[k] for k in ("calls_generated", "stored_realtime", "stored_reconciliation")}
    print(
        f"demo {'OK' if summary['ok'] else 'FAILED'}: {figures}, terminal {summary['terminal_by_reason']}, "
        f"unresolved {summary['unresolved']}, duplicates {summary['duplicates']}, "
        f"checksum mismatches {summary['checksum_mismatches']}, {summary['elapsed_s']} s",
        file=console,
    )
    if "topology" in summary:
        t = summary["topology"]
        print(
            f"  topology: {t['executor']}, {t['metadata_db']}, ledger {t['ledger_backend']}, storage "
            f"{t['storage_scheme']}; tasks per worker {t['tasks_per_worker']}, realtime stores per worker "
            f"{t['realtime_stores_per_worker']}, pushes per receiver {t['pushes_per_receiver']}",
            file=console,
        )
    for fault in summary.get("faults", []):
        print(
            f"  fault {fault['name']}: struck at {fault['struck_at']} s ({fault['target']}), "
            f"{'recovered in ' + str(fault['recover_s']) + ' s' if fault['recovered'] else 'NOT recovered'}"
            + (f"; restarted with it: {fault['collateral']}" if fault["collateral"] else ""),
            file=console,
        )
    for violation in summary["violations"][:20]:
        print(f"  violation: {violation}", file=console)
    if summary["timed_out"]:
        print(f"  timed out after {args.timeout_s:g} s", file=console)
        return 3
    return 0 if summary["ok"] else 1


def cmd_demo_distributed(args: argparse.Namespace) -> int:
    """``ocp-ingest demo --topology distributed``: every part its own process (see
    :mod:`ocp_ingest_dev.demo.distributed`); the terminal gets the start-up steps, progress and verdict."""
    from ocp_ingest_dev.demo.distributed import run_distributed_demo
    from ocp_ingest_dev.stack.supervise import StackError

    home = Path(args.home or tempfile.mkdtemp(prefix="ocp-ingest-demo-")).resolve()
    if (home / "ground_truth.json").exists() or (home / "airflow").exists():
        print(f"{home} holds an earlier run; give a fresh --home", file=sys.stderr)
        return 2
    console = sys.stdout
    print(
        f"demo (distributed topology): {args.calls} calls, push loss {args.push_loss:g}, seed {args.seed}\n"
        f"      run directory {home}, component logs {home / 'logs'}",
        file=console,
        flush=True,
    )
    config = FlowConfig(calls=args.calls, seed=args.seed, push_loss=args.push_loss, timeout_s=args.timeout_s)
    try:
        summary = run_distributed_demo(
            config,
            home,
            console=console,
            progress_interval_s=1e9 if args.no_progress else 10.0,
            faults=getattr(args, "faults", None),
        )
    except StackError as exc:
        print(f"demo ERROR: {exc}", file=console)
        return 4
    except Exception as exc:
        home.mkdir(parents=True, exist_ok=True)
        with open(home / "demo.log", "a") as out:
            traceback.print_exc(file=out)
        print(f"demo ERROR: {exc!r} (traceback in {home / 'demo.log'})", file=console)
        return 4
    summary["home"] = str(home)
    summary["log"] = str(home / "logs")
    return finish(summary, args, console)
