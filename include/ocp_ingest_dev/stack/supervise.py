"""What every dev stack does with its processes: start each in its own session, wait for it to be healthy,
stop every group, and fail fast with one line naming the component.

:class:`Processes` is the set of children of one stack (the embedded ``make run`` and the distributed
topology alike). Each child runs in a new session, so Ctrl-C in the terminal reaches only the stack, which
stops every group itself: SIGINT first (Airflow, Postgres and Redis shut down cleanly on it), SIGKILL for
stragglers. Children are stopped in reverse order of their tier (clients before the services they use).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


class StackError(RuntimeError):
    """A stack could not start: one line naming the component and what to look at."""


def raise_interrupt(signum: int, frame: object) -> None:
    """SIGTERM handler: a supervisor's SIGTERM stops the stack the same way as Ctrl-C."""
    raise KeyboardInterrupt


def free_port() -> int:
    """A TCP port free on loopback right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(component: str, binary: str, package: str, search: tuple[str, ...] = ()) -> str:
    """The full path of ``binary`` (on PATH or in one of ``search``), or :class:`StackError` saying which
    Debian package provides it."""
    found = shutil.which(binary)
    for folder in search:
        if found:
            break
        candidate = Path(folder) / binary
        if candidate.is_file() and os.access(candidate, os.X_OK):
            found = str(candidate)
    if not found:
        raise StackError(
            f"{component}: the binary '{binary}' is not installed (Debian package '{package}': "
            f"apt-get install {package})"
        )
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first), from /proc (empty where there is no /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after its last ')'
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for kid in parents.get(todo.pop(), []):
            found.append(kid)
            todo.append(kid)
    return found


def stop_groups(groups: list[tuple[subprocess.Popen[bytes], int]], grace_s: float) -> None:
    """Stop process groups led by these processes: each its stop signal, SIGKILL for a leader still running
    after ``grace_s``, then SIGKILL for whatever is left of every group."""
    for process, stop_signal in groups:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, stop_signal)
    deadline = time.monotonic() + grace_s
    for process, _ in groups:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Subcommands (Airflow's, runuser's child) run in the same group: none may survive its leader.
    for process, _ in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


@dataclass
class Child:
    """One started component: its process (group leader), where it logs, its stop tier, and how it was
    started (so a fault can start it again the same way)."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None
    tier: int
    #: What asks it to stop cleanly (SIGINT: Airflow, Postgres, Redis, uvicorn; haproxy wants SIGTERM).
    stop_signal: int = signal.SIGINT
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    cwd: Path | None = None
    #: Killed on purpose (:meth:`Processes.kill`) and not started again yet: not a component dying.
    down: bool = False

    def where(self) -> str:
        return f"see {self.log_path}" if self.log_path else "see its output above"


@dataclass
class Processes:
    """The children of one stack, each in its own session (process group)."""

    children: dict[str, Child] = field(default_factory=dict)

    def spawn(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        *,
        log_path: Path | None = None,
        cwd: Path | None = None,
        tier: int = 0,
        stop_signal: int = signal.SIGINT,
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` in a new session; its output goes to ``log_path`` (None: this terminal)."""
        process = self._popen(command, env, log_path, cwd)
        self.children[name] = Child(name, process, log_path, tier, stop_signal, list(command), dict(env), cwd)
        return process

    @staticmethod
    def _popen(
        command: list[str], env: dict[str, str], log_path: Path | None, cwd: Path | None
    ) -> subprocess.Popen[bytes]:
        output: IO[bytes] | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            output = open(log_path, "ab")  # noqa: SIM115 - the child keeps it; closed below
        try:
            return subprocess.Popen(
                command,
                env=env,
                cwd=cwd,
                start_new_session=True,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                stdin=subprocess.DEVNULL,
            )
        finally:
            if output is not None:
                output.close()  # the child has its own copy of the descriptor

    def kill(self, name: str, sig: int = signal.SIGKILL, wait_s: float = 10.0) -> None:
        """Signal ``name``'s whole process tree, as the loss of its container or node would (a fault: the
        child is ``down`` until :meth:`respawn`), and wait up to ``wait_s`` for its leader to exit.

        Its process group and every descendant: some leave the group (Airflow's task processes take their
        own, PostgreSQL's backends their own session) and would outlive a signal to the group alone."""
        child = self.children[name]
        child.down = True
        tree = descendants(child.process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, sig)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=wait_s)

    def respawn(self, name: str) -> subprocess.Popen[bytes]:
        """Start ``name`` again as it was started (command, environment, directory; its log appended).
        What is left of its old process group is killed first."""
        old = self.children[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(old.process.pid, signal.SIGKILL)
        old.process.wait()
        process = self._popen(old.command, old.env, old.log_path, old.cwd)
        self.children[name] = Child(
            name, process, old.log_path, old.tier, old.stop_signal, old.command, old.env, old.cwd
        )
        return process

    def __getitem__(self, name: str) -> subprocess.Popen[bytes]:
        return self.children[name].process

    def __contains__(self, name: str) -> bool:
        return name in self.children

    def dead(self) -> Child | None:
        """The first child that has exited, if any (one killed on purpose and not yet started again aside)."""
        children = list(self.children.values())  # a fault's thread may replace a child meanwhile
        return next((c for c in children if not c.down and c.process.poll() is not None), None)

    def alive(self) -> bool:
        return self.dead() is None

    def wait_healthy(
        self,
        component: str,
        check: Callable[[], bool],
        timeout_s: float,
        *,
        watch: tuple[str, ...] = (),
        log_path: Path | None = None,
        poll_s: float = 0.25,
    ) -> None:
        """Poll ``check`` until it holds; :class:`StackError` (one line: the component and its log) if a
        watched child exits first or ``timeout_s`` passes."""
        watched = [self.children[n] for n in watch if n in self.children]
        where = f"see {log_path}" if log_path else (watched[0].where() if watched else "no log")
        deadline = time.monotonic() + timeout_s
        while True:
            for child in watched:
                if child.process.poll() is not None:
                    raise StackError(
                        f"{component}: '{child.name}' exited with code {child.process.returncode} "
                        f"while starting ({child.where()})"
                    )
            with contextlib.suppress(Exception):  # a check that raises is a check not yet passed
                if check():
                    return
            if time.monotonic() >= deadline:
                raise StackError(f"{component} did not become healthy within {timeout_s:g} s ({where})")
            time.sleep(poll_s)

    def stop(self, grace_s: float = 30.0) -> None:
        """Stop every group, highest tier first: its stop signal, then SIGKILL what is left after ``grace_s``
        (per tier).

        A second Ctrl-C (or SIGTERM) while stopping is ignored: an interrupted shutdown would leave
        components running.
        """
        saved = []
        if threading.current_thread() is threading.main_thread():  # only there may handlers change
            saved = [(n, signal.signal(n, signal.SIG_IGN)) for n in (signal.SIGINT, signal.SIGTERM)]
        try:
            for tier in sorted({c.tier for c in self.children.values()}, reverse=True):
                self._stop_tier([c for c in self.children.values() if c.tier == tier], grace_s)
        finally:
            for number, handler in saved:
                signal.signal(number, handler)

    @staticmethod
    def _stop_tier(children: list[Child], grace_s: float) -> None:
        stop_groups([(child.process, child.stop_signal) for child in children], grace_s)
