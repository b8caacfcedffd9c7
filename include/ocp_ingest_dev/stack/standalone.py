"""``airflow standalone`` as the local stack runs it: its environment and its health."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

# Airflow's SQLite connections wait this long for a lock before "database is locked"; pysqlite's 5 s default
# is too short when the scheduler, dag-processor and api-server all write to one file on a loaded machine.
SQLITE_CONNECT_ARGS: dict[str, object] = {"timeout": 30}
#: The scheduler's sleep when a loop found nothing to do; the embedded default sets it, the caller's wins.
SCHEDULER_IDLE_SLEEP = "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"


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
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": f"{__name__}.SQLITE_CONNECT_ARGS",
        # Every task hop and every deferred wait's resume waits for the scheduler's idle sleep (Airflow's
        # 1 s): 0.25 s took 4 s off a 22-s reconciliation run for about 5% of one core more when idle.
        SCHEDULER_IDLE_SLEEP: os.environ.get(SCHEDULER_IDLE_SLEEP, "0.25"),
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
    if not health:
        return False
    return all(health.get(name, {}).get("status") == "healthy" for name in components if name in health)
