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
The table definition is ``dynamodb_table.json`` beside this module
(``aws dynamodb create-table --cli-input-json file://dynamodb_table.json``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

from ocp_ingest.ledger.model import CallRecord, format_ts, hours_between, parse_ts

PENDING_INDEX = "pending_by_day"
OPEN_INDEX = "open_by_day"
SWEEP_PREFIX = "SWEEP#"
START_INDEX = "calls_by_start_day"
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

    def write(self, record: CallRecord, expected_version: int) -> bool:
        if expected_version == 0:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(dialog_id)"}
        else:
            condition = {
                "ConditionExpression": "version = :expected",
                "ExpressionAttributeValues": {":expected": {"N": str(expected_version)}},
            }
        try:
            self.client.put_item(TableName=self.table_name, Item=_to_item(record), **condition)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _query(self, **kwargs: Any) -> Iterator[CallRecord]:
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(TableName=self.table_name, **kwargs):
            for item in page["Items"]:
                yield _from_item(item)

    def _sparse(
        self, index: str, key: str, before: datetime, limit: int, ocp_groups: Sequence[str] | None
    ) -> list[CallRecord]:
        """Oldest first from a sparse day-partitioned index (``<key>_day`` / ``<key>_since``)."""
        wanted = set(ocp_groups) if ocp_groups else None
        bound = format_ts(before)
        found: list[CallRecord] = []
        for day in _days(before - timedelta(days=self.pending_horizon_days), before):
            for record in self._query(
                IndexName=index,
                KeyConditionExpression=f"{key}_day = :day AND {key}_since < :bound",
                ExpressionAttributeValues={":day": {"S": day}, ":bound": {"S": bound}},
            ):
                if wanted is None or record.ocp_group in wanted:
                    found.append(record)
                    if len(found) >= limit:
                        return found
        return found

    def pending(
        self, ended_before: datetime, limit: int, ocp_groups: Sequence[str] | None = None
    ) -> list[CallRecord]:
        return self._sparse(PENDING_INDEX, "pending", ended_before, limit, ocp_groups)

    def open_calls(
        self, started_before: datetime, limit: int, ocp_groups: Sequence[str] | None = None
    ) -> list[CallRecord]:
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
