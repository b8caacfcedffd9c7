"""Real process faults on the production topology (``demo --topology distributed --faults process``).

The slow test runs the distributed demo once with the process-fault schedule: SIGKILL of the triggerer while
an export is waited for, of a running download's task process, of the Celery worker running another
download (its whole process group), of the scheduler, and of PostgreSQL (Airflow's metadata DB), each
started again. Every fault must have struck and recovered, and the demo's verdict must hold: every call
stored with the ground truth's bytes or terminal with a reason, no duplicate, overwrite or orphan, the audit
trail equal to the ledger. The fast ones pin the pieces: a child started again the same way, a signal to a
whole process group, the schedule's bookkeeping.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from ocp_ingest_dev.stack.faults import (
    DOWNLOAD_TASK,
    SCHEDULES,
    WAIT_TASK,
    Fault,
    FaultSchedule,
    View,
    is_task,
    process_faults,
    ti_key,
)
from ocp_ingest_dev.stack.supervise import Processes, descendants
from tests.dev.demo_support import run_demo
from tests.dev.test_distributed_demo import (  # noqa: F401 - the fixture
    assert_the_distributed_run,
    needs_postgres,
    topology_binaries,
)


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by its new parent, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_killed_child_is_started_again_the_same_way_with_its_log_appended(tmp_path: Path) -> None:
    processes = Processes()
    log = tmp_path / "child.log"
    # The leader, a child in its group and one in a session of its own (as PostgreSQL's backends; Airflow's
    # task processes take a group of their own): the kill takes the whole tree.
    script = (
        "echo started $MARK $(pwd); sleep 60 & echo $! > grandchild.pid; "
        "setsid sleep 61 & echo $! > escaped.pid; wait"
    )
    processes.spawn("child", ["sh", "-c", script], {**os.environ, "MARK": "m1"}, log_path=log, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "escaped.pid").exists() or "started m1" not in log.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.1)
        grandchild = int((tmp_path / "grandchild.pid").read_text())
        escaped = int((tmp_path / "escaped.pid").read_text())
        assert {grandchild, escaped} <= set(descendants(processes["child"].pid))
        first = processes["child"]
        processes.kill("child", signal.SIGKILL)
        assert first.poll() == -signal.SIGKILL
        time.sleep(0.1)
        assert not _alive(grandchild) and not _alive(escaped), "the whole tree is signalled"
        # Killed on purpose: not a component dying, until it is started again.
        assert processes.dead() is None and processes.children["child"].down
        (tmp_path / "escaped.pid").unlink()
        second = processes.respawn("child")
        assert second.pid != first.pid and not processes.children["child"].down
        deadline = time.monotonic() + 10
        while log.read_text().count("started m1") < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert log.read_text().splitlines()[:2] == [f"started m1 {tmp_path}"] * 2
        assert processes.alive()
        second.kill()  # a death that no fault asked for is one
        second.wait()
        dead = processes.dead()
        assert dead is not None and dead.name == "child"
    finally:
        processes.stop(grace_s=5)


def test_the_process_schedule_names_every_fault_of_issue_13_and_orders_the_late_ones() -> None:
    faults = {f.name: f for f in process_faults()}
    assert set(faults) == {
        "triggerer-sigkill",
        "task-sigkill",
        "worker-sigkill",
        "scheduler-restart",
        "postgres-restart",
    }
    assert set(faults["scheduler-restart"].after) == {"triggerer-sigkill", "task-sigkill", "worker-sigkill"}
    postgres = faults["postgres-restart"]
    assert postgres.after == ("scheduler-restart",) and postgres.after_back
    assert faults["scheduler-restart"].after_s > 0 and postgres.after_s > 0
    assert SCHEDULES == ("process",)
    from ocp_ingest.cli import build_parser

    args = build_parser().parse_args(["demo", "--topology", "distributed", "--faults", "process"])
    assert args.faults == "process"


def test_a_fault_that_never_struck_or_never_recovered_is_a_violation() -> None:
    faults = [Fault("a", "the first"), Fault("b", "the second")]
    schedule = FaultSchedule(stack=None, faults=faults, started=0.0)
    schedule.faults[1].struck_at, schedule.faults[1].target = 12.0, "worker-1"
    assert schedule.violations() == [
        "fault a never struck (the first)",
        "fault b struck at 12 s (worker-1) but never recovered",
    ]
    assert not schedule.finished()
    schedule.faults[0].struck_at = 5.0
    for fault in schedule.faults:
        fault.back_at, fault.recovered_at = 20.0, 30.0
    assert schedule.finished() and not schedule.violations()
    assert schedule.summary()[1]["recover_s"] == 18.0 and schedule.summary()[1]["recovered"]


DOWNLOAD = f"export_link_1.{DOWNLOAD_TASK}"


def test_task_instances_are_told_apart_by_run_task_and_map_index() -> None:
    tis: list[dict[str, Any]] = [
        {"dag_run_id": "r1", "task_id": DOWNLOAD, "map_index": 0, "state": "success"},
        {"dag_run_id": "r1", "task_id": DOWNLOAD, "map_index": 1, "state": "running"},
        {"dag_run_id": "r1", "task_id": f"export_link_2.{WAIT_TASK}", "map_index": None, "state": "deferred"},
    ]
    view = View(tis, [{"dag_run_id": "r1", "state": "running"}])
    assert ti_key(tis[0]) == ("r1", DOWNLOAD, 0) and ti_key(tis[2])[2] == -1
    assert view.ti_state(("r1", DOWNLOAD, 1)) == "running"
    assert (
        is_task(tis[1], DOWNLOAD_TASK) and is_task(tis[2], WAIT_TASK) and not is_task(tis[2], DOWNLOAD_TASK)
    )
    assert view.running_run() == {"dag_run_id": "r1", "state": "running"}


@pytest.mark.slow
@needs_postgres
def test_real_process_faults_on_the_distributed_topology_keep_every_invariant(tmp_path: Path) -> None:
    summary, out = run_demo(
        tmp_path,
        *("--topology", "distributed", "--faults", "process", "--calls", "50", "--push-loss", "0.3"),
        *("--seed", "4", "--timeout-s", "720"),
    )
    faults = {f["name"]: f for f in summary["faults"]}
    assert set(faults) == {f.name for f in process_faults()}
    # Every fault struck, on what it names, and the struck task, run or part recovered.
    for name, fault in faults.items():
        assert fault["struck_at"] is not None and fault["recovered"], (name, fault)
    assert faults["worker-sigkill"]["target"].startswith("worker-")
    assert re.search(rf" running export_link_\d+\.{DOWNLOAD_TASK} ", faults["worker-sigkill"]["target"])
    assert faults["task-sigkill"]["target"].startswith("pid ")
    assert re.search(rf": export_link_\d+\.{DOWNLOAD_TASK} ", faults["task-sigkill"]["target"])
    assert re.search(
        rf"triggerer running export_link_\d+\.{WAIT_TASK} ", faults["triggerer-sigkill"]["target"]
    )
    # The same verdict and topology facts as a run without faults.
    assert_the_distributed_run(summary, out, 50, tmp_path / "run")
    # The killed downloads were retried: Airflow noticed them.
    assert summary["task_retries"] >= 2
