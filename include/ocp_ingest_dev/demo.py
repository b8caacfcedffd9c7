"""``ocp-ingest demo``: the whole flow of ``make run``, unattended, with a verdict and a JSON summary.

One process plays every part on loopback: the OCP simulator (seeded calls, pushes with faults, Exports API
with faults), the receiver (real HTTP, signed pushes), and both DAGs driven with ``dag.test()`` on a private
``AIRFLOW_HOME`` (SQLite): ``ocp_realtime_ingest`` whenever something has landed, then
``ocp_reconciliation`` until no call is pending. ``dag.test()`` runs the real tasks, operators, sensors and
triggers (inline) in this process, so a run is deterministic and needs no scheduler; it does not exercise
the scheduler, the triggerer process or the executor (``make run`` does).

The same :class:`Flow` is the engine of the fault-injection suite (``tests/faults/``) and of
``benchmarks/fault_table.py``: each scenario is a :class:`FlowConfig` plus, for the faults that need timing
(receiver restart, ledger lock, killed download), a few lines around the same building blocks.

Invariants checked at the end (:meth:`Flow.summary`): every generated call is stored with the ground
truth's bytes or terminal with a reason; no recording is stored twice; no stored object lacks its ledger row.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The push-signing secret of a demo run (a test double's credential, generated fresh would work as well).
DEMO_SECRET = "whsec_ZGVtby1wdXNoLXNpZ25pbmctc2VjcmV0LW9jcC1pbmdlc3Q="


@dataclass
class FlowConfig:
    """One scenario: the calls the simulator plays and the faults on its pushes and on its API."""

    calls: int = 500
    seed: int = 1
    # Push faults (shares of calls). Defaults: the "other faults on at modest shares" of `make run`.
    push_loss: float = 0.10
    duplicate_share: float = 0.02
    out_of_order_share: float = 0.02
    truncate_share: float = 0.01
    corrupt_share: float = 0.01
    lost_end_share: float = 0.01
    reset_share: float = 0.01
    # OCP API faults.
    error_share: float = 0.02
    rate_limit_per_s: float | None = None
    rate_limit_burst: int = 10
    broken_download_share: float = 0.02
    export_ttl_s: float = 86400.0
    export_prep_s: float = 0.3
    # Calls: short recordings keep a demo of hundreds of calls to tens of MB.
    mean_duration_s: float = 6.0
    max_duration_s: float = 20.0
    no_recording_share: float = 0.05
    window_hours: float = 2.0
    push_concurrency: int = 4
    push_rate: float | None = None
    download_max_resumes: int = 2
    max_reconciliation_runs: int = 6
    timeout_s: float = 900.0


def _window_start(hours: float) -> datetime:
    # A stretch of call time that ended before now (plus a margin), on the hour: every call has ended.
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=hours + 1)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
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


def airflow_environment(airflow_home: Path) -> dict[str, str]:
    """A private AIRFLOW_HOME with this project's dags/ and no examples (for dag.test())."""
    from ocp_ingest_dev.stack import project_root

    root = project_root()
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }


def prepare_airflow(airflow_home: Path | None = None, *, migrate: bool = True) -> None:
    """Migrate the metadata DB of the configured AIRFLOW_HOME (``airflow_home`` if Airflow is not loaded)."""
    if airflow_home is not None and "airflow" not in sys.modules:
        os.environ.update(airflow_environment(airflow_home))
    Path(os.environ.get("AIRFLOW_HOME", "")).mkdir(parents=True, exist_ok=True)
    if migrate:
        airflow = Path(sys.executable).with_name("airflow")
        subprocess.run(
            [str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy()
        )


def load_dag(dag_id: str) -> Any:
    """Parse dags/ the way the dag-processor does and return one DAG."""
    from airflow.dag_processing.dagbag import DagBag

    from ocp_ingest_dev.stack import project_root

    bag = DagBag(dag_folder=str(project_root() / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag.dags[dag_id]


def _retried_tasks(dag_run: Any) -> int:
    """Task instances of ``dag_run`` that ran more than once (Airflow's retries)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        return (
            session.query(TaskInstance)
            .filter(
                TaskInstance.dag_id == dag_run.dag_id,
                TaskInstance.run_id == dag_run.run_id,
                TaskInstance.try_number > 1,
            )
            .count()
        )


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
        #: Stored calls whose audit STORED event was compared with the ledger (0: no audit trail).
        self.audit_checked = 0
        #: Figures a scenario wants in its summary (e.g. how long a locked ledger delayed a run).
        self.notes: dict[str, Any] = {}
        self._stack = contextlib.ExitStack()
        self._started = 0.0
        self._receiver: Any = None
        self._receiver_port = 0
        self._push_lock = threading.Lock()
        self._dags: dict[str, Any] = {}
        #: What realtime stored (sha, object, time): reconciliation must never change it.
        self._stored_by_realtime: dict[str, tuple[Any, ...]] = {}

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
            window_start=_window_start(cfg.window_hours),
            window_hours=cfg.window_hours,
            mean_duration_s=cfg.mean_duration_s,
            min_duration_s=1.0,
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
        self.simulator_url = running.url
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
        self._stack.enter_context(_environment(env))
        from ocp_ingest.config import Settings
        from ocp_ingest.ledger import open_ledger

        self.settings = Settings.from_env()
        self.ledger = open_ledger(self.settings)
        self._stack.callback(self.ledger.close)
        # The progress thread reads through its own connection, never the one the main thread uses.
        self._progress_ledger = open_ledger(self.settings)
        self._stack.callback(self._progress_ledger.close)
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

    def push(self, calls: list[Any] | None = None, *, stop: threading.Event | None = None) -> None:
        """Push ``calls`` (default all) with the scenario's faults, as OCP's streaming export would."""
        from ocp_ingest_dev.simulator.push import Pusher, plan_pushes, push_calls

        calls = self.calls if calls is None else calls
        plans = plan_pushes(self.calls, self.push_faults(), self.config.seed)
        with self._push_lock:
            for call in calls:
                self.plans.setdefault(call.dialog_id, plans[call.dialog_id])
        pusher = Pusher(
            self.receiver_url, signing_secret=DEMO_SECRET, concurrency=self.config.push_concurrency
        )
        try:
            push_calls(
                calls,
                {c.dialog_id: self.plans[c.dialog_id] for c in calls},
                pusher,
                rate_per_s=self.config.push_rate,
                stop=stop,
            )
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
        self.task_retries += _retried_tasks(dag_run)
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
        self.task_retries += _retried_tasks(dag_run)
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
                self._stored_by_realtime.setdefault(dialog_id, (r.sha256, r.object_url, r.s3_stored_at))

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

    def progress_line(self) -> str:
        records = self.records(self._progress_ledger)
        pushed = sum(1 for p in list(self.plans.values()) if p.events_status)
        stored = sum(1 for r in records.values() if r.s3_stored)
        terminal = sum(1 for r in records.values() if r.is_terminal and not r.s3_stored)
        pending = len(self.calls) - stored - terminal
        return (
            f"[{self.elapsed_s:6.1f}s] pushed {pushed}/{len(self.calls)}  stored {stored}  "
            f"terminal {terminal}  pending {pending}  realtime runs {self.realtime_runs}  "
            f"reconciliation runs {self.reconciliation_runs}"
        )

    def stored_objects(self) -> dict[str, list[Path]]:
        """Every stored recording file by dialog id (the file name is ``{dialog_id}.{ext}``)."""
        root = self.home / "recordings"
        found: dict[str, list[Path]] = {}
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if path.is_file() and not path.name.startswith("."):
                found.setdefault(path.name.split(".", 1)[0].upper(), []).append(path)
        return found

    def audit_findings(self) -> dict[str, list[str]]:
        """Stored calls whose audit trail disagrees with the ledger (``ocp-ingest verify``'s audit check).

        Every STORED transition must have its audit event with the same SHA-256; the audit trail is on
        from the start of a flow, so a missing event counts too.
        """
        try:
            from ocp_ingest.report.verify import verify
        except ImportError:  # an image without the audit trail
            return {}
        if not self.settings.audit_events:
            return {}
        start = self.sim.config.window_start - timedelta(hours=1)
        end = start + timedelta(hours=self.sim.config.window_hours + 3)
        result = verify(self.ledger, self.settings, start, end)
        self.audit_checked = result.checked
        found: dict[str, list[str]] = {}
        for finding in result.findings:
            if finding.kind in ("audit_missing", "audit_mismatch"):
                found.setdefault(finding.kind, []).append(finding.dialog_id)
        return found

    def summary(self) -> dict[str, Any]:
        """The figures and the invariants (``violations`` empty and nothing unresolved: ``ok``)."""
        records = self.records()
        objects = self.stored_objects()
        truth = {c.dialog_id: self.sim.exports.recording_digest(c) for c in self.calls if c.has_recording}
        violations: list[str] = []
        mismatches, orphans = [], []
        for dialog_id, record in records.items():
            if not record.s3_stored:
                continue
            if dialog_id not in truth:
                violations.append(f"{dialog_id}: stored but OCP has no recording for it")
                continue
            path = Path((record.object_url or "").removeprefix("file://"))
            actual = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
            if actual != truth[dialog_id][0] or record.sha256 != truth[dialog_id][0]:
                mismatches.append(dialog_id)
        for dialog_id, paths in objects.items():
            record = records.get(dialog_id)
            if (
                record is None
                or not record.s3_stored
                or Path((record.object_url or "").removeprefix("file://")) not in paths
            ):
                orphans.append(dialog_id)
        duplicates = sorted(d for d, paths in objects.items() if len(paths) > 1)
        unresolved = self.unresolved()
        for dialog_id, record in records.items():
            if record.is_terminal and not record.terminal_reason:
                violations.append(f"{dialog_id}: terminal without a reason")
        violations += [f"{d}: stored bytes differ from the ground truth" for d in mismatches]
        violations += [f"{d}: stored object without its ledger row" for d in orphans]
        violations += [f"{d}: recording stored twice" for d in duplicates]
        overwritten = [
            d
            for d, before in self._stored_by_realtime.items()
            if (r := records.get(d)) is None or (r.sha256, r.object_url, r.s3_stored_at) != before
        ]
        violations += [f"{d}: stored recording changed after it was stored" for d in overwritten]
        violations += [f"{d}: neither stored nor terminal" for d in unresolved]
        audit = self.audit_findings()
        violations += [f"{d}: audit {kind}" for kind, ids in audit.items() for d in ids]
        stored = [r for r in records.values() if r.s3_stored]
        push_outcomes = Counter(p.audio for p in self.plans.values())
        return {
            "calls_generated": len(self.calls),
            "calls_with_recording": len(truth),
            "with_dialog_end": sum(1 for r in records.values() if r.has_cdr_end),
            "dialog_end_lost_in_push": sum(1 for p in self.plans.values() if p.dialog_end_lost),
            "stored_realtime": sum(
                1 for r in stored if r.ingestion_source and r.ingestion_source.value == "REALTIME"
            ),
            "stored_reconciliation": sum(
                1 for r in stored if r.ingestion_source and r.ingestion_source.value == "RECONCILIATION"
            ),
            "terminal_by_reason": dict(
                Counter(
                    r.terminal_state.value for r in records.values() if r.terminal_state and not r.s3_stored
                )
            ),
            "unresolved": len(unresolved),
            "unresolved_ids": unresolved[:50],
            "duplicates": len(duplicates),
            "checksum_mismatches": len(mismatches),
            "orphan_objects": len(orphans),
            "overwritten": len(overwritten),
            "audit_checked": self.audit_checked,
            "audit_disagreements": {kind: len(ids) for kind, ids in audit.items()},
            "push_outcomes": dict(push_outcomes),
            "ocp_faults_injected": dict(self.sim.faults.injected),
            "exports_created": len(self.sim.exports.list(None)),
            "realtime_runs": self.realtime_runs,
            "reconciliation_runs": self.reconciliation_runs,
            "backfill_runs": self.backfill_runs,
            "task_retries": self.task_retries,
            "failed_dag_runs": list(self.failed_runs),
            "elapsed_s": round(self.elapsed_s, 1),
            "violations": violations[:100],
            "ok": not violations,
            "config": asdict(self.config),
        }


class Progress:
    """Prints :meth:`Flow.progress_line` every few seconds: in place on a terminal, as lines otherwise."""

    def __init__(self, flow: Flow, interval_s: float | None = None, stream: Any = None) -> None:
        self.flow = flow
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = interval_s or (2.0 if self.tty else 10.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-progress", daemon=True)

    def _emit(self, final: bool = False) -> None:
        with contextlib.suppress(Exception):  # a progress line must never break the run
            line = self.flow.progress_line()
            if self.tty:
                self.stream.write("\r\x1b[K" + line + ("\n" if final else ""))
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._emit()

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._emit(final=True)


def run_demo(
    config: FlowConfig,
    home: Path,
    *,
    progress: bool = True,
    console: Any = None,
    before: Callable[[Flow], None] | None = None,
) -> dict[str, Any]:
    """Run the whole flow once over ``home`` and return its summary (``ok`` tells the verdict)."""
    home.mkdir(parents=True, exist_ok=True)
    with Flow(config, home) as flow:
        if before is not None:
            before(flow)
        timed_out = False
        with Progress(flow, stream=console) if progress else contextlib.nullcontext():
            try:
                flow.run()
            except TimeoutError as exc:
                timed_out = True
                log.error("%s", exc)
        summary = flow.summary()
        summary["timed_out"] = timed_out
        summary["ok"] = summary["ok"] and not timed_out
        from ocp_ingest_dev.simulator import ground_truth

        ground_truth.write(
            home / "ground_truth.json",
            ground_truth.build(flow.calls, flow.sim.exports, flow.plans, seed=config.seed),
        )
        return summary


def _quiet_logging() -> None:
    # dag.test() logs every task line to the console; the demo's output is its progress and verdict.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for name in ("airflow", "ocp_ingest", "httpx", "uvicorn", "sqlalchemy", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _cmd_demo(args: argparse.Namespace) -> int:
    home = Path(args.home or tempfile.mkdtemp(prefix="ocp-ingest-demo-")).resolve()
    airflow_env = airflow_environment(home / "airflow_home")
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != airflow_env["AIRFLOW_HOME"]:
        # Airflow reads its configuration once, at import, and building the CLI already imported it:
        # start again with the private AIRFLOW_HOME in the environment (never the user's DAG runs).
        argv = [sys.executable, "-m", "ocp_ingest.cli", *sys.argv[1:], "--home", str(home)]
        os.execve(sys.executable, argv, {**os.environ, **airflow_env})
    data = home / "data"
    if data.exists() and any(data.iterdir()):
        print(
            f"{data} is not empty; give a fresh --home (the demo's ledger must start empty)", file=sys.stderr
        )
        return 2
    data.mkdir(parents=True, exist_ok=True)
    # dag.test() logs every task line to the process's stdout/stderr: send those file descriptors to a log
    # file and keep the terminal for the progress line and the verdict.
    console = os.fdopen(os.dup(1), "w", buffering=1)
    log_path = home / "demo.log"
    print(f"demo: {args.calls} calls, push loss {args.push_loss:g}, seed {args.seed}", file=console)
    print(f"      data {data}, Airflow/task logs {log_path}", file=console)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        try:
            prepare_airflow()
            _quiet_logging()
            config = FlowConfig(
                calls=args.calls, seed=args.seed, push_loss=args.push_loss, timeout_s=args.timeout_s
            )
            summary = run_demo(config, data, progress=not args.no_progress, console=console)
        except Exception as exc:
            log.exception("demo failed")  # the traceback goes to the log file
            print(f"demo ERROR: {exc!r} (traceback in {log_path})", file=console)
            return 4
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
    summary["home"] = str(home)
    summary["log"] = str(log_path)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
    figures = {k: summary[k] for k in ("calls_generated", "stored_realtime", "stored_reconciliation")}
    print(
        f"demo {'OK' if summary['ok'] else 'FAILED'}: {figures}, terminal {summary['terminal_by_reason']}, "
        f"unresolved {summary['unresolved']}, duplicates {summary['duplicates']}, "
        f"checksum mismatches {summary['checksum_mismatches']}, {summary['elapsed_s']} s",
        file=console,
    )
    for violation in summary["violations"][:20]:
        print(f"  violation: {violation}", file=console)
    if summary["timed_out"]:
        print(f"  timed out after {args.timeout_s:g} s", file=console)
        return 3
    return 0 if summary["ok"] else 1


def add_cli(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``ocp-ingest demo``."""
    p = subparsers.add_parser(
        "demo",
        help="the whole flow unattended (simulator, receiver, both DAGs via dag.test); exit 0 if complete",
    )
    p.add_argument("--calls", type=int, default=500)
    p.add_argument("--push-loss", type=float, default=0.10, help="share of audio pushes dropped (0..1)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", default=None, help="write the JSON summary here")
    p.add_argument("--timeout-s", type=float, default=900.0)
    p.add_argument("--home", default=None, help="data and AIRFLOW_HOME of this run (default: a new temp dir)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_demo)


__all__ = ["Flow", "FlowConfig", "Progress", "add_cli", "airflow_environment", "prepare_airflow", "run_demo"]
