"""Fail fast on missing production resources (``ocp_ingest.preflight``), against moto's server on loopback.

A bucket or the ledger table missing, or an endpoint that does not answer (a closed port), is one line
naming the OCP_INGEST_* variable, the resource and the cause: from the preflight, from ``ocp-ingest check``
and from the receiver process, which then exits non-zero before it ever listens. The receiver's /healthz
reports landing storage going away later.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from ocp_ingest.config import Settings
from ocp_ingest.ledger.dynamodb import DynamoLedgerBackend, table_definition
from ocp_ingest.preflight import EVERYTHING, PreflightError, checks, preflight
from ocp_ingest.routing import LobRouter
from tests.conftest import project_env

CONN = "aws_preflight"
CLOSED_CONN = "aws_closed"
REGION = "eu-west-1"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def aws(moto_endpoint: str, ingest_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A provisioned production configuration on moto: every bucket and the ledger table, named uniquely."""
    prefix = f"pf-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN.upper()}",
        json.dumps({"conn_type": "aws", "extra": {"endpoint_url": moto_endpoint, "region_name": REGION}}),
    )
    closed = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CLOSED_CONN.upper()}",
        json.dumps({"conn_type": "aws", "extra": {"endpoint_url": closed, "region_name": REGION}}),
    )
    env = {
        "OCP_INGEST_LEDGER_BACKEND": "dynamodb",
        "OCP_INGEST_DYNAMODB_TABLE": f"{prefix}-ledger",
        "OCP_INGEST_DYNAMODB_ENDPOINT_URL": moto_endpoint,
        "OCP_INGEST_RECORDINGS_URL": f"s3://{CONN}@{prefix}-recordings-{{lob}}",
        "OCP_INGEST_LANDING_URL": f"s3://{CONN}@{prefix}-landing",
        "OCP_INGEST_QUARANTINE_URL": f"s3://{CONN}@{prefix}-quarantine",
        "OCP_INGEST_AUDIT_URL": f"s3://{CONN}@{prefix}-audit/trail",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    buckets = [f"{prefix}-{p}" for p in ("landing", "quarantine", "audit")]
    buckets += [f"{prefix}-recordings-{lob}" for lob in LobRouter.load(None).lobs]
    for bucket in buckets:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    DynamoLedgerBackend(
        env["OCP_INGEST_DYNAMODB_TABLE"], region_name=REGION, endpoint_url=moto_endpoint
    ).create_table()
    yield {**env, "prefix": prefix, "closed": closed, "moto": moto_endpoint}


def _failure(**env: str) -> str:
    """The preflight's one line for the configuration with ``env`` changed."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with pytest.raises(PreflightError) as caught:
            preflight(Settings.from_env())
    line = str(caught.value)
    assert "\n" not in line and "Traceback" not in line
    return line


def test_a_provisioned_deployment_passes(aws: dict[str, str]) -> None:
    done = preflight(Settings.from_env())
    lobs = LobRouter.load(None).lobs
    assert [c.variable for c in done] == [
        "OCP_INGEST_DYNAMODB_TABLE",
        *["OCP_INGEST_RECORDINGS_URL"] * len(lobs),
        "OCP_INGEST_LANDING_URL",
        "OCP_INGEST_QUARANTINE_URL",
        "OCP_INGEST_AUDIT_URL",
    ]
    assert all(c.ok for c in done)
    assert {c.resource for c in done[1 : 1 + len(lobs)]} == {
        f"bucket '{aws['prefix']}-recordings-{lob}' (s3://{CONN}@{aws['prefix']}-recordings-{lob})"
        for lob in lobs
    }


def test_a_misspelt_bucket_names_its_variable_the_bucket_and_the_cause(aws: dict[str, str]) -> None:
    line = _failure(OCP_INGEST_LANDING_URL=f"s3://{CONN}@{aws['prefix']}-landng")
    assert line == (
        f"OCP_INGEST_LANDING_URL: bucket '{aws['prefix']}-landng' (s3://{CONN}@{aws['prefix']}-landng): "
        "does not exist (S3 HeadBucket: 404)"
    )


def test_a_missing_recordings_bucket_of_one_lob_is_found(aws: dict[str, str], moto_endpoint: str) -> None:
    lob = LobRouter.load(None).lobs[-1]
    boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION).delete_bucket(
        Bucket=f"{aws['prefix']}-recordings-{lob}"
    )
    line = _failure()
    assert line.startswith(f"OCP_INGEST_RECORDINGS_URL: bucket '{aws['prefix']}-recordings-{lob}' ")
    assert line.endswith("does not exist (S3 HeadBucket: 404)")


def test_a_table_not_created_names_the_table_variable(aws: dict[str, str]) -> None:
    line = _failure(OCP_INGEST_DYNAMODB_TABLE="ocp_call_ledgr")
    assert line == (
        f"OCP_INGEST_DYNAMODB_TABLE: DynamoDB table 'ocp_call_ledgr' at {aws['moto']}: "
        "does not exist (DynamoDB DescribeTable: ResourceNotFoundException)"
    )


def test_a_table_without_an_index_of_the_layout_is_refused(aws: dict[str, str], moto_endpoint: str) -> None:
    name = f"{aws['prefix']}-old"
    definition = table_definition(name)
    definition.pop("DeletionProtectionEnabled", None)
    definition["GlobalSecondaryIndexes"] = [
        i for i in definition["GlobalSecondaryIndexes"] if i["IndexName"] != "open_by_day"
    ]
    definition["AttributeDefinitions"] = [
        a for a in definition["AttributeDefinitions"] if a["AttributeName"] not in ("open_day", "open_since")
    ]
    boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name=REGION).create_table(**definition)
    line = _failure(OCP_INGEST_DYNAMODB_TABLE=name)
    assert line.startswith(f"OCP_INGEST_DYNAMODB_TABLE: DynamoDB table '{name}'")
    assert "lacks the index(es) open_by_day" in line


def test_an_unreachable_dynamodb_endpoint_names_the_endpoint_variable(aws: dict[str, str]) -> None:
    started = time.monotonic()
    line = _failure(OCP_INGEST_DYNAMODB_ENDPOINT_URL=aws["closed"])
    assert line.startswith(
        f"OCP_INGEST_DYNAMODB_ENDPOINT_URL: DynamoDB table '{aws['OCP_INGEST_DYNAMODB_TABLE']}' at "
        f"{aws['closed']}: not reachable: Could not connect to the endpoint URL"
    )
    assert time.monotonic() - started < 30  # two tries, not the data path's ten


def test_an_unreachable_s3_endpoint_names_the_storage_variable(aws: dict[str, str]) -> None:
    started = time.monotonic()
    line = _failure(OCP_INGEST_QUARANTINE_URL=f"s3://{CLOSED_CONN}@{aws['prefix']}-quarantine")
    assert line.startswith(
        f"OCP_INGEST_QUARANTINE_URL: bucket '{aws['prefix']}-quarantine' "
        f"(s3://{CLOSED_CONN}@{aws['prefix']}-quarantine): not reachable: "
        "Could not connect to the endpoint URL"
    )
    assert time.monotonic() - started < 30


def test_the_embedded_default_checks_its_folders_and_ledger_file(ingest_home: Path) -> None:
    done = preflight(Settings.from_env())
    assert done[0].variable == "OCP_INGEST_LEDGER_SQLITE_PATH" and all(c.ok for c in done)
    blocker = ingest_home / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OCP_INGEST_QUARANTINE_URL", (blocker / "quarantine").as_uri())
        with pytest.raises(PreflightError) as caught:
            preflight(Settings.from_env())
    assert str(caught.value) == (
        f"OCP_INGEST_QUARANTINE_URL: directory {blocker / 'quarantine'}: "
        f"cannot be created: {blocker} is not a directory"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OCP_INGEST_LEDGER_SQLITE_PATH", str(blocker / "ledger.sqlite3"))
        with pytest.raises(PreflightError) as caught:
            preflight(Settings.from_env())
    assert str(caught.value).startswith(
        f"OCP_INGEST_LEDGER_SQLITE_PATH: SQLite ledger {blocker / 'ledger.sqlite3'}: cannot be opened: "
    )


def test_check_command_lists_every_resource_and_exits_1_on_a_failure(
    aws: dict[str, str], moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ocp_ingest.cli import main

    assert main(["check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len([line for line in out if line.startswith("ok  ")]) == len(list(checks(Settings.from_env())))
    boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION).delete_bucket(
        Bucket=f"{aws['prefix']}-landing"
    )
    assert main(["check", "--receiver"]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"ocp-ingest: OCP_INGEST_LANDING_URL: bucket '{aws['prefix']}-landing' "
        f"(s3://{CONN}@{aws['prefix']}-landing): does not exist (S3 HeadBucket: 404)"
    ]
    assert not any("RECORDINGS" in line for line in captured.out.splitlines())  # --receiver: its needs
    assert EVERYTHING[0] == "ledger"


def test_the_receiver_with_a_missing_bucket_exits_with_the_line_and_never_listens(
    aws: dict[str, str], tmp_path: Path
) -> None:
    port = _closed_port()
    env = project_env(
        OCP_INGEST_RECEIVER_SECRET="whsec_dGVzdC1zZWNyZXQtZm9yLXRoZS1yZWNlaXZlcg==",
        OCP_INGEST_LANDING_URL=f"s3://{CONN}@{aws['prefix']}-nope",
    )
    command = [sys.executable, "-m", "ocp_ingest.cli", "receiver", "--port", str(port)]
    with (tmp_path / "stderr").open("w+") as stderr:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        listened = False
        deadline = time.monotonic() + 180  # imports take seconds, more on a loaded machine
        while proc.poll() is None and time.monotonic() < deadline:
            with socket.socket() as s:
                listened = listened or s.connect_ex(("127.0.0.1", port)) == 0
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            pytest.fail("the receiver did not exit")
        stderr.seek(0)
        lines = stderr.read().splitlines()
    assert proc.returncode == 1 and not listened
    wanted = (
        f"ocp-ingest: OCP_INGEST_LANDING_URL: bucket '{aws['prefix']}-nope' "
        f"(s3://{CONN}@{aws['prefix']}-nope): does not exist (S3 HeadBucket: 404)"
    )
    assert lines[-1] == wanted and "Traceback" not in "\n".join(lines)


def test_healthz_reports_landing_gone_after_start(
    aws: dict[str, str], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, ingest_home: Path
) -> None:
    from ocp_ingest.ledger import open_ledger
    from ocp_ingest.receiver import app as receiver_app
    from ocp_ingest.receiver.server import start_receiver

    monkeypatch.setattr(receiver_app, "LANDING_CHECK_EVERY_S", 0.0)  # ask on every probe
    settings = Settings.from_env()
    ledger = open_ledger(settings)
    server = start_receiver(receiver_app.create_app(settings, secret="shared", ledger=ledger))
    try:
        health = httpx.get(f"{server.url}/healthz", timeout=30)
        assert health.status_code == 200
        assert (health.json()["ledger"], health.json()["landing"]) == ("ok", "ok")
        boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION).delete_bucket(
            Bucket=f"{aws['prefix']}-landing"
        )
        health = httpx.get(f"{server.url}/healthz", timeout=30)
        assert health.status_code == 503 and health.json()["status"] == "degraded"
        assert health.json()["landing"] == "error: does not exist (S3 HeadBucket: 404)"
    finally:
        server.stop()
        ledger.close()
