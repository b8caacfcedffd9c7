"""``ocp-ingest demo`` end to end, as a script or CI would run it: exit code and the JSON summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ocp_ingest.cli import build_parser


def test_demo_is_a_subcommand() -> None:
    args = build_parser().parse_args(["demo", "--calls", "5", "--push-loss", "0.5", "--seed", "2"])
    assert (args.calls, args.push_loss, args.seed, args.timeout_s) == (5, 0.5, 2, 900.0)


@pytest.mark.slow
def test_demo_stores_or_closes_every_call_and_writes_its_summary(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    home = tmp_path / "demo"
    # A subprocess: the demo uses its own AIRFLOW_HOME, and Airflow reads its configuration once per process.
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ocp-ingest")),
            "demo",
            "--calls",
            "30",
            "--push-loss",
            "0.3",
            "--seed",
            "4",
            "--json",
            str(summary_path),
            "--home",
            str(home),
            "--timeout-s",
            "240",
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "demo OK" in done.stdout
    summary = json.loads(summary_path.read_text())
    for key in (
        "calls_generated",
        "with_dialog_end",
        "stored_realtime",
        "stored_reconciliation",
        "terminal_by_reason",
        "unresolved",
        "duplicates",
        "checksum_mismatches",
        "elapsed_s",
    ):
        assert key in summary, key
    assert summary["calls_generated"] == 30 and summary["ok"] and not summary["timed_out"]
    assert summary["unresolved"] == summary["duplicates"] == summary["checksum_mismatches"] == 0
    assert summary["stored_realtime"] > 0 and summary["stored_reconciliation"] > 0
    stored = summary["stored_realtime"] + summary["stored_reconciliation"]
    assert stored + sum(summary["terminal_by_reason"].values()) == 30
    assert (home / "data" / "ground_truth.json").is_file()
    # The demo's Airflow metadata lives in its own home, never in the caller's.
    assert (home / "airflow_home" / "airflow.db").is_file()
