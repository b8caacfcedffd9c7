"""Real process faults on the distributed topology (``demo --topology distributed --faults process``).

A :class:`FaultSchedule` watches the running topology through Airflow's REST API (a thread, polling every
``poll_s``) and strikes each named fault once its condition holds, on the real processes:

- ``triggerer-sigkill``: a ``request_and_wait`` instance (of any export link) is deferred -> SIGKILL of the
  triggerer's process tree, started again a few seconds later;
- ``task-sigkill``: a ``download_and_store`` instance is running -> SIGKILL of its task
  process only (its pid, below its worker: Airflow gives it a process group of its own);
- ``worker-sigkill``: another ``download_and_store`` instance is running -> SIGKILL of the whole process
  tree of the Celery worker it runs on (its task processes too, as a lost node), started again a few
  seconds later;
- ``scheduler-restart``: 20 s after those struck, while a reconciliation run is running -> SIGKILL of the
  scheduler, started again;
- ``postgres-restart``: 20 s after the scheduler's, once it is back, while a reconciliation run is running
  -> SIGKILL of PostgreSQL (Airflow's metadata DB, its backends too), started again on the same data
  directory and port.

Each fault records when it struck (seconds since the run started), what it struck, when the part was back
and when it counted as recovered: the struck task instance succeeded, or the reconciliation run under way
when it struck succeeded (for PostgreSQL, with every Airflow part healthy again). A fault that never struck
or never recovered is a violation of the run (a fault run that passes without its fault proves nothing).
An Airflow component that dies while a fault is under way (its metadata DB gone, say) is started again, as
Kubernetes would restart its pod, and listed as the fault's ``collateral``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ocp_ingest_dev.stack.airflow_api import AirflowApi
from ocp_ingest_dev.stack.supervise import descendants

RECONCILIATION_DAG = "ocp_reconciliation"
#: The tasks the faults look for, in any link of the groups' chains (``export_link_{n}.request_and_wait``)
WAIT_TASK = "request_and_wait"
DOWNLOAD_TASK = "download_and_store"


def is_task(ti: Mapping[str, Any], task: str) -> bool:
    """Whether ``ti`` is ``task`` of some export link (its task id ends with ``.{task}``)."""
    return str(ti.get("task_id", "")).endswith(f".{task}")


#: The fault schedules ``--faults`` knows.
SCHEDULES = ("process",)
#: A fault run's scenario: exports take this long to prepare, so ``request_and_wait`` stays deferred long
#: enough to be caught there (the demo's default is 0.3 s).
FAULT_EXPORT_PREP_S = 10.0

TIKey = tuple[str, str, int]


def ti_key(ti: dict[str, Any]) -> TIKey:
    index = ti.get("map_index")
    return (str(ti.get("dag_run_id")), str(ti.get("task_id")), -1 if index is None else int(index))


@dataclass
class View:
    """What one poll saw of the reconciliation DAG."""

    tis: list[dict[str, Any]]
    runs: list[dict[str, Any]]

    def ti_state(self, key: TIKey) -> str | None:
        return next((str(t.get("state")) for t in self.tis if ti_key(t) == key), None)

    def run(self, run_id: str) -> dict[str, Any] | None:
        return next((r for r in self.runs if r.get("dag_run_id") == run_id), None)

    def running_run(self) -> dict[str, Any] | None:
        return next((r for r in self.runs if r.get("state") == "running"), None)


@dataclass
class Fault:
    """One named fault: its condition, its strike, when it counts as recovered, and what it did."""

    name: str
    what: str
    #: Faults that must have struck (``back``: and their part be back) before this one may.
    after: tuple[str, ...] = ()
    after_back: bool = False
    #: ... and at least this many seconds ago (so each fault's own recovery path starts before the next).
    after_s: float = 0.0
    #: Seconds the struck part stays down before it is started again.
    down_s: float = 3.0
    struck_at: float | None = None
    target: str | None = None
    back_at: float | None = None
    recovered_at: float | None = None
    collateral: list[str] = field(default_factory=list)
    #: The struck task instance or DAG run, and the part to start again.
    key: TIKey | None = None
    run_id: str | None = None
    component: str | None = None
    #: The worker the struck task instance ran on.
    host: str | None = None

    @property
    def struck(self) -> bool:
        return self.struck_at is not None

    @property
    def recovered(self) -> bool:
        return self.recovered_at is not None

    def summary(self) -> dict[str, Any]:
        recover_s = None
        if self.recovered_at is not None and self.struck_at is not None:
            recover_s = round(self.recovered_at - self.struck_at, 1)
        return {
            "name": self.name,
            "what": self.what,
            "struck_at": None if self.struck_at is None else round(self.struck_at, 1),
            "target": self.target,
            "back_at": None if self.back_at is None else round(self.back_at, 1),
            "recovered": self.recovered,
            "recovered_at": None if self.recovered_at is None else round(self.recovered_at, 1),
            "recover_s": recover_s,
            "collateral": list(self.collateral),
        }


def process_faults() -> list[Fault]:
    """The ``process`` schedule (see the module's docstring)."""
    return [
        Fault("triggerer-sigkill", f"SIGKILL of the triggerer while {WAIT_TASK} is deferred"),
        Fault("task-sigkill", f"SIGKILL of the task process of a running {DOWNLOAD_TASK}", down_s=0.0),
        Fault(
            "worker-sigkill",
            f"SIGKILL of the Celery worker (its whole process tree) while it runs {DOWNLOAD_TASK}",
        ),
        Fault(
            "scheduler-restart",
            "SIGKILL of the scheduler while a reconciliation run is running, started again",
            after=("triggerer-sigkill", "task-sigkill", "worker-sigkill"),
            after_s=20.0,
        ),
        Fault(
            "postgres-restart",
            "SIGKILL of PostgreSQL (metadata DB) while a reconciliation run is running, started again",
            after=("scheduler-restart",),
            after_back=True,
            after_s=20.0,
            down_s=5.0,
        ),
    ]


def schedule_faults(name: str) -> list[Fault]:
    if name == "process":
        return process_faults()
    raise ValueError(f"unknown fault schedule {name!r} (known: {', '.join(SCHEDULES)})")


@dataclass
class FaultSchedule:
    """Strikes ``faults`` on ``stack`` (a :class:`DistributedStack`) from a thread; see the module."""

    stack: Any
    faults: list[Fault]
    started: float
    poll_s: float = 0.5
    console: Any = None
    errors: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _respawn_due: dict[str, float] = field(default_factory=dict)

    # -- what the demo asks --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="fault-schedule", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def finished(self) -> bool:
        """Every fault struck and recovered (the run may end)."""
        return all(f.recovered for f in self.faults)

    def under_way(self) -> bool:
        return any(f.struck and not f.recovered for f in self.faults)

    def alive(self) -> bool:
        """The stack is alive, or what died is an Airflow part this schedule will start again."""
        dead = self.stack.processes.dead()
        return dead is None or (self.under_way() and dead.name in self._restartable())

    def violations(self) -> list[str]:
        found = []
        for f in self.faults:
            if not f.struck:
                found.append(f"fault {f.name} never struck ({f.what})")
            elif not f.recovered:
                found.append(f"fault {f.name} struck at {f.struck_at:.0f} s ({f.target}) but never recovered")
        return found + [f"fault schedule: {e}" for e in self.errors]

    def summary(self) -> list[dict[str, Any]]:
        return [f.summary() for f in self.faults]

    # -- the thread ----------------------------------------------------------------------------------

    def _now(self) -> float:
        return time.monotonic() - self.started

    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.write(f"  fault [{self._now():6.1f} s] {text}\n")
            self.console.flush()

    def _restartable(self) -> set[str]:
        from ocp_ingest_dev.stack.distributed import AIRFLOW_COMPONENTS

        return {*AIRFLOW_COMPONENTS, *self.stack.worker_names()}

    def _loop(self) -> None:
        # 5 s: a poll must not hang on an api-server without its DB
        api = AirflowApi(self.stack.ui_url, "admin", self.stack.admin_password or "", timeout_s=5.0)
        try:
            while not self._stop.wait(self.poll_s) and not self.finished():
                try:
                    self._tick(api)
                except (httpx.HTTPError, ValueError, KeyError):
                    continue  # the api-server without its DB, or restarting: poll again
                except Exception as exc:  # reported as a violation, never silent
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    self._say(f"error: {exc!r}")
        finally:
            api.close()

    def _tick(self, api: AirflowApi) -> None:
        self._respawn_what_is_due()
        self._restart_collateral()
        view = View(api.task_instances(RECONCILIATION_DAG), api.dag_runs(RECONCILIATION_DAG))
        by_name = {f.name: f for f in self.faults}
        for fault in self.faults:
            if fault.struck:
                continue
            if not all(
                by_name[n].struck
                and (not fault.after_back or by_name[n].back_at is not None)
                and self._now() - (by_name[n].struck_at or 0.0) >= fault.after_s
                for n in fault.after
            ):
                continue
            self._try_strike(fault, view)
        for fault in self.faults:
            if fault.struck and not fault.recovered and self._recovered(fault, view):
                fault.recovered_at = self._now()
                self._say(f"{fault.name} recovered ({fault.recovered_at - (fault.struck_at or 0):.0f} s)")

    def _struck_keys(self) -> set[TIKey]:
        return {f.key for f in self.faults if f.key is not None}

    def _try_strike(self, fault: Fault, view: View) -> None:
        processes = self.stack.processes
        if fault.name == "triggerer-sigkill":
            deferred = [t for t in view.tis if is_task(t, WAIT_TASK) and t.get("state") == "deferred"]
            if deferred:
                self._strike_component(fault, "triggerer", deferred[0])
        elif fault.name in ("task-sigkill", "worker-sigkill"):
            workers = set(self.stack.worker_names())
            running = [
                t
                for t in view.tis
                if is_task(t, DOWNLOAD_TASK)
                and t.get("state") == "running"
                and t.get("hostname") in workers
                and not processes.children[str(t["hostname"])].down
                and ti_key(t) not in self._struck_keys()
            ]
            # The worker fault prefers another worker than the task fault's: each fault's own recovery path
            # (the supervisor reports its task killed; a lost worker's task times out its heartbeat).
            taken = {f.host for f in self.faults if f.name == "task-sigkill"}
            running.sort(key=lambda t: t.get("hostname") in taken)
            for ti in running:
                if fault.name == "worker-sigkill":
                    self._strike_component(fault, str(ti["hostname"]), ti)
                    return
                if self._kill_task_process(fault, ti):
                    return
        elif fault.name in ("scheduler-restart", "postgres-restart"):
            run = view.running_run()
            if run is not None:
                component = "scheduler" if fault.name == "scheduler-restart" else "postgres"
                fault.run_id = str(run["dag_run_id"])
                self._strike_component(fault, component, None, target=f"run {fault.run_id}")

    def _strike_component(
        self, fault: Fault, component: str, ti: dict[str, Any] | None, target: str | None = None
    ) -> None:
        if ti is not None:
            fault.key = ti_key(ti)
            fault.host = ti.get("hostname")
            run_id, task_id, index = fault.key
            target = f"{component} running {task_id} {run_id} [{index}] try {ti.get('try_number')}"
        fault.struck_at = self._now()
        fault.target = target or component
        fault.component = component
        self.stack.processes.kill(component, signal.SIGKILL)
        self._respawn_due[fault.name] = time.monotonic() + fault.down_s
        self._say(f"{fault.name}: SIGKILL of {component}'s process tree ({fault.target})")

    def _kill_task_process(self, fault: Fault, ti: dict[str, Any]) -> bool:
        """SIGKILL of the task process alone: its pid, checked to be below its worker (Airflow gives the
        task process a process group of its own, in the worker's session)."""
        pid = int(ti.get("pid") or 0)
        worker = self.stack.processes[str(ti["hostname"])]
        try:
            if pid <= 0 or pid not in descendants(worker.pid):
                return False
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        fault.struck_at = self._now()
        fault.key = ti_key(ti)
        fault.host = str(ti["hostname"])
        fault.back_at = fault.struck_at  # nothing to start again: the worker's supervisor stays
        fault.target = (
            f"pid {pid} on {ti['hostname']}: {fault.key[1]} {fault.key[0]} [{fault.key[2]}] "
            f"try {ti.get('try_number')}"
        )
        self._say(f"{fault.name}: SIGKILL of the task process ({fault.target})")
        return True

    def _respawn_what_is_due(self) -> None:
        for fault in self.faults:
            due = self._respawn_due.get(fault.name)
            if due is None or time.monotonic() < due or fault.component is None:
                continue
            del self._respawn_due[fault.name]
            self.stack.processes.respawn(fault.component)
            if fault.component == "postgres":
                self.stack.processes.wait_healthy(
                    "postgres", self.stack._postgres_ready, 60.0, watch=("postgres",)
                )
            fault.back_at = self._now()
            self._say(f"{fault.name}: {fault.component} started again")

    def _restart_collateral(self) -> None:
        """Airflow parts that died while a fault is under way are started again (Kubernetes restarts a pod
        whose process exits) and listed on the latest fault struck."""
        if not self.under_way():
            return
        latest = max((f for f in self.faults if f.struck), key=lambda f: f.struck_at or 0.0)
        for child in list(self.stack.processes.children.values()):
            if child.down or child.process.poll() is None or child.name not in self._restartable():
                continue
            latest.collateral.append(f"{child.name} exited {child.process.returncode} at {self._now():.0f} s")
            self._say(f"{child.name} exited ({child.process.returncode}) during {latest.name}; started again")
            self.stack.processes.respawn(child.name)

    def _recovered(self, fault: Fault, view: View) -> bool:
        if fault.back_at is None:
            return False
        if fault.key is not None:
            return view.ti_state(fault.key) == "success"
        if fault.run_id is not None:  # the run under way when it struck succeeded (and, after PostgreSQL,
            # every Airflow part reports healthy on the restarted DB)
            run = view.run(fault.run_id)
            succeeded = run is not None and run.get("state") == "success"
            return succeeded and (fault.component != "postgres" or self._airflow_healthy())
        return False

    def _airflow_healthy(self) -> bool:
        from ocp_ingest_dev.stack.standalone import airflow_health, is_healthy

        with contextlib.suppress(Exception):
            health = airflow_health(self.stack.ports["airflow"])
            return bool(health) and is_healthy(health)
        return False
