"""The benchmarks' CPU accounting (``benchmarks/bench_reconciliation.py``), against real processes titled as
Airflow titles a task's supervisor and its runner: a runner's CPU counts whole once its supervisor has reaped
it, even when it ran between two samples or burnt its CPU after the last sample that saw it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_realtime
import bench_reconciliation as recon

INSTANCE = "01a24560-4dbe-72a7-a205-ff15bd4da40b"
BURN_S = 0.4

# A supervisor: on each line read, runs one task runner that announces itself, waits for a line, burns
# BURN_S of CPU and exits; the supervisor reaps it and says "reaped".
SUPERVISOR = textwrap.dedent(
    f"""
    import subprocess, sys, setproctitle
    setproctitle.setproctitle("airflow worker -- LocalExecutor: <idle>")
    RUNNER = '''
    import sys, time, setproctitle
    setproctitle.setproctitle("airflow worker -- {INSTANCE}")
    print("started", flush=True)
    sys.stdin.readline()
    t = time.process_time()
    while time.process_time() - t < {BURN_S}:
        pass
    '''
    for line in sys.stdin:
        runner = subprocess.Popen(
            [sys.executable, "-c", RUNNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert runner.stdout.readline() == "started\\n"
        print("started", flush=True)
        sys.stdin.readline()
        runner.stdin.write("go\\n")
        runner.stdin.flush()
        runner.wait()
        print("reaped", flush=True)
    """
)


@pytest.fixture
def supervisor() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _say(proc: subprocess.Popen[str], line: str, expect: str) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == expect


def _title_seen(pid: int) -> None:
    """Wait until the supervisor's title is set (a sample before it would not know it as a supervisor)."""
    deadline = time.monotonic() + 10
    while "LocalExecutor" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_runner_seen_alive_counts_the_cpu_it_burnt_after_the_last_sample(supervisor):
    _title_seen(supervisor.pid)
    cpu = recon.CpuByComponent()
    cpu.start()
    _say(supervisor, "run", "started")
    cpu.sample()  # sees the runner, idle so far
    assert cpu.by_task_instance().get(INSTANCE.replace("-", ""), 0.0) < BURN_S / 2
    _say(supervisor, "go", "reaped")
    cpu.sample()  # the runner is gone: only its supervisor's reaped CPU knows what it used
    assert cpu.by_task_instance()[INSTANCE.replace("-", "")] >= BURN_S * 0.9
    assert cpu.seconds()[recon.TASK_PROCESSES] >= BURN_S * 0.9


def test_a_runner_between_two_samples_counts_as_task_processes(supervisor):
    _title_seen(supervisor.pid)
    cpu = recon.CpuByComponent()
    cpu.start()
    cpu.sample()
    _say(supervisor, "run", "started")
    _say(supervisor, "go", "reaped")
    cpu.sample()
    assert cpu.by_task_instance() == {}  # never seen: no instance to name
    assert cpu.seconds()[recon.TASK_PROCESSES] >= BURN_S * 0.9


def test_the_realtime_benchmarks_sampler_counts_by_component(supervisor):
    _title_seen(supervisor.pid)
    sampler = bench_realtime._Sampler(supervisor.pid, {})  # its RSS stands in for a receiver's
    _say(supervisor, "run", "started")
    _say(supervisor, "go", "reaped")
    spent = sampler.stop()
    assert spent[recon.TASK_PROCESSES] >= BURN_S * 0.9
    assert sampler.peak_rss > 0
