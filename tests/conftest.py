"""Shared fixtures: one OCP_INGEST_HOME per test; moto's S3/DynamoDB server and dynalite on loopback."""

from __future__ import annotations

import atexit
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def project_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child interpreter, with the project's code on its path
    (``include/``, and the root for ``tests.*``), plus ``extra``."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT)]), **extra}


# Before anything imports Airflow: a private AIRFLOW_HOME (never ~/airflow), this project's dags/, no
# examples. Airflow reads its configuration once, at import. The process that made the folder removes it
# when it exits (not a forked child that exits through Python).
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="ocp-ingest-airflow-")
_AIRFLOW_HOME_OWNER = os.getpid()


@atexit.register
def _remove_airflow_home() -> None:
    if os.getpid() == _AIRFLOW_HOME_OWNER:
        shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
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


def return_values_of(dag_run, task_id_like: str) -> list:
    """The return values of every instance (any map index) of the tasks matching ``task_id_like``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(XComModel)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, key="return_value")
            .filter(XComModel.task_id.like(task_id_like))
            .all()
        )
        return [XComModel.deserialize_value(row) for row in rows]


def return_value_of(dag_run, task_id: str):
    (value,) = return_values_of(dag_run, task_id)
    return value


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

    _fake_aws_credentials()
    from ocp_ingest_dev.stack.moto_endpoint import serialize_dynamodb_writes

    serialize_dynamodb_writes()  # moto's DynamoDB conditions and writes atomic, as on DynamoDB
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _fake_aws_credentials() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")


DYNALITE_DIR = ROOT / "tools" / "dynalite"


def in_ci() -> bool:
    """CI sets CI=true (so does .ci/run): there a missing test dependency is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def dynalite_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """dynalite (npm), a DynamoDB implementation independent of moto, in memory on a free loopback port.

    Installed into tools/dynalite by tools/system-deps.sh. Missing: a skip on a workstation, a failure in CI.
    """
    node = shutil.which("node")
    if node is None or not (DYNALITE_DIR / "node_modules" / "dynalite" / "package.json").is_file():
        message = "dynalite is not installed: run `bash tools/system-deps.sh` (make test does)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    _fake_aws_credentials()
    log = tmp_path_factory.mktemp("dynalite") / "stderr.log"
    with log.open("w") as stderr:
        # stdin stays open: serve.js exits when it closes, so even a killed session leaves no dynalite behind.
        server = subprocess.Popen(
            [node, "serve.js"], cwd=DYNALITE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        )
    assert server.stdout is not None
    try:
        line = b""
        deadline = time.monotonic() + 30
        while not line.endswith(b"\n") and time.monotonic() < deadline and server.poll() is None:
            if select.select([server.stdout], [], [], 0.2)[0]:
                line += os.read(server.stdout.fileno(), 256)
        if not line.startswith(b"dynalite listening on "):
            raise RuntimeError(f"dynalite did not start: {line!r} {log.read_text()[-2000:]}")
        yield f"http://127.0.0.1:{int(line.split()[-1])}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
