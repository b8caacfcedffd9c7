"""The engine of ``ocp-ingest demo``, the fault-injection suite and ``benchmarks/fault_table.py``.

:class:`Flow` plays every part on loopback: the OCP simulator (seeded calls, pushes with faults, Exports API
with faults), the receiver (real HTTP, signed pushes), and both DAGs driven with ``dag.test()`` on the
configured (private) ``AIRFLOW_HOME``: ``ocp_realtime_ingest`` whenever something has landed, then
``ocp_reconciliation`` until no call is pending. ``dag.test()`` runs the real tasks, operators, sensors and
triggers (inline) in this process, so a run is deterministic and needs no scheduler; it does not exercise
the scheduler, the triggerer process or the executor (``make run`` does).

Each fault scenario (:mod:`ocp_ingest_dev.fault_scenarios`) is a :class:`FlowConfig` plus, for the faults
that need timing (receiver restart, ledger lock, killed download), a few lines around the same building
blocks. The verdict on a flow is :mod:`ocp_ingest_dev.demo.verdict`.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from ocp_ingest_dev.airflow_internals import load_dag
from ocp_ingest_dev.demo.config import DEMO_SECRET, FlowConfig, window_start


@contextlib.contextmanager
def ocp_ingest_environment(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` (and drop every other OCP_INGEST_* variable) for the block; restore afterwards."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("OCP_INGEST_") or k in values}
    for name in [k for k in os.environ if k.startswith("OCP_INGEST_")]:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        for name in [k for k in os.environ if k.startswith("OCP_INGEST_") or k in values]:
            del os.environ[name]
        os.environ.update(saved)


def retried_tasks(dag_run: Any) -> int:
    """Task instances of ``dag_run`` (as ``dag.test()`` returns it) that ran more than once (retries)."""
    return sum(1 for ti in dag_run.get_task_instances() if (ti.try_number or 0) > 1)


class Flow:
    """Simulator + receiver on loopback over a fresh home, and the two DAGs driven with ``dag.test()``."""

    def __init__(self, config: FlowConfig, home: Path) -> None:
        self.config = config
        self.home = home
        self.plans: dict[str, Any] = {}
        self.realtime_runs = 0
        self.reconciliation_runs = 0
        self.failed_runs: list[str] = []
        self.backfill_runs = 0
        #: Task instances that needed more than one try (Airflow retries), e.g. after a failed download.
        self.task_retries = 0
        #: Figures a scenario wants in its summary (e.g. how long a locked ledger delayed a run).
        self.notes: dict[str, Any] = {}
        self._stack = contextlib.ExitStack()
        self._started = 0.0
        self._receiver: Any = None
        self._receiver_port = 0
        self._push_lock = threading.Lock()
        self._dags: dict[str, Any] = {}
        #: What realtime stored (sha, object, time): reconciliation must never change it.
        self.stored_before_reconciliation: dict[str, tuple[Any, ...]] = {}

    # -- setup -------------------------------------------------------------------------------------

    def __enter__(self) -> Flow:
        try:
            return self._start()
        except BaseException:
            self._stack.close()  # whatever did start (simulator, receiver, environment) is undone
            raise

    def _start(self) -> Flow:
        from ocp_ingest_dev.simulator import Simulator, SimulatorConfig, start
        from ocp_ingest_dev.simulator.auth import SIMULATOR_PAT
        from ocp_ingest_dev.simulator.faults import FaultSettings

        self._started = time.monotonic()
        cfg = self.config
        sim_config = SimulatorConfig(
            seed=cfg.seed,
            calls=cfg.calls,
            window_start=window_start(cfg.window_hours),
            window_hours=cfg.window_hours,
            mean_duration_s=cfg.mean_duration_s,
            min_duration_s=cfg.min_duration_s,
            max_duration_s=cfg.max_duration_s,
            no_recording_share=cfg.no_recording_share,
            faults=FaultSettings(
                transient_error_share=cfg.error_share,
                rate_limit_per_s=cfg.rate_limit_per_s,
                rate_limit_burst=cfg.rate_limit_burst,
                broken_download_share=cfg.broken_download_share,
            ),
        )
        sim_config.exports.prep_s = cfg.export_prep_s
        sim_config.exports.ttl_s = cfg.export_ttl_s
        self.sim = Simulator(sim_config)
        running = start(self.sim)
        self._stack.callback(running.stop)
        conn = {
            "conn_type": "ocp",
            "host": running.url,
            "password": SIMULATOR_PAT,
            "extra": {"max_attempts": 8, "max_total_s": 30},
        }
        env = {
            "OCP_INGEST_HOME": str(self.home),
            # Reconciliation takes whatever realtime did not store (the demo has no late pushes to wait for).
            "OCP_INGEST_PENDING_GRACE_S": "0",
            # Every simulated call ended an hour ago: one without a dialog_end by now lost it.
            "OCP_INGEST_OPEN_CALL_TIMEOUT_S": "60",
            "OCP_INGEST_EXPORT_POLL_INTERVAL_S": "0.1",
            "OCP_INGEST_EXPORT_POLL_MAX_INTERVAL_S": "0.3",
            "OCP_INGEST_EXPORT_MAX_WAIT_S": "120",
            "OCP_INGEST_DOWNLOAD_MAX_RESUMES": str(cfg.download_max_resumes),
            "AIRFLOW_CONN_OCP_DEFAULT": json.dumps(conn),
        }
        self._stack.enter_context(ocp_ingest_environment(env))
        from ocp_ingest.config import Settings
        from ocp_ingest.ledger import open_ledger

        self.settings = Settings.from_env()
        self.ledger = open_ledger(self.settings)
        self._stack.callback(self.ledger.close)
        self.start_receiver()
        self._stack.callback(self.stop_receiver)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._started

    @property
    def calls(self) -> list[Any]:
        return self.sim.calls

    # -- the receiver ------------------------------------------------------------------------------

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self._receiver_port}"

    def start_receiver(self) -> None:
        """Serve the receiver (its own ledger connection), on the same port after a restart."""
        from ocp_ingest.ledger import open_ledger
        from ocp_ingest.receiver.app import create_app
        from ocp_ingest_dev.simulator.server import start_asgi

        ledger = open_ledger(self.settings)
        app = create_app(self.settings, secret=DEMO_SECRET, ledger=ledger)
        server = start_asgi(app, port=self._receiver_port)
        self._receiver = (server, ledger)
        self._receiver_port = server.port

    def stop_receiver(self) -> None:
        if self._receiver is not None:
            server, ledger = self._receiver
            server.stop()
            ledger.close()
            self._receiver = None

    # -- pushes ------------------------------------------------------------------------------------

    def push_faults(self) -> Any:
        from ocp_ingest_dev.simulator.push import PushFaults

        c = self.config
        return PushFaults(
            audio_drop_share=c.push_loss,
            duplicate_share=c.duplicate_share,
            out_of_order_share=c.out_of_order_share,
            delay_share=0.0,  # a delayed push only slows the demo; out-of-order covers late arrival
            truncate_share=c.truncate_share,
            corrupt_share=c.corrupt_share,
            lost_dialog_end_share=c.lost_end_share,
            reset_share=c.reset_share,
        )

    def push(self) -> None:
        """Push every call with the scenario's faults, as OCP's streaming export would (again: a redelivery).

        A redelivery replays the first delivery's plan, so the faults of a call stay the same.
        """
        from ocp_ingest_dev.simulator.push import Pusher, plan_pushes, push_calls

        plans = plan_pushes(self.calls, self.push_faults(), self.config.seed)
        with self._push_lock:
            for call in self.calls:
                self.plans.setdefault(call.dialog_id, plans[call.dialog_id])
        pusher = Pusher(
            self.receiver_url, signing_secret=DEMO_SECRET, concurrency=self.config.push_concurrency
        )
        try:
            push_calls(self.calls, dict(self.plans), pusher, rate_per_s=self.config.push_rate)
        finally:
            pusher.close()

    # -- the DAGs ----------------------------------------------------------------------------------

    def arrivals(self) -> int:
        from ocp_ingest.realtime import count_arrivals

        return count_arrivals(self.settings.landing_url)

    def dag(self, dag_id: str) -> Any:
        # Parsed once per flow: the environment (and so each DAG's parse-time settings) is fixed for it.
        if dag_id not in self._dags:
            self._dags[dag_id] = load_dag(dag_id)
        return self._dags[dag_id]

    def run_realtime(self) -> None:
        """One run of ``ocp_realtime_ingest`` (only when something has landed: an idle run would wait)."""
        dag_run = self.dag("ocp_realtime_ingest").test()
        self.realtime_runs += 1
        self.task_retries += retried_tasks(dag_run)
        if dag_run.state != "success":
            self.failed_runs.append(f"ocp_realtime_ingest {dag_run.run_id}: {dag_run.state}")

    def run_realtime_until_drained(self, pushing: threading.Thread | None = None) -> None:
        """Run the realtime DAG while pushes go on and until nothing is left in landing."""
        while True:
            alive = pushing is not None and pushing.is_alive()
            if self.arrivals() > 0:
                self.run_realtime()
            elif alive:
                time.sleep(0.5)
            else:
                return
            self._check_timeout()

    def run_reconciliation(self, **params: Any) -> None:
        dag_run = self.dag("ocp_reconciliation").test(run_conf=params or None)
        self.reconciliation_runs += 1
        self.task_retries += retried_tasks(dag_run)
        if params:
            self.backfill_runs += 1
        if dag_run.state != "success":
            self.failed_runs.append(f"ocp_reconciliation {dag_run.run_id}: {dag_run.state}")

    def run_reconciliation_until_settled(self) -> None:
        """Reconcile until no call is pending (each run takes one plan per group, so a few runs).

        A call whose dialog_end never arrived is found through the ledger's open-calls index. A call the
        ledger never saw at all (every event lost) is found only by an export of its group and window;
        if nothing else in that group needs one, one window backfill (the operator's ``window_start`` /
        ``window_end`` run) over the simulated stretch is what finds it.
        """
        self.snapshot_stored()
        backfilled = False
        for _ in range(self.config.max_reconciliation_runs):
            unresolved = self.unresolved()
            if not unresolved:
                return
            records = self.records()
            if not backfilled and all(records.get(d) is None for d in unresolved):
                start = self.sim.config.window_start
                end = start + timedelta(hours=self.sim.config.window_hours + 1)
                self.run_reconciliation(window_start=start.isoformat(), window_end=end.isoformat())
                backfilled = True
            else:
                self.run_reconciliation()
            self._check_timeout()

    def _check_timeout(self) -> None:
        if self.elapsed_s > self.config.timeout_s:
            raise TimeoutError(f"the flow did not settle within {self.config.timeout_s:g} s")

    def run(self) -> None:
        """The default sequence: push (realtime runs meanwhile), drain landing, reconcile until settled."""
        pushing = threading.Thread(target=self.push, name="demo-push", daemon=True)
        pushing.start()
        self.run_realtime_until_drained(pushing)
        pushing.join()
        self.run_reconciliation_until_settled()

    # -- accounting --------------------------------------------------------------------------------

    def snapshot_stored(self) -> None:
        """Remember every stored call's bytes, object and time (an overwrite would change one of them)."""
        for dialog_id, r in self.records().items():
            if r.s3_stored:
                self.stored_before_reconciliation.setdefault(
                    dialog_id, (r.sha256, r.object_url, r.s3_stored_at)
                )

    def records(self, ledger: Any = None) -> dict[str, Any]:
        return (ledger or self.ledger).get_many([c.dialog_id for c in self.calls])

    def unresolved(self) -> list[str]:
        """Generated calls neither stored nor terminal (including calls the ledger never saw)."""
        records = self.records()
        return [
            c.dialog_id
            for c in self.calls
            if (r := records.get(c.dialog_id)) is None or not (r.s3_stored or r.is_terminal)
        ]

    def summary(self) -> dict[str, Any]:
        """The figures and the invariants (``violations`` empty and nothing unresolved: ``ok``)."""
        from ocp_ingest_dev.demo.verdict import summarize

        return summarize(self)
