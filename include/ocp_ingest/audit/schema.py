"""The Parquet schemas of the audit tables: the one definition the writer, the snapshot and the Athena DDL
test share.

Timestamps are UTC without a zone (Parquet ``isAdjustedToUTC=false``) because Athena's ``timestamp`` is
zone-less: the same value then reads identically in Athena, DuckDB and pandas. Partition columns (``dt``,
``lob``) live in the path (Hive style), never in the files, as Athena requires.
"""

from __future__ import annotations

import enum

import pyarrow as pa

TS = pa.timestamp("ms")


class AuditEventType(enum.StrEnum):
    CDR_START = "CDR_START"
    IVR_END = "IVR_END"
    CDR_END = "CDR_END"
    FILE_RECEIVED = "FILE_RECEIVED"
    AUDIO_REJECTED = "AUDIO_REJECTED"
    STORED = "STORED"
    CONFLICTING_AUDIO = "CONFLICTING_AUDIO"
    EXPORT_REQUESTED = "EXPORT_REQUESTED"
    EXPORT_COMPLETED = "EXPORT_COMPLETED"
    EXPORT_EXPIRED = "EXPORT_EXPIRED"
    ATTEMPT_FAILED = "ATTEMPT_FAILED"
    #: terminal without escalation (NO_RECORDING_EXPECTED)
    TERMINAL = "TERMINAL"
    #: terminal because it could not be recovered (UNRECOVERABLE_*): a human must look
    ESCALATED = "ESCALATED"


AUDIT_EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_ts", TS, nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("dialog_id", pa.string()),
        pa.field("ocp_group", pa.string()),
        pa.field("dialog_group", pa.string()),
        # REALTIME / RECONCILIATION / OPERATOR: which path caused the event.
        pa.field("source", pa.string()),
        # Who: receiver instance, dag_id/run_id/task_id, or operator@host.
        pa.field("actor", pa.string()),
        pa.field("transition", pa.string()),
        pa.field("call_start_ts", TS),
        pa.field("call_end_ts", TS),
        pa.field("object_url", pa.string()),
        pa.field("sha256", pa.string()),
        pa.field("size_bytes", pa.int64()),
        pa.field("export_id", pa.string()),
        pa.field("retry_count", pa.int32()),
        pa.field("terminal_state", pa.string()),
        pa.field("detail", pa.string()),
        # The ledger record's version after the change: orders one call's events without clock trust.
        pa.field("ledger_version", pa.int64()),
    ]
)

LEDGER_SNAPSHOT_SCHEMA = pa.schema(
    [
        pa.field("dialog_id", pa.string(), nullable=False),
        pa.field("call_status", pa.string()),
        pa.field("call_start_ts", TS),
        pa.field("call_end_ts", TS),
        pa.field("duration_ms", pa.int64()),
        pa.field("end_type", pa.string()),
        pa.field("ivr_end_reason", pa.string()),
        pa.field("dialog_group", pa.string()),
        pa.field("ocp_group", pa.string()),
        pa.field("account_id", pa.string()),
        pa.field("flow_name", pa.string()),
        pa.field("destination_uri", pa.string()),
        pa.field("lob", pa.string()),
        pa.field("has_cdr_end", pa.bool_()),
        pa.field("cdr_end_at", TS),
        pa.field("file_received", pa.bool_()),
        pa.field("file_received_at", TS),
        pa.field("post_process_ok", pa.bool_()),
        pa.field("post_process_at", TS),
        pa.field("s3_stored", pa.bool_()),
        pa.field("s3_stored_at", TS),
        pa.field("ingestion_source", pa.string()),
        pa.field("retry_count", pa.int32()),
        pa.field("object_url", pa.string()),
        pa.field("sha256", pa.string()),
        pa.field("size_bytes", pa.int64()),
        pa.field("audio_format", pa.string()),
        pa.field("audio_duration_s", pa.float64()),
        pa.field("export_id", pa.string()),
        pa.field("last_error", pa.string()),
        pa.field("last_attempt_id", pa.string()),
        pa.field("last_attempt_at", TS),
        pa.field("terminal_state", pa.string()),
        pa.field("terminal_reason", pa.string()),
        pa.field("terminal_at", TS),
        pa.field("version", pa.int64()),
        pa.field("created_at", TS),
        pa.field("updated_at", TS),
        # One word per call (STORED, PENDING, OPEN, TERMINAL:<state>), as the ledger counts it.
        pa.field("state", pa.string()),
    ]
)

#: Hive partition columns (in the path, not in the files) and their Athena types.
AUDIT_EVENT_PARTITIONS = {"dt": "string", "lob": "string"}
LEDGER_SNAPSHOT_PARTITIONS = {"dt": "string"}

#: Partition value for events of a call whose LOB is not known yet (routing always sets one in practice).
NO_LOB = "none"

_ATHENA_TYPES = {
    pa.string(): "string",
    pa.int64(): "bigint",
    pa.int32(): "int",
    pa.float64(): "double",
    pa.bool_(): "boolean",
    TS: "timestamp",
}


def athena_type(data_type: pa.DataType) -> str:
    """The Athena (Hive DDL) type a Parquet column of this Arrow type is declared with."""
    return _ATHENA_TYPES[data_type]
