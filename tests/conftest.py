"""Shared fixtures: an isolated OCP_INGEST_HOME per test and moto's S3/DynamoDB server on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Keep Airflow (imported by some modules under test) away from ~/airflow and example DAGs.
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")


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
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
