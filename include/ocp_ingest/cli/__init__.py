"""``ocp-ingest``: the project's command line (receiver, download pod, ledger, audit, audio checks).

With the dev harness installed (``make``), also ``run``, ``demo`` and ``simulator``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

# Building the parser imports nothing heavy (no Airflow, pandas, pyarrow, boto3, uvicorn, not even pydantic):
# each command imports what it needs when it runs, so ``--help`` answers at once (tests/test_cli_help.py).


def _cmd_config(args: argparse.Namespace) -> int:
    from ocp_ingest.config import Settings

    settings = Settings.from_env()
    sources = settings.sources()
    values = settings.describe()
    width = max(len(f"{name}={value}") for name, value in values.items())
    for name, value in values.items():
        print(f"{name}={value}".ljust(width), f"  # {sources[name]}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from ocp_ingest.config import Settings
    from ocp_ingest.preflight import EVERYTHING, checks, receiver_needs

    settings = Settings.from_env()
    needs = receiver_needs(settings) if args.receiver else EVERYTHING
    failed = 0
    for check in checks(settings, needs, timeout_s=args.timeout_s):
        if check.ok:
            print(f"ok  {check.variable}: {check.resource}")
        else:
            failed += 1
            print(f"ocp-ingest: {check.line}", file=sys.stderr)
    return 1 if failed else 0


def _cmd_ledger(args: argparse.Namespace) -> int:
    from ocp_ingest.config import Settings
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
    from ocp_ingest.config import Settings

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


def _cmd_receiver(args: argparse.Namespace) -> int:
    from ocp_ingest.receiver.server import serve

    serve(args.host, args.port, reuse_port=args.reuse_port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocp-ingest", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    config = sub.add_parser("config", help="print the effective configuration")
    config.set_defaults(func=_cmd_config)

    check = sub.add_parser(
        "check",
        help="check that every configured bucket, the ledger table or file and the local folders are there "
        "and usable (exit 1 if not)",
    )
    check.add_argument("--receiver", action="store_true", help="only what the receiver writes")
    check.add_argument("--timeout-s", type=float, default=30.0, help="per resource (default 30)")
    check.set_defaults(func=_cmd_check)

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

    receiver = sub.add_parser("receiver", help="run the receiver (ingress for OCP pushes)")
    receiver.add_argument("--host", default=None, help="bind address (default OCP_INGEST_RECEIVER_HOST)")
    receiver.add_argument("--port", type=int, default=None, help="port (default OCP_INGEST_RECEIVER_PORT)")
    receiver.add_argument(
        "--reuse-port",
        action="store_true",
        help="share the port with other receiver processes on this host (SO_REUSEPORT): run one per core",
    )
    receiver.set_defaults(func=_cmd_receiver)

    from ocp_ingest.cli.download import add_cli as add_download_cli

    add_download_cli(sub)
    from ocp_ingest.cli.audit import add_cli as add_audit_cli

    add_audit_cli(sub)
    try:  # the dev harness (simulator, demo, local stack) is installed by make, not in the image
        from ocp_ingest_dev.cli import add_dev_cli
    except ImportError:
        pass
    else:
        add_dev_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ocp_ingest.config import SettingsError

    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:  # a bad OCP_INGEST_* value: one line each, no traceback
        for line in str(exc).splitlines():
            print(f"ocp-ingest: {line}", file=sys.stderr)
        return 2
    except Exception as exc:  # a configured resource missing (the receiver's start-up check): one line
        from ocp_ingest.preflight import PreflightError

        if not isinstance(exc, PreflightError):
            raise
        print(f"ocp-ingest: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
