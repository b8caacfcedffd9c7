"""The private Airflow of a flow: its environment (AIRFLOW_HOME, this project's dags/) and its metadata DB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ocp_ingest_dev.checkout import project_root


def airflow_environment(airflow_home: Path) -> dict[str, str]:
    """A private AIRFLOW_HOME with this project's dags/ and no examples (for dag.test())."""
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
