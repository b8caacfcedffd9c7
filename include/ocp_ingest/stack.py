"""The local stack behind ``make run``: Airflow standalone on the embedded default.

Airflow runs with AIRFLOW_HOME inside the project (ignored by git), this project's ``dags/`` and
``plugins/``, SQLite and LocalExecutor. Everything started here runs in its own process group, so
Ctrl-C (or SIGTERM) stops all of it.
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
from pathlib import Path

from ocp_ingest.config import _project_root


def project_root() -> Path:
    """The checkout holding ``dags/`` (editable install), else the current directory."""
    root = _project_root() or Path.cwd()
    if not (root / "dags").is_dir():
        raise SystemExit(f"cannot find the project's dags/ folder under {root}; run from the checkout")
    return root


def airflow_environment(root: Path, port: int) -> dict[str, str]:
    """Environment for every Airflow process of the local stack."""
    home = root / "airflow_home"
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
    root: Path = field(default_factory=project_root)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self) -> None:
        env = {**os.environ, **airflow_environment(self.root, self.port)}
        # standalone starts its components as `airflow ...` from PATH: make it this environment's.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        (self.root / "airflow_home").mkdir(exist_ok=True)
        airflow = Path(sys.executable).with_name("airflow")
        # A new session: Ctrl-C in the terminal reaches us, and we stop the whole group ourselves.
        self.processes["airflow"] = subprocess.Popen(
            [str(airflow), "standalone"], env=env, start_new_session=True
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
        password_file = self.root / "airflow_home" / "simple_auth_manager_passwords.json.generated"
        return (
            f"\nOCP ingest local stack is up.\n"
            f"  Airflow UI:      http://localhost:{self.port}  (user: admin)\n"
            f"  Admin password:  {password_file}\n"
            f"  Health:          http://localhost:{self.port}/api/v2/monitor/health\n"
            f"  Data (ledger, recordings, landing): {os.environ.get('OCP_INGEST_HOME', self.root / 'var')}\n"
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
