"""The dev harness's subcommands of ``ocp-ingest``: ``run`` (the local stack), ``demo``, ``simulator``."""

from __future__ import annotations

import argparse


def _cmd_run(args: argparse.Namespace) -> int:
    from ocp_ingest_dev.stack import LOCAL_CADENCE, LocalStack

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


def add_dev_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = sub.add_parser("run", help="start the local stack (Airflow standalone on the embedded default)")
    run.add_argument("--port", type=int, default=8080, help="Airflow UI/API port (default 8080)")
    run.add_argument("--receiver-port", type=int, default=8787)
    run.add_argument("--simulator-port", type=int, default=8788)
    run.add_argument("--calls", type=int, default=2000, help="calls the simulator plays (0: none)")
    run.add_argument("--hours", type=float, default=3.0, help="hours of call time they are spread over")
    run.add_argument("--push-rate", type=float, default=10.0, help="calls pushed per second")
    run.add_argument("--seed", type=int, default=None, help="simulator seed (default: from the clock)")
    run.add_argument("--verbose", action="store_true", help="components log to this terminal, not a file")
    run.set_defaults(func=_cmd_run)

    from ocp_ingest_dev.demo.cli import add_cli as add_demo_cli
    from ocp_ingest_dev.simulator.cli import add_cli as add_simulator_cli

    add_demo_cli(sub)
    add_simulator_cli(sub)
