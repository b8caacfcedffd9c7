"""DynamoDB specifics: the pending list comes from the sparse index, never from a table Scan."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from ocp_ingest.ledger import Ledger
from ocp_ingest.ledger.dynamodb import OPEN_INDEX, PENDING_INDEX, DynamoLedgerBackend, table_definition
from ocp_ingest.ledger.model import IngestionSource
from ocp_ingest.ledger.transitions import CdrEnd, CdrStart, Stored

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_pending_uses_the_sparse_index_and_never_scans(moto_endpoint: str) -> None:
    backend = DynamoLedgerBackend(
        f"t{uuid.uuid4().hex[:10]}", region_name="eu-west-1", endpoint_url=moto_endpoint
    )
    backend.create_table()
    calls: list[str] = []
    backend.client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    ledger = Ledger(backend)
    pending_id, stored_id, open_id = "A" * 32, "B" * 32, "C" * 32
    for d in (pending_id, stored_id):
        ledger.apply(CdrEnd(d, T0, 1000, "NORMAL"))
    ledger.apply(CdrStart(open_id, T0))
    ledger.apply(Stored(stored_id, "s3://b/k.wav", "f" * 64, 10, IngestionSource.REALTIME))

    assert [c.dialog_id for c in ledger.pending(timedelta(0), 10, now=T0 + timedelta(hours=1))] == [
        pending_id
    ]
    assert [c.dialog_id for c in ledger.open_calls(timedelta(0), 10, now=T0 + timedelta(hours=1))] == [
        open_id
    ]
    assert "Scan" not in calls and "Query" in calls

    # Sparse: only the pending call carries the pending keys, only the open call the open keys.
    raw = backend.client.scan(TableName=backend.table_name)["Items"]  # test-only look at raw items
    keyed = {item["dialog_id"]["S"] for item in raw if "pending_day" in item}
    assert keyed == {pending_id}
    assert {item["dialog_id"]["S"] for item in raw if "open_day" in item} == {open_id}


def test_table_definition_declares_the_indexes() -> None:
    definition = table_definition("x")
    names = {gsi["IndexName"] for gsi in definition["GlobalSecondaryIndexes"]}
    assert {PENDING_INDEX, OPEN_INDEX} <= names and definition["TableName"] == "x"
    assert definition["KeySchema"] == [{"AttributeName": "dialog_id", "KeyType": "HASH"}]
