"""``ocp-ingest simulator``: serve a simulated OCP tenant on loopback, optionally pushing its calls."""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from datetime import UTC, datetime

from ocp_ingest_dev.simulator import ground_truth
from ocp_ingest_dev.simulator.app import Simulator, SimulatorConfig
from ocp_ingest_dev.simulator.auth import AuthSettings
from ocp_ingest_dev.simulator.exports import ExportSettings
from ocp_ingest_dev.simulator.faults import FaultSettings
from ocp_ingest_dev.simulator.push import Pusher, PushFaults, plan_pushes, push_calls
from ocp_ingest_dev.simulator.server import start

log = logging.getLogger(__name__)


def _when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def add_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Register the ``simulator`` subcommand (the caller dispatches to ``args.func(args)``)."""
    p = subparsers.add_parser("simulator", help="serve a simulated OCP tenant (Exports API, auth, pushes)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--window-start", type=_when, default=None, help="ISO 8601; default: two hours ago")
    p.add_argument("--window-hours", type=float, default=1.0)
    p.add_argument("--mean-duration-s", type=float, default=180.0)
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
    p.set_defaults(func=run)
    return p


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    config = SimulatorConfig(
        seed=args.seed,
        calls=args.calls,
        window_hours=args.window_hours,
        mean_duration_s=args.mean_duration_s,
        max_duration_s=args.max_duration_s,
        no_recording_share=args.no_recording_share,
        exports=ExportSettings(
            prep_s=args.prep_s,
            ttl_s=args.ttl_s,
            retention_days=args.retention_days,
            fail_share=args.export_fail_share,
            default_page_size=args.page_size,
        ),
        auth=AuthSettings(
            access_lifetime_s=args.access_lifetime_s, refresh_lifetime_s=args.refresh_lifetime_s
        ),
        faults=FaultSettings(
            transient_error_share=args.error_share,
            rate_limit_per_s=args.rate_limit,
            broken_download_share=args.broken_download_share,
        ),
    )
    if args.window_start is not None:
        config.window_start = args.window_start
    return config


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted (or until pushing is done with --exit-after-push)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sim = Simulator(config_from_args(args))
    running = start(sim, args.host, args.port, log_level="warning")
    print(
        f"OCP simulator on {running.url} ({len(sim.calls)} calls, groups {', '.join(sim.ocp_groups)})",
        flush=True,
    )
    plans = None
    done = threading.Event()
    try:
        if args.push_url:
            faults = PushFaults(
                audio_drop_share=args.drop_share,
                duplicate_share=args.duplicate_share,
                out_of_order_share=args.out_of_order_share,
                delay_share=args.delay_share,
                delay_s=args.delay_s,
                truncate_share=args.truncate_share,
                corrupt_share=args.corrupt_share,
                lost_dialog_end_share=args.lost_end_share,
                reset_share=args.reset_share,
            )
            plans = plan_pushes(sim.calls, faults, args.seed)
            if args.ground_truth:  # the calls to account for, before any is pushed
                ground_truth.write(
                    args.ground_truth,
                    ground_truth.build(sim.calls, sim.exports, plans, seed=args.seed, push_complete=False),
                )
            # Secrets come from the environment, never from the command line (visible in ps).
            pusher = Pusher(
                args.push_url,
                signing_secret=os.environ.get("OCP_INGEST_PUSH_SIGNING_SECRET"),
                shared_secret=os.environ.get("OCP_INGEST_PUSH_SHARED_SECRET"),
                concurrency=args.push_concurrency,
            )
            push_calls(sim.calls, plans, pusher, rate_per_s=args.push_rate)
            pusher.close()
            print(f"pushed {len(sim.calls)} calls to {args.push_url}", flush=True)
        if args.ground_truth:
            path = ground_truth.write(
                args.ground_truth, ground_truth.build(sim.calls, sim.exports, plans, seed=args.seed)
            )
            print(f"ground truth written to {path}", flush=True)
        if args.exit_after_push:
            return 0
        while not done.wait(3600):
            time.sleep(0)
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m ocp_ingest_dev.simulator``) until the lead wires add_cli."""
    parser = argparse.ArgumentParser(prog="ocp-simulator")
    sub = parser.add_subparsers(dest="command", required=True)
    add_cli(sub)
    args = parser.parse_args(["simulator", *(argv if argv is not None else __import__("sys").argv[1:])])
    return args.func(args)
