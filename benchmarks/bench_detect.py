"""Memory and time of reconciliation's detection over a pending backlog, against holding the records whole.

Usage::

    python benchmarks/bench_detect.py [--calls 10000,100000]

For each size, a fresh SQLite ledger gets that many calls ended without audio (4 OCP groups over 48 hours,
as ``bench_backlog.py``), then two fresh processes read the same backlog:

* **reference**: the ledger's pending records read whole (``Ledger.pending``), as detection did before
  it streamed them, and turned into compact rows;
* **detect**: ``reconcile.detect.detect`` as the reconciliation DAG's detect task runs it (records become
  compact rows as the index pages stream past).

Each prints its peak RSS above its own baseline (after imports and opening the ledger) and the bytes per
pending call; the last line per size gives detect / reference. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))  # runnable without an install
sys.path.insert(0, str(ROOT))

GROUPS = 4
HOURS = 48
SEED_BATCH = 2000


def seed(home: Path, count: int) -> None:
    """``count`` calls ended without audio, written in batches (one transaction each)."""
    os.environ["OCP_INGEST_HOME"] = str(home)
    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger
    from ocp_ingest.ledger.cdr import cdr_transition
    from ocp_ingest.routing import LobRouter
    from ocp_ingest_dev.simulator.calls import FlowSpec, generate_calls

    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS + 4)
    flows = tuple(FlowSpec(f"flow_{g}", f"grp-{g}", (f"+3491000010{g}",)) for g in range(GROUPS))
    calls = generate_calls(
        seed=1,
        count=count,
        window_start=start,
        window_hours=HOURS,
        no_recording_share=0.0,
        mean_duration_s=2,
        min_duration_s=2,
        max_duration_s=2,
        flows=flows,
    )
    settings = Settings.from_env()
    router = LobRouter.load(settings.lob_routing_file)
    with open_ledger(settings) as ledger:
        for i in range(0, len(calls), SEED_BATCH):
            transitions = [cdr_transition(c.dialog_end(), router) for c in calls[i : i + SEED_BATCH]]
            ledger.apply_many([t for t in transitions if t is not None])


def measure(mode: str) -> None:
    """Run in a fresh process: one way of reading the backlog; prints a JSON line."""
    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger
    from ocp_ingest.reconcile.detect import PendingCall, PendingQuery, call_start, detect

    settings = Settings.from_env()
    query = PendingQuery(grace=timedelta(minutes=15), limit=None, open_after=timedelta(hours=2))
    with open_ledger(settings) as ledger:
        ledger.get("0" * 32)  # the connection and its caches are part of the baseline
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.monotonic()
        if mode == "reference":
            records = ledger.pending(query.grace, None) + ledger.open_calls(timedelta(hours=2), None)
            records.sort(key=lambda r: (r.pending_since or r.open_since, r.dialog_id))
            calls = [
                PendingCall(r.dialog_id, r.ocp_group, s, r.call_end_ts, r.retry_count)
                for r in records
                if r.ocp_group and (s := call_start(r))
            ]
        else:
            calls = list(detect(ledger, query).calls)
        wall = time.monotonic() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    grown = (peak - base) * 1024
    print(
        json.dumps(
            {
                "mode": mode,
                "calls": len(calls),
                "peak_growth_MiB": round(grown / 2**20, 1),
                "bytes_per_call": round(grown / max(1, len(calls))),
                "wall_s": round(wall, 2),
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", default="10000,100000", help="backlog sizes, comma-separated")
    parser.add_argument("--measure", choices=("reference", "detect"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return 0
    os.environ["OCP_INGEST_AUDIT_EVENTS"] = "false"  # detection's memory, not the audit trail's
    for count in (int(c) for c in args.calls.split(",")):
        home = Path(tempfile.mkdtemp(prefix="ocp-bench-detect-"))
        try:
            t = time.monotonic()
            seed(home, count)
            print(f"{count} pending calls seeded in {time.monotonic() - t:.1f} s", flush=True)
            rows = {}
            for mode in ("reference", "detect"):
                env = {**os.environ, "OCP_INGEST_HOME": str(home)}
                out = (
                    subprocess.run(
                        [sys.executable, __file__, "--measure", mode],
                        env=env,
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    .stdout.strip()
                    .splitlines()[-1]
                )
                rows[mode] = json.loads(out)
                print(out, flush=True)
            ref, ours = rows["reference"], rows["detect"]
            ratio = (
                ours["peak_growth_MiB"] / ref["peak_growth_MiB"] if ref["peak_growth_MiB"] else float("nan")
            )
            print(
                f"{count} calls: detect grows {ours['peak_growth_MiB']} MiB "
                f"({ours['bytes_per_call']} B/call) "
                f"= {ratio:.2f}x holding the records whole ({ref['peak_growth_MiB']} MiB, "
                f"{ref['bytes_per_call']} B/call); {ours['wall_s']} s vs {ref['wall_s']} s",
                flush=True,
            )
        finally:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
