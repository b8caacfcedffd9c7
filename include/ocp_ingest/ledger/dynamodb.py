"""DynamoDB ledger backend: production.

- Writes are conditional puts on the ``version`` attribute (``attribute_not_exists`` for a new call),
  so two writers can never both apply a change computed from the same state.
- Pending calls live in a **sparse** GSI (``pending_by_day``): only pending items carry its keys
  (``pending_day`` = the UTC day the call ended, ``pending_since``), so the index holds just the
  backlog and the pending query reads day partitions oldest-first, never scanning the table.
- Open calls (known, no dialog_end, not stored, not terminal) live in a second sparse GSI
  (``open_by_day``: ``open_day`` = the UTC day the call started, ``open_since``), read the same way.
- Window queries use the ``calls_by_start_day`` GSI (one partition per UTC day of call start).
- Swept hours (an OCP group's hour whose dialog_end CDRs a completed export was diffed against) are items
  keyed ``SWEEP#<group>#<hour>`` in the same table, read with BatchGetItem; they carry no index keys.
- The audit outbox: a change's event is an item keyed ``OUTBOX#<event_id>`` in the same table, put in one
  ``TransactWriteItems`` with the ledger item (whose version check stays its ConditionExpression). Outbox
  items carry only the keys of the sparse ``audit_outbox`` GSI (``outbox_shard``: one of 16 shards,
  ``outbox_since`` = ``<created_at>#<event_id>``), none of the call indexes' keys; a publisher reads leftovers
  there. Batches become transactions of at most 100 items (records and their events).
- The CDR inbox: an accepted CDR event is an item keyed ``CDR#<opaque_key(event_id)>`` (a conditional put:
  the id is the de-dup) until the realtime DAG rolls it into the manifest. It is read through the same
  sparse index, in 16 shards of its own (``outbox_shard`` = ``cdr<n>``), which the audit publisher never
  queries.
The table definition is ``dynamodb_table.json`` beside this module
(``aws dynamodb create-table --cli-input-json file://dynamodb_table.json``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

from ocp_ingest.ids import opaque_key
from ocp_ingest.ledger.base import OutboxEntry
from ocp_ingest.ledger.model import CallRecord, format_ts, hours_between, parse_ts

log = logging.getLogger(__name__)

PENDING_INDEX = "pending_by_day"
OPEN_INDEX = "open_by_day"
SWEEP_PREFIX = "SWEEP#"
START_INDEX = "calls_by_start_day"
OUTBOX_PREFIX = "OUTBOX#"
OUTBOX_INDEX = "audit_outbox"
OUTBOX_SHARDS = 16
CDR_PREFIX = "CDR#"
#: TransactWriteItems takes at most 100 items and 4 MB: items per transaction (records and their events),
#: and a byte budget well under the limit (an item is at most 400 KB; ours are a few KB).
TRANSACTION_ITEMS = 100
TRANSACTION_BYTES = 3_000_000
_LOST_RACE = {"ConditionalCheckFailed", "TransactionConflict"}
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def table_definition(table_name: str | None = None) -> dict[str, Any]:
    """The CreateTable request (from ``dynamodb_table.json``), optionally renamed."""
    text = resources.files("ocp_ingest.ledger").joinpath("dynamodb_table.json").read_text()
    definition = json.loads(text)
    if table_name:
        definition["TableName"] = table_name
    return definition


def _to_item(record: CallRecord) -> dict[str, Any]:
    plain = {k: v for k, v in record.to_item().items() if v is not None}
    if "audio_duration_s" in plain:
        plain["audio_duration_s"] = Decimal(str(plain["audio_duration_s"]))
    pending_since = record.pending_since
    if pending_since is not None:  # sparse index keys: present only while the call is pending
        plain["pending_day"] = format_ts(pending_since)[:10]
        plain["pending_since"] = f"{format_ts(pending_since)}#{record.dialog_id}"
    open_since = record.open_since
    if open_since is not None:
        plain["open_day"] = format_ts(open_since)[:10]
        plain["open_since"] = f"{format_ts(open_since)}#{record.dialog_id}"
    if record.call_start_ts is not None:
        plain["start_day"] = plain["call_start_ts"][:10]
    return {k: _serializer.serialize(v) for k, v in plain.items()}


def _from_item(item: dict[str, Any]) -> CallRecord:
    plain = {k: _deserializer.deserialize(v) for k, v in item.items()}
    for key, value in plain.items():
        if isinstance(value, Decimal):
            plain[key] = float(value) if key == "audio_duration_s" else int(value)
    for key in ("pending_day", "pending_since", "open_day", "open_since", "start_day"):
        plain.pop(key, None)
    return CallRecord.from_item(plain)


def _outbox_key(event_id: str) -> dict[str, Any]:
    return {"dialog_id": {"S": f"{OUTBOX_PREFIX}{event_id}"}}


def _outbox_shard(event_id: str) -> int:
    return int(hashlib.sha256(event_id.encode()).hexdigest()[:8], 16) % OUTBOX_SHARDS


def _cdr_inbox_key(event_id: str) -> dict[str, Any]:
    # OCP's opaque id may be 1,024 characters of 4-byte UTF-8: over DynamoDB's 2,048-byte partition key
    # and 1,024-byte sort key (``outbox_since``); its opaque key is at most 73 ASCII characters.
    return {"dialog_id": {"S": f"{CDR_PREFIX}{opaque_key(event_id)}"}}


def _outbox_item(entry: OutboxEntry) -> dict[str, Any]:
    shard = _outbox_shard(entry.event_id)
    return {
        **_outbox_key(entry.event_id),
        "event_id": {"S": entry.event_id},
        "body": {"S": entry.body},
        "created_at": {"S": entry.created_at},
        "outbox_shard": {"S": str(shard)},
        "outbox_since": {"S": f"{entry.created_at}#{entry.event_id}"},
    }


def _outbox_entry(item: dict[str, Any]) -> OutboxEntry:
    return OutboxEntry(
        event_id=item["event_id"]["S"],
        body=item["body"]["S"],
        created_at=item["created_at"]["S"],
        claim=item.get("claim", {}).get("S"),
        claimed_at=item.get("claimed_at", {}).get("S"),
    )


def _cancel_codes(exc: ClientError, items: int) -> list[str] | None:
    """Per item, why a cancelled transaction failed (``None`` codes are 'None'); None if not a cancel."""
    if exc.response["Error"]["Code"] != "TransactionCanceledException":
        return None
    reasons = exc.response.get("CancellationReasons") or []
    codes = [str(r.get("Code") or "None") for r in reasons]
    return codes if len(codes) == items else None


def _days(start: datetime, end: datetime) -> Iterator[str]:
    day = start.date()
    while day <= end.date():
        yield day.isoformat()
        day += timedelta(days=1)


class DynamoLedgerBackend:
    """Ledger records in a DynamoDB table with the layout of ``dynamodb_table.json``."""

    def __init__(
        self,
        table_name: str,
        *,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        pending_horizon_days: int = 90,
        client: Any | None = None,
    ) -> None:
        self.table_name = table_name
        # Standard retry mode backs off on throttling, so a brief ProvisionedThroughputExceeded or
        # a hot partition slows writers down instead of failing a task.
        self.client = client or boto3.client(
            "dynamodb",
            region_name=region_name,
            endpoint_url=endpoint_url,
            config=Config(retries={"mode": "standard", "max_attempts": 10}),
        )
        # The pending query walks this many day partitions back; OCP purges after 60 days and
        # escalation closes calls before that, so older pending calls only exist if escalation stalled.
        self.pending_horizon_days = pending_horizon_days

    def create_table(self) -> None:
        """Create the table (tests, local set-up). Production creates it from the JSON/IaC."""
        definition = table_definition(self.table_name)
        definition.pop("DeletionProtectionEnabled", None)
        try:
            self.client.create_table(**definition)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
        self.client.get_waiter("table_exists").wait(TableName=self.table_name)

    def check(self, timeout_s: float = 30.0) -> None:
        """Fail fast: the table exists, is ACTIVE and has every index of ``dynamodb_table.json``
        (DescribeTable, two tries at most, bounded in time); else
        :class:`~ocp_ingest.infrastructure.ResourceUnavailable` with the cause in words."""
        from botocore.exceptions import BotoCoreError

        from ocp_ingest.infrastructure import ResourceUnavailable, boto_unavailable

        client = boto3.client(
            "dynamodb",
            region_name=self.client.meta.region_name,
            endpoint_url=self.client.meta.endpoint_url,
            config=Config(
                retries={"mode": "standard", "max_attempts": 2},
                connect_timeout=min(5.0, timeout_s),
                read_timeout=timeout_s,
            ),
        )
        try:
            table = client.describe_table(TableName=self.table_name)["Table"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            if code == "ResourceNotFoundException":
                raise ResourceUnavailable(f"does not exist (DynamoDB DescribeTable: {code})") from None
            if code in ("AccessDeniedException", "UnrecognizedClientException"):
                raise ResourceUnavailable(f"access denied (DynamoDB DescribeTable: {code})") from None
            raise ResourceUnavailable(f"DynamoDB DescribeTable failed: {code}") from None
        except BotoCoreError as exc:
            raise boto_unavailable(exc, "DynamoDB DescribeTable", "role or environment") from None
        finally:
            client.close()
        status = table.get("TableStatus")
        if status != "ACTIVE":
            raise ResourceUnavailable(f"is {status}, not ACTIVE")
        have = {i["IndexName"]: i.get("IndexStatus") for i in table.get("GlobalSecondaryIndexes", [])}
        wanted = [i["IndexName"] for i in table_definition().get("GlobalSecondaryIndexes", [])]
        missing = [name for name in wanted if name not in have]
        if missing:
            raise ResourceUnavailable(
                f"lacks the index(es) {', '.join(missing)} of dynamodb_table.json (aws dynamodb update-table)"
            )
        inactive = [f"{name} is {have[name]}" for name in wanted if have[name] not in (None, "ACTIVE")]
        if inactive:
            raise ResourceUnavailable(f"index {', '.join(inactive)}, not ACTIVE")

    def get(self, dialog_id: str) -> CallRecord | None:
        response = self.client.get_item(
            TableName=self.table_name, Key={"dialog_id": {"S": dialog_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return _from_item(item) if item else None

    def get_many(self, dialog_ids: Sequence[str]) -> dict[str, CallRecord]:
        found: dict[str, CallRecord] = {}
        ids = list(dict.fromkeys(dialog_ids))
        for i in range(0, len(ids), 100):  # BatchGetItem's limit
            keys: list[dict[str, Any]] = [{"dialog_id": {"S": d}} for d in ids[i : i + 100]]
            request: dict[str, Any] = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self.table_name, []):
                    record = _from_item(item)
                    found[record.dialog_id] = record
                request = response.get("UnprocessedKeys") or {}
        return found

    @staticmethod
    def _condition(expected_version: int) -> dict[str, Any]:
        if expected_version == 0:
            return {"ConditionExpression": "attribute_not_exists(dialog_id)"}
        return {
            "ConditionExpression": "version = :expected",
            "ExpressionAttributeValues": {":expected": {"N": str(expected_version)}},
        }

    def write(self, record: CallRecord, expected_version: int, outbox: OutboxEntry | None = None) -> bool:
        if outbox is not None:
            return self.write_many([(record, expected_version)], [[outbox]])[0]
        condition = self._condition(expected_version)
        try:
            self.client.put_item(TableName=self.table_name, Item=_to_item(record), **condition)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def write_many(
        self, items: Sequence[tuple[CallRecord, int]], outbox: Sequence[Sequence[OutboxEntry]] | None = None
    ) -> list[bool]:
        """Several :meth:`write`; with outbox entries, each record and its entries commit together.

        Records go in transactions of at most :data:`TRANSACTION_ITEMS` items (and
        :data:`TRANSACTION_BYTES`), a record and its entries always in the same one. A transaction is all
        or nothing, so one record that lost its version check cancels the others: they go again without
        it. Without entries each record is its own conditional put (no transaction cost).
        """
        if outbox is None or not any(outbox):
            return [self.write(record, expected) for record, expected in items]
        written = [False] * len(items)
        chunk: list[tuple[int, list[dict[str, Any]]]] = []
        size = count = 0
        for i, ((record, expected), entries) in enumerate(zip(items, outbox, strict=True)):
            actions = [
                {"Put": {"TableName": self.table_name, "Item": _to_item(record), **self._condition(expected)}}
            ]
            for entry in entries:
                outbox_put = {
                    "TableName": self.table_name,
                    "Item": _outbox_item(entry),
                    "ConditionExpression": "attribute_not_exists(dialog_id)",
                }
                actions.append({"Put": outbox_put})
            cost = len(json.dumps(actions))
            if chunk and (count + len(actions) > TRANSACTION_ITEMS or size + cost > TRANSACTION_BYTES):
                self._transact(chunk, written)
                chunk, size, count = [], 0, 0
            chunk.append((i, actions))
            size += cost
            count += len(actions)
        if chunk:
            self._transact(chunk, written)
        return written

    def _transact(self, chunk: list[tuple[int, list[dict[str, Any]]]], written: list[bool]) -> None:
        """Commit the records of ``chunk`` (index, actions) still passing their checks; mark them written."""
        todo = list(chunk)
        for attempt in range(16):
            if not todo:
                return
            flat = [action for _, actions in todo for action in actions]
            try:
                self.client.transact_write_items(TransactItems=flat)
            except ClientError as exc:
                codes = _cancel_codes(exc, len(flat))
                if codes is None:
                    raise
                failed: set[int] = set()
                position = 0
                for index, actions in todo:
                    mine = codes[position : position + len(actions)]
                    position += len(actions)
                    if any(c not in ("None", *_LOST_RACE) for c in mine):
                        raise
                    if any(c in _LOST_RACE for c in mine):
                        failed.add(index)  # lost its version check (or a race): the caller re-reads it
                if not failed:  # cancelled for no item's own reason: try the same again
                    time.sleep(min(0.2, 0.005 * 2**attempt) * random.random())
                todo = [(i, a) for i, a in todo if i not in failed]
                continue
            for index, _ in todo:
                written[index] = True
            return
        raise RuntimeError("DynamoDB transaction kept being cancelled")

    # -- the audit outbox ------------------------------------------------------------------------
    #: Entries one publisher claims (and puts in one audit file) at once: one transaction.
    outbox_claim_limit = 100

    def outbox_add(self, entries: Sequence[OutboxEntry]) -> None:
        requests = [{"PutRequest": {"Item": _outbox_item(e)}} for e in entries]
        self._batch_write(requests)

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for i in range(0, len(requests), 25):  # BatchWriteItem's limit
            pending: dict[str, Any] = {self.table_name: requests[i : i + 25]}
            attempt = 0
            while pending:
                response = self.client.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if pending:
                    attempt += 1
                    time.sleep(min(1.0, 0.01 * 2**attempt) * random.random())

    def outbox_claim(self, event_ids: Sequence[str], claim: str, at: str) -> set[str]:
        ids = list(dict.fromkeys(event_ids))
        if len(ids) > self.outbox_claim_limit:
            raise ValueError(f"at most {self.outbox_claim_limit} outbox entries per claim")
        for attempt in range(16):
            if not ids:
                return set()
            actions = [
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": _outbox_key(i),
                        "UpdateExpression": "SET claim = :claim, claimed_at = :at",
                        "ConditionExpression": "attribute_exists(dialog_id) AND attribute_not_exists(claim)",
                        "ExpressionAttributeValues": {":claim": {"S": claim}, ":at": {"S": at}},
                    }
                }
                for i in ids
            ]
            try:
                self.client.transact_write_items(TransactItems=actions)
            except ClientError as exc:
                codes = _cancel_codes(exc, len(actions))
                if codes is None or any(c not in ("None", *_LOST_RACE) for c in codes):
                    raise
                # Claimed by another publisher, or published and gone: not ours. Conflicts: try again.
                ids = [i for i, c in zip(ids, codes, strict=True) if c != "ConditionalCheckFailed"]
                time.sleep(min(0.2, 0.005 * 2**attempt) * random.random())
                continue
            return set(ids)
        raise RuntimeError("could not claim outbox entries: transactions kept being cancelled")

    def outbox_list(self, created_before: str, limit: int) -> list[OutboxEntry]:
        found = [_outbox_entry(item) for item in self._outbox_index("", limit, created_before)]
        found.sort(key=lambda e: (e.created_at, e.event_id))
        return found[:limit]

    def _outbox_index(self, prefix: str, limit: int, before: str | None = None) -> Iterator[dict[str, Any]]:
        """Items of the sparse outbox index: up to ``limit`` from each of its shards ``<prefix><n>``
        (the audit outbox's, prefix "", or the CDR inbox's, "cdr"); ``before``: ``outbox_since`` below."""
        condition = "outbox_shard = :shard" + (" AND outbox_since < :bound" if before is not None else "")
        paginator = self.client.get_paginator("query")
        for shard in range(OUTBOX_SHARDS):
            values = {":shard": {"S": f"{prefix}{shard}"}}
            if before is not None:
                values[":bound"] = {"S": before}
            pages = paginator.paginate(
                TableName=self.table_name,
                IndexName=OUTBOX_INDEX,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=values,
                PaginationConfig={"MaxItems": limit},
            )
            for page in pages:
                yield from page["Items"]

    def outbox_unclaim(self, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key=_outbox_key(event_id),
                    UpdateExpression="REMOVE claim, claimed_at",
                    ConditionExpression="attribute_exists(dialog_id)",
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise

    def outbox_delete(self, event_ids: Sequence[str]) -> None:
        self._batch_write([{"DeleteRequest": {"Key": _outbox_key(i)}} for i in dict.fromkeys(event_ids)])

    # -- the CDR inbox ---------------------------------------------------------------------------
    def cdr_inbox_add(self, events: Sequence[tuple[str, str]], at: str) -> list[bool | None]:
        return [self._cdr_inbox_put(event_id, body, at) for event_id, body in events]

    def _cdr_inbox_put(self, event_id: str, body: str, at: str) -> bool | None:
        key = _cdr_inbox_key(event_id)
        item = {
            **key,
            "event_id": {"S": event_id},
            "body": {"S": body},
            "outbox_shard": {"S": f"cdr{_outbox_shard(event_id)}"},
            "outbox_since": {"S": f"{at}#{opaque_key(event_id)}"},
        }
        for _ in range(8):  # a kept event rolled away between our put and our read: put again
            try:
                self.client.put_item(
                    TableName=self.table_name,
                    Item=item,
                    ConditionExpression="attribute_not_exists(dialog_id)",
                )
                return True
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
            kept = self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True).get("Item")
            if kept is not None:
                return False if kept["body"]["S"] == body else None
        raise RuntimeError(f"CDR event {event_id!r} kept appearing and disappearing")

    def cdr_inbox_list(self, limit: int) -> list[tuple[str, str]]:
        found = sorted(
            (item["outbox_since"]["S"], item["event_id"]["S"], item["body"]["S"])
            for item in self._outbox_index("cdr", limit)
        )
        return [(event_id, body) for _, event_id, body in found[:limit]]

    def cdr_inbox_delete(self, event_ids: Sequence[str]) -> None:
        keys = [_cdr_inbox_key(i) for i in dict.fromkeys(event_ids)]
        self._batch_write([{"DeleteRequest": {"Key": key}} for key in keys])

    def _query(self, **kwargs: Any) -> Iterator[CallRecord]:
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(TableName=self.table_name, **kwargs):
            for item in page["Items"]:
                yield _from_item(item)

    def _sparse(
        self, index: str, key: str, before: datetime, limit: int | None, ocp_groups: Sequence[str] | None
    ) -> Iterator[CallRecord]:
        """Oldest first from a sparse day-partitioned index (``<key>_day`` / ``<key>_since``), as the
        query pages arrive."""
        wanted = set(ocp_groups) if ocp_groups else None
        bound = format_ts(before)
        found = 0
        for day in _days(before - timedelta(days=self.pending_horizon_days), before):
            for record in self._query(
                IndexName=index,
                KeyConditionExpression=f"{key}_day = :day AND {key}_since < :bound",
                ExpressionAttributeValues={":day": {"S": day}, ":bound": {"S": bound}},
            ):
                if wanted is None or record.ocp_group in wanted:
                    yield record
                    found += 1
                    if limit is not None and found >= limit:
                        return

    def iter_pending(
        self, ended_before: datetime, limit: int | None, ocp_groups: Sequence[str] | None = None
    ) -> Iterator[CallRecord]:
        return self._sparse(PENDING_INDEX, "pending", ended_before, limit, ocp_groups)

    def iter_open_calls(
        self, started_before: datetime, limit: int | None, ocp_groups: Sequence[str] | None = None
    ) -> Iterator[CallRecord]:
        return self._sparse(OPEN_INDEX, "open", started_before, limit, ocp_groups)

    @staticmethod
    def _sweep_key(ocp_group: str, hour: datetime) -> dict[str, Any]:
        return {"dialog_id": {"S": f"{SWEEP_PREFIX}{ocp_group}#{format_ts(hour)}"}}

    def mark_swept(self, ocp_group: str, hours: Sequence[datetime], export_id: str, at: datetime) -> None:
        for hour in hours:
            item = {
                **self._sweep_key(ocp_group, hour),
                "export_id": {"S": export_id},
                "swept_at": {"S": format_ts(at) or ""},
            }
            try:  # the first sweep of an hour stands
                self.client.put_item(
                    TableName=self.table_name,
                    Item=item,
                    ConditionExpression="attribute_not_exists(dialog_id)",
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise

    def swept_hours(self, ocp_group: str, start: datetime, end: datetime) -> set[datetime]:
        hours = hours_between(start, end)
        found: set[datetime] = set()
        for i in range(0, len(hours), 100):  # BatchGetItem's limit
            keys = [self._sweep_key(ocp_group, h) for h in hours[i : i + 100]]
            request: dict[str, Any] = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self.table_name, []):
                    stamp = item["dialog_id"]["S"].rsplit("#", 1)[1]
                    if (parsed := parse_ts(stamp)) is not None:
                        found.add(parsed)
                request = response.get("UnprocessedKeys") or {}
        return found

    def calls_started_between(
        self, start: datetime, end: datetime, ocp_group: str | None = None, lob: str | None = None
    ) -> Iterator[CallRecord]:
        lower, upper = format_ts(start), format_ts(end)
        for day in _days(start, end):
            for record in self._query(
                IndexName=START_INDEX,
                KeyConditionExpression="start_day = :day AND call_start_ts BETWEEN :lo AND :hi",
                ExpressionAttributeValues={":day": {"S": day}, ":lo": {"S": lower}, ":hi": {"S": upper}},
            ):
                if format_ts(record.call_start_ts) == upper:
                    continue  # BETWEEN is inclusive; the window is half-open
                if ocp_group is not None and record.ocp_group != ocp_group:
                    continue
                if lob is None or record.lob == lob:
                    yield record

    def close(self) -> None:
        self.client.close()
