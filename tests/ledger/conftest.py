"""The ledger contract fixture: every test in this folder runs on SQLite and on DynamoDB, the latter twice: on
moto and on dynalite, two independent implementations of the DynamoDB API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from ocp_ingest.ledger import Ledger
from ocp_ingest.ledger.dynamodb import DynamoLedgerBackend
from ocp_ingest.ledger.sqlite import SqliteLedgerBackend
from tests.conftest import DYNALITE_DIR


def make_backend(spec: dict[str, str]) -> SqliteLedgerBackend | DynamoLedgerBackend:
    """Build a backend from a picklable spec, so other processes can open the same ledger."""
    if spec["kind"] == "sqlite":
        return SqliteLedgerBackend(spec["path"])
    return DynamoLedgerBackend(spec["table"], region_name="eu-west-1", endpoint_url=spec["endpoint"])


@pytest.fixture(scope="session")
def dynalite_lacks_transactions(dynalite_endpoint: str) -> str | None:
    """Why tests marked ``transactions`` cannot run on this dynalite, or None if they can.

    dynalite (4.0.0 at least) has no TransactWriteItems: 'Implement Transactions' is on its README's TODO and
    it answers UnknownOperationException. The ledger commits a change with its audit event in one
    transaction, and claims outbox entries in one, so those tests need it. Asked, not assumed: a dynalite
    that learns transactions runs them.
    """
    client = boto3.client("dynamodb", region_name="eu-west-1", endpoint_url=dynalite_endpoint)
    check = {
        "TableName": "no_such_table",
        "Key": {"dialog_id": {"S": "probe"}},
        "ConditionExpression": "attribute_exists(dialog_id)",
    }
    try:
        client.transact_write_items(TransactItems=[{"ConditionCheck": check}])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "UnknownOperationException":
            version = json.loads((DYNALITE_DIR / "node_modules/dynalite/package.json").read_text())["version"]
            return (
                f"dynalite {version} has no TransactWriteItems (UnknownOperationException): the ledger"
                " commits a change with its audit event, and claims outbox entries, in one transaction"
            )
    finally:
        client.close()
    return None


@pytest.fixture(params=["sqlite", "dynamodb", "dynalite"])
def ledger_spec(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "sqlite":
        return {"kind": "sqlite", "path": str(tmp_path / "ledger.sqlite3")}
    if request.param == "dynalite" and request.node.get_closest_marker("transactions"):
        reason = request.getfixturevalue("dynalite_lacks_transactions")
        if reason:
            pytest.skip(reason)
    server = {"dynamodb": "moto_endpoint", "dynalite": "dynalite_endpoint"}[request.param]
    endpoint = request.getfixturevalue(server)
    spec = {"kind": "dynamodb", "table": f"ledger_{uuid.uuid4().hex[:12]}", "endpoint": endpoint}
    DynamoLedgerBackend(spec["table"], region_name="eu-west-1", endpoint_url=endpoint).create_table()
    return spec


@pytest.fixture
def ledger(ledger_spec: dict[str, str]) -> Iterator[Ledger]:
    with Ledger(make_backend(ledger_spec)) as opened:
        yield opened
