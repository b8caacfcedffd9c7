"""``ocp-ingest simulator``: serve a simulated OCP tenant on loopback, optionally pushing its calls."""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time

from ocp_ingest_dev.cli import add_simulator_cli as add_cli
from ocp_ingest_dev.simulator import ground_truth
from ocp_ingest_dev.simulator.app import Simulator, SimulatorConfig
from ocp_ingest_dev.simulator.auth import AuthSettings
from ocp_ingest_dev.simulator.exports import ExportSettings
from ocp_ingest_dev.simulator.faults import FaultSettings
from ocp_ingest_dev.simulator.push import Pusher, PushFaults, plan_pushes, push_calls
from ocp_ingest_dev.simulator.server import start

log = logging.getLogger(__name__)


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    config = SimulatorConfig(
        seed=args.seed,
        calls=args.calls,
        window_hours=args.window_hours,
        mean_duration_s=args.mean_duration_s,
        min_duration_s=args.min_duration_s,
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
    """Stand-alone entry point (``python -m ocp_ingest_dev.simulator``)."""
    parser = argparse.ArgumentParser(prog="ocp-simulator")
    sub = parser.add_subparsers(dest="command", required=True)
    add_cli(sub)
    args = parser.parse_args(["simulator", *(argv if argv is not None else __import__("sys").argv[1:])])
    return args.func(args)
