"""Running ``ocp-ingest demo`` as a user would (its own process: Airflow reads its configuration once per
process) and the verdict every demo test shares."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

#: What a settled demo must never have, whatever its topology or faults.
NEVER = ("unresolved", "duplicates", "checksum_mismatches", "orphan_objects", "overwritten")


def run_demo(tmp_path: Path, *options: str, timeout_s: float = 1000) -> tuple[dict[str, Any], str]:
    """``ocp-ingest demo`` with ``options``, its summary written under ``tmp_path``; (summary, stdout).
    A non-zero exit fails with the end of its output."""
    summary_path = tmp_path / "summary.json"
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ocp-ingest")),
            "demo",
            *options,
            "--json",
            str(summary_path),
            "--home",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    return json.loads(summary_path.read_text()), done.stdout


def assert_settled(summary: dict[str, Any], calls: int) -> None:
    """The demo's verdict held: every call stored or terminal, nothing duplicated, mismatched, orphaned or
    overwritten, and it did not time out."""
    assert summary["ok"] and not summary["timed_out"] and not summary["violations"], summary["violations"]
    assert summary["calls_generated"] == calls
    for key in NEVER:
        assert summary[key] == 0, key
