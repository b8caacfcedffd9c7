"""Shared fixtures: an isolated OCP_INGEST_HOME per test and moto's S3/DynamoDB server on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Before anything imports Airflow: a private AIRFLOW_HOME (never ~/airflow), this project's dags/, no
# examples. Airflow reads its configuration once, at import.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="ocp-ingest-airflow-")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB for dag.test() (about 7 s, once per session)."""
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return Path(os.environ["AIRFLOW_HOME"])


def load_dag(dag_id: str):
    """Parse dags/ the way the dag-processor does and return one DAG."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


@pytest.fixture
def ingest_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh embedded-default home: every OCP_INGEST_* path resolves under tmp_path."""
    for name in list(os.environ):
        if name.startswith("OCP_INGEST_"):
            monkeypatch.delenv(name)
    home = tmp_path / "ingest"
    monkeypatch.setenv("OCP_INGEST_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server mode on a free loopback port: real HTTP, real botocore serialisation."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    from ocp_ingest_dev.stack.moto_endpoint import serialize_dynamodb_writes

    serialize_dynamodb_writes()  # moto's DynamoDB conditions and writes atomic, as on DynamoDB
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
