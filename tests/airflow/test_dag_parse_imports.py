"""Parsing a DAG file imports no task code: every task process parses its DAG file before it runs.

The tasks' code (ledger, storage, audio checks, OCP client, reports) is imported inside the tasks. A
top-level import of it costs each task launch, and the DAG processor's every parse, its import time and
the garbage collections it triggers (about 0.1-0.2 s of CPU, on every step of a run's critical path).
Checked in a fresh interpreter per DAG file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import project_env

ROOT = Path(__file__).resolve().parents[2]

#: What a task brings with it: none of it is needed to build a DAG.
TASK_CODE = (
    "ocp_ingest.airflow.tasks",
    "ocp_ingest.reconcile",
    "ocp_ingest.realtime",
    "ocp_ingest.ledger",
    "ocp_ingest.storage",
    "ocp_ingest.ingest",
    "ocp_ingest.audio",
    "ocp_ingest.audit",
    "ocp_ingest.report",
    "ocp_ingest.receiver",
    "ocp_ingest.ocp.client",
    "mutagen",
    "pyarrow",
    "boto3",
)

PROBE = r"""
import json, runpy, sys
dag_file, task_code = sys.argv[1], sys.argv[2].split(",")
runpy.run_path(dag_file)
print(json.dumps(sorted(m for m in sys.modules if any(m == t or m.startswith(t + ".") for t in task_code))))
"""


@pytest.mark.parametrize("dag_file", sorted(p.name for p in (ROOT / "dags").glob("*.py")))
def test_parsing_a_dag_file_imports_no_task_code(dag_file: str, tmp_path: Path) -> None:
    env = project_env(AIRFLOW_HOME=str(tmp_path / "airflow"))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "dags" / dag_file), ",".join(TASK_CODE)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
