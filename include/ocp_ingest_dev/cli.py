"""The dev harness's subcommands of ``ocp-ingest``: ``run`` (the local stack), ``demo``, ``simulator``.

Only the parsers live here, importing nothing heavy: each command imports its module when it runs, so
``ocp-ingest --help`` stays fast (the simulator alone pulls numpy, httpx and uvicorn).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

Subparsers = argparse._SubParsersAction


def _cmd_run(args: argparse.Namespace) -> int:
    from ocp_ingest_dev.stack import LOCAL_CADENCE, LocalStack

    if args.topology == "distributed":
        from ocp_ingest_dev.stack.distributed import DistributedStack

        return DistributedStack(
            home=args.home,
            port=args.port,
            calls=args.calls,
            window_hours=args.hours,
            push_rate=args.push_rate,
            seed=args.seed,
            settings_env=LOCAL_CADENCE,
        ).run_forever()

    stack = LocalStack(
        port=args.port,
        receiver_port=args.receiver_port,
        simulator_port=args.simulator_port,
        calls=args.calls,
        window_hours=args.hours,
        push_rate=args.push_rate,
        seed=args.seed,
        settings_env=LOCAL_CADENCE,
    )
    # The terminal is for the banner, the progress line and the reports; the components log to a file.
    stack.log_path = None if args.verbose else stack.data_home / "stack.log"
    if stack.log_path:
        stack.log_path.parent.mkdir(parents=True, exist_ok=True)
    return stack.run_forever()


def _cmd_demo(args: argparse.Namespace) -> int:
    from ocp_ingest_dev.demo.cli import cmd_demo

    return cmd_demo(args)


def _cmd_simulator(args: argparse.Namespace) -> int:
    from ocp_ingest_dev.simulator.cli import run

    return run(args)


def add_dev_cli(sub: Subparsers) -> None:
    run = sub.add_parser(
        "run",
        help="start the local stack: the embedded default (Airflow standalone) or the production topology",
    )
    run.add_argument(
        "--topology",
        choices=("embedded", "distributed"),
        default="embedded",
        help="embedded: SQLite, LocalExecutor, local disk (default); distributed: Postgres, Celery + Redis, "
        "two workers, S3/DynamoDB/KMS (moto), two receivers behind haproxy",
    )
    run.add_argument(
        "--home",
        type=Path,
        default=None,
        help="distributed: the run directory (default <project>/var/distributed)",
    )
    run.add_argument("--port", type=int, default=8080, help="Airflow UI/API port (default 8080)")
    run.add_argument("--receiver-port", type=int, default=8787)
    run.add_argument("--simulator-port", type=int, default=8788)
    run.add_argument("--calls", type=int, default=2000, help="calls the simulator plays (0: none)")
    run.add_argument("--hours", type=float, default=3.0, help="hours of call time they are spread over")
    run.add_argument("--push-rate", type=float, default=10.0, help="calls pushed per second")
    run.add_argument("--seed", type=int, default=None, help="simulator seed (default: from the clock)")
    run.add_argument("--verbose", action="store_true", help="components log to this terminal, not a file")
    run.set_defaults(func=_cmd_run)
    add_demo_cli(sub)
    add_simulator_cli(sub)


def add_demo_cli(subparsers: Subparsers) -> None:
    """Register ``ocp-ingest demo``."""
    p = subparsers.add_parser(
        "demo",
        help="the whole flow unattended (simulator, receiver, both DAGs via dag.test); exit 0 if complete",
    )
    p.add_argument("--calls", type=int, default=500)
    p.add_argument("--push-loss", type=float, default=0.10, help="share of audio pushes dropped (0..1)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", default=None, help="write the JSON summary here")
    p.add_argument("--timeout-s", type=float, default=900.0)
    p.add_argument("--home", default=None, help="data and AIRFLOW_HOME of this run (default: a new temp dir)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.add_argument(
        "--topology",
        choices=("embedded", "distributed"),
        default="embedded",
        help="embedded: both DAGs via dag.test() in this process (default); distributed: the production "
        "topology as processes (Postgres, Celery + Redis, two workers, S3/DynamoDB/KMS, haproxy)",
    )
    p.add_argument(
        "--faults",
        choices=("process",),
        default=None,
        help="with --topology distributed: strike real processes during the run (process: SIGKILL of the "
        "triggerer, a task process, a Celery worker, the scheduler, PostgreSQL; each started again)",
    )
    p.set_defaults(func=_cmd_demo)


def _when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def add_simulator_cli(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Register the ``simulator`` subcommand (the caller dispatches to ``args.func(args)``)."""
    p = subparsers.add_parser("simulator", help="serve a simulated OCP tenant (Exports API, auth, pushes)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--window-start", type=_when, default=None, help="ISO 8601; default: two hours ago")
    p.add_argument("--window-hours", type=float, default=1.0)
    p.add_argument("--mean-duration-s", type=float, default=180.0)
    p.add_argument("--min-duration-s", type=float, default=5.0)
    p.add_argument("--max-duration-s", type=float, default=3600.0)
    p.add_argument("--no-recording-share", type=float, default=0.05)
    # Exports API
    p.add_argument("--prep-s", type=float, default=2.0, help="export preparation time")
    p.add_argument("--ttl-s", type=float, default=86400.0, help="export results lifetime")
    p.add_argument("--retention-days", type=float, default=60.0)
    p.add_argument("--export-fail-share", type=float, default=0.0)
    p.add_argument("--page-size", type=int, default=100)
    # Auth
    p.add_argument("--access-lifetime-s", type=float, default=300.0)
    p.add_argument("--refresh-lifetime-s", type=float, default=1800.0)
    # API faults
    p.add_argument("--rate-limit", type=float, default=None, help="requests per second before 429")
    p.add_argument("--error-share", type=float, default=0.0, help="share of API requests answered 503")
    p.add_argument("--broken-download-share", type=float, default=0.0)
    # Push
    p.add_argument("--push-url", default=None, help="receiver base URL; pushes events and audio there")
    p.add_argument(
        "--push-rate", type=float, default=None, help="calls per second (default: as fast as possible)"
    )
    p.add_argument("--push-concurrency", type=int, default=4)
    p.add_argument("--drop-share", type=float, default=0.10, help="share of audio pushes dropped")
    p.add_argument("--duplicate-share", type=float, default=0.02)
    p.add_argument("--out-of-order-share", type=float, default=0.02)
    p.add_argument("--delay-share", type=float, default=0.02)
    p.add_argument("--delay-s", type=float, default=5.0)
    p.add_argument("--truncate-share", type=float, default=0.01)
    p.add_argument("--corrupt-share", type=float, default=0.01)
    p.add_argument("--lost-end-share", type=float, default=0.01)
    p.add_argument("--reset-share", type=float, default=0.01)
    p.add_argument("--ground-truth", default=None, help="write the ground truth JSON here")
    p.add_argument("--exit-after-push", action="store_true", help="stop once every call is pushed")
    p.set_defaults(func=_cmd_simulator)
    return p
