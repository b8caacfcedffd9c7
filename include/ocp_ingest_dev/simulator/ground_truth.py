"""Ground truth: everything the simulator generated and did, as JSON for tests and benchmarks to compare."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ocp_ingest_dev.simulator.calls import SimCall
from ocp_ingest_dev.simulator.exports import ExportsService
from ocp_ingest_dev.simulator.push import PushPlan


def build(
    calls: list[SimCall],
    exports: ExportsService,
    plans: dict[str, PushPlan] | None = None,
    *,
    seed: int,
    push_complete: bool = True,
) -> dict[str, Any]:
    """One record per call: its CDR fields, recording name/SHA-256/size, and its push plan and outcome.

    ``push_complete`` is False in the copy written before pushing starts (the calls are known, the push
    outcomes not yet): a watcher such as ``make run`` knows from the start which calls to account for.
    """
    records = []
    for call in calls:
        record: dict[str, Any] = call.as_dict()
        if call.has_recording:
            sha, size = exports.recording_digest(call)
            record.update(
                recording_filename=call.recording_filename, recording_sha256=sha, recording_size=size
            )
        else:
            record.update(recording_filename=None, recording_sha256=None, recording_size=None)
        plan = plans.get(call.dialog_id) if plans else None
        record["push"] = plan.as_dict() if plan else None
        records.append(record)
    return {"seed": seed, "push_complete": push_complete, "calls": records}


def write(path: str | os.PathLike[str], truth: dict[str, Any]) -> Path:
    """Write atomically (temp file + rename) so a reader never sees half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(truth, indent=1, default=str))
    os.replace(tmp, target)
    return target


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
