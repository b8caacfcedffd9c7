"""The local stack behind ``make run``: the whole system on the embedded default.

- the OCP simulator (Exports API + auth on loopback) pushing a stretch of calls, with faults, to
- the receiver (the ingress), which records every event and arrival in the SQLite ledger, and
- Airflow standalone (SQLite, LocalExecutor, AIRFLOW_HOME inside the project, this project's ``dags/`` and
  ``plugins/``), whose DAGs validate, store and reconcile.

The push-signing secret is generated per run and handed to the receiver and the simulator through the
environment. Every process runs in its own process group, so Ctrl-C (or SIGTERM) stops all of it.

While it runs, :meth:`LocalStack.run_forever` prints where this run's calls stand (from the ledger and the
simulator's ground truth); once every call is stored or terminal with a reason it triggers the completeness
report for each day of calls and prints where the reports and the Airflow runs are.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ocp_ingest.receiver import auth as signing
from ocp_ingest_dev.checkout import project_root
from ocp_ingest_dev.stack.standalone import airflow_environment, airflow_health, is_healthy
from ocp_ingest_dev.stack.supervise import Processes, StackError, raise_interrupt
from ocp_ingest_dev.stack.tenant import simulator_command

#: What `make run` changes from the production defaults, so both stages visibly finish within minutes:
#: reconciliation every 2 minutes, a 1-minute grace, a call without dialog_end counted as lost after
#: 5 minutes (the simulated calls ended half an hour ago at least), and quick export polls. Any of these
#: set in the environment wins.
LOCAL_CADENCE = {
    "OCP_INGEST_RECONCILIATION_SCHEDULE": "*/2 * * * *",
    "OCP_INGEST_PENDING_GRACE_S": "60",
    "OCP_INGEST_OPEN_CALL_TIMEOUT_S": "300",
    "OCP_INGEST_EXPORT_POLL_INTERVAL_S": "2",
    "OCP_INGEST_EXPORT_POLL_MAX_INTERVAL_S": "10",
}


@dataclass
class LocalStack:
    """The processes of the local stack: the receiver, the simulator (unless ``calls`` is 0) and Airflow."""

    port: int = 8080
    receiver_port: int = 8787
    simulator_port: int = 8788
    #: The stretch of calls the simulator plays (0: no simulator, e.g. when a real OCP pushes).
    calls: int = 2000
    window_hours: float = 3.0
    mean_duration_s: float = 30.0
    push_rate: float = 10.0
    #: Receiver processes sharing ``receiver_port`` (``--reuse-port`` when more than one).
    receivers: int = 1
    #: The simulator's seed (None: from the clock, so every run plays new dialog ids).
    seed: int | None = None
    #: OCP API faults the simulator injects besides the push faults (its defaults): 503s and broken downloads.
    api_error_share: float = 0.02
    broken_download_share: float = 0.02
    #: OCP_INGEST_* defaults for every process of the stack (e.g. LOCAL_CADENCE); the environment wins.
    settings_env: dict[str, str] = field(default_factory=dict)
    root: Path = field(default_factory=project_root)
    #: Benchmarks and tests use their own, so they never share DAG runs with `make run`.
    airflow_home: Path | None = None
    #: Where the components' output goes (None: this terminal, as `make run` wants).
    log_path: Path | None = None
    processes: Processes = field(default_factory=Processes)
    #: The push-signing secret of this run (set by start(); handed to receiver and simulator by env).
    push_secret: str | None = field(default=None, repr=False)

    @property
    def data_home(self) -> Path:
        return Path(os.environ.get("OCP_INGEST_HOME", self.root / "var"))

    @property
    def truth_path(self) -> Path:
        return self.data_home / "ground_truth.json"

    @property
    def resolved_airflow_home(self) -> Path:
        return Path(airflow_environment(self.root, self.port, self.airflow_home)["AIRFLOW_HOME"])

    def start(self) -> None:
        self.push_secret = secret = signing.new_secret()
        home = self.data_home
        home.mkdir(parents=True, exist_ok=True)
        os.environ["OCP_INGEST_HOME"] = str(home)  # this process reads the same ledger (progress)
        for name, value in self.settings_env.items():
            os.environ.setdefault(name, value)
        if self.calls > 0 and self.settings_env:
            from ocp_ingest_dev.simulator.calls import FLOWS

            # The simulated tenant's groups: reconciliation sweeps their hours for calls never heard of.
            groups = ",".join(sorted({f.ocp_group for f in FLOWS}))
            os.environ.setdefault("OCP_INGEST_SWEEP_OCP_GROUPS", groups)
        base = {**os.environ}
        # Airflow's components are started as `airflow ...` from PATH: make it this environment's.
        base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
        bin_dir = Path(sys.executable).parent
        receiver = [str(bin_dir / "ocp-ingest"), "receiver", "--port", str(self.receiver_port)]
        for n in range(1, self.receivers + 1):
            self._spawn(
                "receiver" if n == 1 else f"receiver-{n}",
                receiver + (["--reuse-port"] if self.receivers > 1 else []),
                {**base, "OCP_INGEST_RECEIVER_SECRET": secret},
            )
        if self.calls > 0:
            # OCP pushes to a receiver that is up: the simulator's first pushes must not meet a closed port.
            self._wait_for_receiver()
            if self.seed is None:
                self.seed = int(time.time())
            self.truth_path.unlink(missing_ok=True)  # the watcher must only ever see this run's calls
            self._spawn(
                "simulator",
                simulator_command(
                    port=self.simulator_port,
                    calls=self.calls,
                    seed=self.seed,
                    api_error_share=self.api_error_share,
                    broken_download_share=self.broken_download_share,
                    window_hours=self.window_hours,
                    mean_duration_s=self.mean_duration_s,
                    push_url=f"http://127.0.0.1:{self.receiver_port}",
                    push_rate=self.push_rate,
                    truth_path=self.truth_path,
                ),
                {**base, "OCP_INGEST_PUSH_SIGNING_SECRET": secret},
            )
        from ocp_ingest_dev.simulator.auth import SIMULATOR_PAT

        ocp_conn = {
            "conn_type": "ocp",
            "host": "127.0.0.1",
            "port": self.simulator_port,
            "schema": "http",
            "password": SIMULATOR_PAT,
        }
        airflow_env = {**base, **airflow_environment(self.root, self.port, self.airflow_home)}
        airflow_env.setdefault("AIRFLOW_CONN_OCP_DEFAULT", json.dumps(ocp_conn))
        Path(airflow_env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        self._spawn("airflow", [str(bin_dir / "airflow"), "standalone"], airflow_env)

    def _wait_for_receiver(self, timeout_s: float = 120.0) -> None:
        url = f"http://127.0.0.1:{self.receiver_port}/healthz"
        self.processes.wait_healthy(
            "receiver",
            lambda: httpx.get(url, timeout=2.0).status_code == 200,
            timeout_s,
            watch=("receiver",),
            log_path=self.log_path,
        )

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.processes.spawn(name, command, env, log_path=self.log_path)

    def wait_until_healthy(self, timeout_s: float = 300.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.processes.alive():
                return False
            if is_healthy(airflow_health(self.port)):
                return True
            time.sleep(1.0)
        return False

    def banner(self) -> str:
        password_file = self.resolved_airflow_home / "simple_auth_manager_passwords.json.generated"
        simulator = (
            f"  OCP simulator:   http://127.0.0.1:{self.simulator_port}  ({self.calls} calls over "
            f"{self.window_hours:g} h of call time, seed {self.seed}, pushed at {self.push_rate:g}/s with "
            f"faults; ground truth {self.truth_path})\n"
            if self.calls > 0
            else ""
        )
        logs = f"  Component logs:  {self.log_path}\n" if self.log_path else ""
        return (
            f"\nOCP ingest local stack is up.\n"
            f"  Airflow UI:      http://localhost:{self.port}  (user: admin)\n"
            f"  Admin password:  {password_file}\n"
            f"  Health:          http://localhost:{self.port}/api/v2/monitor/health\n"
            f"  Receiver:        http://127.0.0.1:{self.receiver_port}  (/healthz, /metrics, /docs)\n"
            f"{simulator}"
            f"  Data (ledger, recordings, audit, reports): {self.data_home}\n"
            f"{logs}"
            f"Press Ctrl-C to stop everything.\n"
        )

    def watch(self, started: float, interval_s: float, stream: Any, timeout_s: float | None = None) -> bool:
        """Print progress until every call is settled, then run the reports.

        False if a component died or ``timeout_s`` passed first.
        """
        from ocp_ingest_dev.stack.watch import watch_calls

        done = watch_calls(self.truth_path, self.alive, started, interval_s, stream, timeout_s)
        if done is None:
            return False
        self.report(*done, started, stream)
        return True

    def report(self, settled: Any, truth: dict[str, Any], started: float, stream: Any) -> None:
        """Every call is settled: say so, then run the completeness report of each day of calls."""
        from ocp_ingest_dev.stack.airflow_api import AirflowApi
        from ocp_ingest_dev.stack.watch import report_settled

        api = AirflowApi.for_standalone(f"http://localhost:{self.port}", self.resolved_airflow_home)
        ui_url = f"http://localhost:{self.port}"
        report_settled(settled, truth, time.monotonic() - started, stream, api, ui_url)

    def alive(self) -> bool:
        return self.processes.alive()

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGINT each process group (Airflow shuts its components down), then SIGKILL stragglers."""
        self.processes.stop(grace_s)

    def run_forever(self, progress_interval_s: float = 5.0) -> int:
        """Start, report where things are and how the calls progress, and block until Ctrl-C / SIGTERM
        or a component dies."""
        signal.signal(signal.SIGTERM, raise_interrupt)
        started = time.monotonic()
        try:
            self.start()  # inside the try: whatever did start is stopped if a later step fails
            if not self.wait_until_healthy():
                where = f" (see {self.log_path})" if self.log_path else " (see its output above)"
                print(f"Airflow did not become healthy{where}.", file=sys.stderr)
                return 1
            print(self.banner(), flush=True)
            if self.calls > 0:
                self.watch(started, progress_interval_s, sys.stdout)
            while self.alive():
                time.sleep(1.0)
            print("A component stopped unexpectedly; shutting down.", file=sys.stderr)
            return 1
        except StackError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nStopping the local stack...", flush=True)
            return 0
        finally:
            self.stop()
