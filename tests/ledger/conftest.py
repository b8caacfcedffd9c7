"""The ledger contract fixture: every test in this folder runs on SQLite and on DynamoDB (moto)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocp_ingest.ledger import Ledger
from ocp_ingest.ledger.dynamodb import DynamoLedgerBackend
from ocp_ingest.ledger.sqlite import SqliteLedgerBackend


def make_backend(spec: dict[str, str]) -> SqliteLedgerBackend | DynamoLedgerBackend:
    """Build a backend from a picklable spec, so other processes can open the same ledger."""
    if spec["kind"] == "sqlite":
        return SqliteLedgerBackend(spec["path"])
    return DynamoLedgerBackend(spec["table"], region_name="eu-west-1", endpoint_url=spec["endpoint"])


@pytest.fixture(params=["sqlite", "dynamodb"])
def ledger_spec(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "sqlite":
        return {"kind": "sqlite", "path": str(tmp_path / "ledger.sqlite3")}
    endpoint = request.getfixturevalue("moto_endpoint")
    spec = {"kind": "dynamodb", "table": f"ledger_{uuid.uuid4().hex[:12]}", "endpoint": endpoint}
    DynamoLedgerBackend(spec["table"], region_name="eu-west-1", endpoint_url=endpoint).create_table()
    return spec


@pytest.fixture
def ledger(ledger_spec: dict[str, str]) -> Iterator[Ledger]:
    with Ledger(make_backend(ledger_spec)) as opened:
        yield opened
