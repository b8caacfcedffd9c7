"""The benchmarks' CPU accounting (``benchmarks/bench_reconciliation.py``), against real processes titled as
Airflow titles a task's supervisor and its runner: a runner's CPU counts whole, and once, after its
supervisor has reaped it, even when it ran between two samples, burnt its CPU after the last sample that saw
it, or was first seen after it exited."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_realtime
import bench_reconciliation as recon

INSTANCE = "01a24560-4dbe-72a7-a205-ff15bd4da40b"
BURN_S = 0.4

RUNNER = f"""
import sys, time, setproctitle
setproctitle.setproctitle("airflow worker -- {INSTANCE}")
print("started", flush=True)
sys.stdin.readline()
t = time.process_time()
while time.process_time() - t < {BURN_S}:
    pass
"""

# Driven line by line: "run" starts a task runner, which announces itself and waits; "go" lets it burn
# BURN_S of CPU and exit, and waits for that without reaping it (a zombie); "reap" reaps it.
SUPERVISOR = f"""
import os, subprocess, sys, setproctitle
setproctitle.setproctitle("airflow worker -- LocalExecutor: <idle>")
for line in sys.stdin:
    if line == "run\\n":
        runner = subprocess.Popen(
            [sys.executable, "-c", {RUNNER!r}], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        print(runner.stdout.readline().strip(), flush=True)
    elif line == "go\\n":
        runner.stdin.write("go\\n")
        runner.stdin.flush()
        os.waitid(os.P_PID, runner.pid, os.WEXITED | os.WNOWAIT)
        print("exited", flush=True)
    elif line == "reap\\n":
        runner.wait()
        print("reaped", flush=True)
"""


@pytest.fixture
def supervisor() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 10  # a sample before its title is set would not know it
        while b"LocalExecutor" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        yield proc
    finally:
        proc.kill()
        proc.wait()


ANSWERS = {"run": "started", "go": "exited", "reap": "reaped"}


def _say(proc: subprocess.Popen[str], *commands: str) -> None:
    """Each command to the supervisor, in turn, and its answer."""
    assert proc.stdin is not None and proc.stdout is not None
    for command in commands:
        proc.stdin.write(command + "\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == ANSWERS[command]


def _runner_cpu(cpu: recon.CpuByComponent) -> float:
    return cpu.by_task_instance().get(INSTANCE.replace("-", ""), 0.0)


def test_a_runner_seen_alive_counts_the_cpu_it_burnt_after_the_last_sample(supervisor):
    cpu = recon.CpuByComponent()
    cpu.start()
    _say(supervisor, "run")
    cpu.sample()  # sees the runner, idle so far
    assert _runner_cpu(cpu) < BURN_S / 2
    _say(supervisor, "go", "reap")
    cpu.sample()  # the runner is gone: only its supervisor's reaped CPU knows what it used
    assert BURN_S * 0.9 <= _runner_cpu(cpu) < BURN_S * 1.5
    assert BURN_S * 0.9 <= cpu.seconds()[recon.TASK_PROCESSES] < BURN_S * 1.5


def test_a_runner_between_two_samples_counts_as_task_processes(supervisor):
    cpu = recon.CpuByComponent()
    cpu.start()
    cpu.sample()
    _say(supervisor, "run", "go", "reap")
    cpu.sample()
    assert cpu.by_task_instance() == {}  # never seen: no instance to name
    assert BURN_S * 0.9 <= cpu.seconds()[recon.TASK_PROCESSES] < BURN_S * 1.5


def test_a_runner_first_seen_after_it_exited_counts_once_as_task_processes(supervisor):
    cpu = recon.CpuByComponent()
    cpu.start()
    _say(supervisor, "run", "go")
    cpu.sample()  # exited, not reaped: no command line; only its parent says whose it was
    _say(supervisor, "reap")
    cpu.sample()
    seconds = cpu.seconds()
    assert BURN_S * 0.9 <= seconds[recon.TASK_PROCESSES] < BURN_S * 1.5  # once, not twice
    assert seconds.get(recon.KERNEL, 0.0) < BURN_S / 2


def test_the_realtime_benchmarks_sampler_counts_by_component(supervisor):
    sampler = bench_realtime._Sampler(supervisor.pid, {})  # its RSS stands in for a receiver's
    _say(supervisor, "run", "go", "reap")
    spent = sampler.stop()
    assert BURN_S * 0.9 <= spent[recon.TASK_PROCESSES] < BURN_S * 1.5
    assert sampler.peak_rss > 0
