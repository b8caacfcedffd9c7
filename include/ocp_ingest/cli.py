"""``ocp-ingest``: the project's command line (local stack, ledger inspection, audio checks)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

from ocp_ingest.config import Settings


def _cmd_run(args: argparse.Namespace) -> int:
    from ocp_ingest.stack import LOCAL_CADENCE, LocalStack

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


def _cmd_config(args: argparse.Namespace) -> int:
    for name, value in Settings.from_env().describe().items():
        print(f"{name}={value}")
    return 0


def _cmd_ledger(args: argparse.Namespace) -> int:
    from ocp_ingest.ledger import open_ledger

    settings = Settings.from_env()
    with open_ledger(settings) as ledger:
        if args.ledger_command == "show":
            record = ledger.get(args.dialog_id.upper())
            if record is None:
                print(f"no ledger record for {args.dialog_id}", file=sys.stderr)
                return 1
            print(json.dumps(record.to_item(), indent=2))
        elif args.ledger_command == "pending":
            grace = timedelta(seconds=settings.pending_grace_s if args.grace is None else args.grace)
            for record in ledger.pending(grace, args.limit):
                print(json.dumps(record.to_item()))
        elif args.ledger_command == "open":
            older = timedelta(seconds=settings.open_call_timeout_s if args.older is None else args.older)
            for record in ledger.open_calls(older, args.limit):
                print(json.dumps(record.to_item()))
        elif args.ledger_command == "counts":
            end = datetime.now(UTC)
            print(json.dumps(ledger.counts_by_state(end - timedelta(days=args.days), end), indent=2))
        elif args.ledger_command == "init" and settings.ledger_backend == "dynamodb":
            ledger.backend.create_table()  # type: ignore[attr-defined]
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from ocp_ingest.audio import validate_audio

    settings = Settings.from_env()
    exit_code = 0
    for path in args.files:
        verdict = validate_audio(
            path,
            expected_duration_s=args.expected_duration,
            tolerance_s=settings.duration_tolerance_s,
            tolerance_ratio=settings.duration_tolerance_ratio,
            max_bytes=settings.max_recording_bytes,
        )
        print(json.dumps({"file": path, **verdict.to_dict()}))
        exit_code = exit_code or (0 if verdict.ok else 2)
    return exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocp-ingest", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

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

    config = sub.add_parser("config", help="print the effective configuration")
    config.set_defaults(func=_cmd_config)

    ledger = sub.add_parser("ledger", help="inspect the call ledger")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True)
    show = ledger_sub.add_parser("show", help="one call's record as JSON")
    show.add_argument("dialog_id")
    pending = ledger_sub.add_parser("pending", help="pending calls, oldest first (NDJSON)")
    pending.add_argument("--limit", type=int, default=100)
    pending.add_argument("--grace", type=float, default=None, help="seconds (default from config)")
    open_ = ledger_sub.add_parser("open", help="calls with no dialog_end long after their start (NDJSON)")
    open_.add_argument("--limit", type=int, default=100)
    open_.add_argument("--older", type=float, default=None, help="seconds (default from config)")
    counts = ledger_sub.add_parser("counts", help="calls by state over the last N days")
    counts.add_argument("--days", type=int, default=1)
    ledger_sub.add_parser("init", help="create the ledger (SQLite file or DynamoDB table)")
    ledger.set_defaults(func=_cmd_ledger)

    validate = sub.add_parser(
        "validate", help="run the layered audio validator on files (exit 2 if any fails)"
    )
    validate.add_argument("files", nargs="+")
    validate.add_argument("--expected-duration", type=float, default=None, help="CDR duration in seconds")
    validate.set_defaults(func=_cmd_validate)

    from ocp_ingest.receiver.server import add_cli as add_receiver_cli

    add_receiver_cli(sub)
    from ocp_ingest.download_entrypoint import add_cli as add_download_cli

    add_download_cli(sub)
    from ocp_ingest.audit.cli import add_cli as add_audit_cli

    add_audit_cli(sub)
    from ocp_ingest.demo import add_cli as add_demo_cli

    add_demo_cli(sub)
    try:
        from ocp_ingest.simulator.cli import add_cli
    except ImportError:  # the simulator package is optional in slim images
        pass
    else:
        add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
