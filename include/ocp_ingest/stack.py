"""The local stack behind ``make run``: the whole system on the embedded default.

- the OCP simulator (Exports API + auth on loopback) pushing a stretch of calls, with faults, to
- the receiver (the ingress), which records every event and arrival in the SQLite ledger, and
- Airflow standalone (SQLite, LocalExecutor, AIRFLOW_HOME inside the project, this project's ``dags/`` and
  ``plugins/``), whose DAGs validate, store and reconcile.

The push-signing secret is generated per run and handed to the receiver and the simulator through the
environment. Every process runs in its own process group, so Ctrl-C (or SIGTERM) stops all of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ocp_ingest import signing
from ocp_ingest.config import _project_root


def project_root() -> Path:
    """The checkout holding ``dags/`` (editable install), else the current directory."""
    root = _project_root() or Path.cwd()
    if not (root / "dags").is_dir():
        raise SystemExit(f"cannot find the project's dags/ folder under {root}; run from the checkout")
    return root


# The simulator's own PAT: a credential of the test double, not of any real system.
SIMULATOR_PAT = "sim-pat-0123456789"


def airflow_environment(root: Path, port: int, home: Path | None = None) -> dict[str, str]:
    """Environment for every Airflow process of the local stack (AIRFLOW_HOME defaults to the project's)."""
    home = home or root / "airflow_home"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # The project's DAGs should run as soon as the stack is up.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__API__PORT": str(port),
        # Tasks talk to the api-server's execution API; it must follow the port or every task fails.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }


def airflow_health(port: int, timeout: float = 2.0) -> dict[str, dict[str, str]] | None:
    """The api-server's health document, or None while it is not answering."""
    try:
        with urllib.request.urlopen(
            f"http://localhost:{port}/api/v2/monitor/health", timeout=timeout
        ) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def is_healthy(health: dict[str, dict[str, str]] | None) -> bool:
    components = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    return bool(health) and all(
        health.get(name, {}).get("status") == "healthy" for name in components if name in health
    )


def _raise_interrupt(signum: int, frame: object) -> None:
    # SIGTERM (e.g. from a supervisor) stops the stack the same way as Ctrl-C.
    raise KeyboardInterrupt


@dataclass
class LocalStack:
    """The processes of the local stack (Airflow standalone now; receiver and simulator join later)."""

    port: int = 8080
    receiver_port: int = 8787
    simulator_port: int = 8788
    #: The stretch of calls the simulator plays (0: no simulator, e.g. when a real OCP pushes).
    calls: int = 1000
    window_hours: float = 3.0
    mean_duration_s: float = 60.0
    push_rate: float = 5.0
    root: Path = field(default_factory=project_root)
    #: Benchmarks and tests use their own, so they never share DAG runs with `make run`.
    airflow_home: Path | None = None
    #: Where the components' output goes (None: this terminal, as `make run` wants).
    log_path: Path | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: The push-signing secret of this run (set by start(); handed to receiver and simulator by env).
    push_secret: str | None = field(default=None, repr=False)

    def start(self) -> None:
        self.push_secret = secret = signing.new_secret()
        home = Path(os.environ.get("OCP_INGEST_HOME", self.root / "var"))
        home.mkdir(parents=True, exist_ok=True)
        base = {**os.environ, "OCP_INGEST_HOME": str(home)}
        # Airflow's components are started as `airflow ...` from PATH: make it this environment's.
        base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
        bin_dir = Path(sys.executable).parent
        self._spawn(
            "receiver",
            [str(bin_dir / "ocp-ingest"), "receiver", "--port", str(self.receiver_port)],
            {**base, "OCP_INGEST_RECEIVER_SECRET": secret},
        )
        if self.calls > 0:
            self._spawn(
                "simulator",
                [
                    str(bin_dir / "ocp-ingest"),
                    "simulator",
                    "--port",
                    str(self.simulator_port),
                    "--calls",
                    str(self.calls),
                    # A stretch of call time that ended before now, as OCP would replay it.
                    "--window-start",
                    (datetime.now(UTC) - timedelta(hours=self.window_hours + 0.5)).isoformat(
                        timespec="seconds"
                    ),
                    "--window-hours",
                    str(self.window_hours),
                    "--mean-duration-s",
                    str(self.mean_duration_s),
                    "--push-url",
                    f"http://127.0.0.1:{self.receiver_port}",
                    "--push-rate",
                    str(self.push_rate),
                    "--ground-truth",
                    str(home / "ground_truth.json"),
                ],
                {**base, "OCP_INGEST_PUSH_SIGNING_SECRET": secret},
            )
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

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        # A new session each: Ctrl-C in the terminal reaches only us, and we stop every group ourselves.
        output = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - lives with the process
        self.processes[name] = subprocess.Popen(
            command,
            env=env,
            start_new_session=True,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
        )

    def wait_until_healthy(self, timeout_s: float = 300.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes.values()):
                return False
            if is_healthy(airflow_health(self.port)):
                return True
            time.sleep(1.0)
        return False

    def banner(self) -> str:
        password_file = Path(airflow_environment(self.root, self.port, self.airflow_home)["AIRFLOW_HOME"]) / (
            "simple_auth_manager_passwords.json.generated"
        )
        return (
            f"\nOCP ingest local stack is up.\n"
            f"  Airflow UI:      http://localhost:{self.port}  (user: admin)\n"
            f"  Admin password:  {password_file}\n"
            f"  Health:          http://localhost:{self.port}/api/v2/monitor/health\n"
            f"  Receiver:        http://127.0.0.1:{self.receiver_port}  (/healthz, /metrics, /docs)\n"
            f"  OCP simulator:   http://127.0.0.1:{self.simulator_port}  ({self.calls} calls pushed at "
            f"{self.push_rate:g}/s, ground truth in var/ground_truth.json)\n"
            f"  Data (ledger, recordings, landing): {os.environ.get('OCP_INGEST_HOME', self.root / 'var')}\n"
            f"Unattended, with a verdict: .venv/bin/ocp-ingest demo --calls 500 --json summary.json\n"
            f"Press Ctrl-C to stop everything.\n"
        )

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGINT each process group (Airflow shuts its components down), then SIGKILL stragglers."""
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Airflow's subcommands run in the same group; make sure none survives its parent.
        for proc in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    def run_forever(self) -> int:
        """Start, report where things are, and block until Ctrl-C / SIGTERM or a component dies."""
        signal.signal(signal.SIGTERM, _raise_interrupt)
        self.start()
        try:
            if not self.wait_until_healthy():
                print("Airflow did not become healthy; see its output above.", file=sys.stderr)
                return 1
            print(self.banner(), flush=True)
            while all(p.poll() is None for p in self.processes.values()):
                time.sleep(1.0)
            print("A component stopped unexpectedly; shutting down.", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nStopping the local stack...", flush=True)
            return 0
        finally:
            self.stop()
