"""Every OCP path and payload, in one module: adapting to a tenant's real API is a change here only.

What is documented by OCP (learn.ocp.ai) and what is assumed (the Exports API's shape is not public):

Documented
    * PAT header ``X-OCP-PERSONAL-ACCESS-TOKEN``; Keycloak password grant at
      ``/auth/realms/{realm}/protocol/openid-connect/token`` (form ``client_id=ocp``) with refresh tokens.
    * CDR events: ``message_type`` dialog_start | dialog_step | dialog_end, ``id`` (32 uppercase hex, the
      de-duplication key), ``group``, ``connection_id``, ``time`` (epoch ms), ``flow{name, account_id}``,
      ``destination_uri``, ``origin_uri``, ``direction``, ``channel``, ``test_flag``.
    * The dialog ``group`` as the CDR schema's example shows it: ``<40 hex>.<epoch ms>.<hex>`` (86 chars).
    * Export rules: one OCP group, a 1 h .. 2 day window with minutes/seconds ignored, one export at a time
      per group (409), results kept 1 day then ``expired``, paginated results, 429/5xx/422 semantics.
    * Recording name ``{groupId}~{accountId}~{dialogTimestamp}~{dialogId}.wav``: the one documented fact
      about a recording, so a listing entry without ``dialog_id`` takes it from the name.

Assumed (marked ASSUMED below)
    * ``end_type`` / ``duration`` (ms) on dialog_end: seen in practice, not official.
    * ``event_id`` (unique per event, stable across duplicate deliveries) and ``ocp_group`` on every event.
      The event id is OCP's opaque id: any non-empty printable text of at most :data:`EVENT_ID_MAX_LEN`
      characters (dots, slashes, unicode); it becomes a key only through ``ids.opaque_key``.
    * "IVR end" is a ``dialog_step`` with ``step="ivr_end"`` and a ``reason``.
    * ``dialogTimestamp`` in file names is the dialog start in epoch milliseconds.
    * The Exports REST shape (paths, JSON fields, status values PENDING/PROCESSING/COMPLETED/FAILED/EXPIRED,
      page tokens, HTTP Range on downloads, audio data type ``recordings``).
    * A call belongs to an export window by its dialog start time (the file name's dialogTimestamp).
      OCP may select CDR lines by their own event time instead; the simulator can do both. Planning
      covers both: a call's window holds its whole life plus a margin (``reconcile.plan.call_window``).
    * A call whose dialog_end never came ended within ``OCP_INGEST_OPEN_CALL_TIMEOUT_S`` (4 h) of its
      start (that is when it is taken for lost), so its window reaches start + that timeout + margin
      (capped at 2 days); the CDR ``duration`` itself is plausible up to :data:`MAX_DURATION_MS`.
    * CDR exports deliver one NDJSON file per hour of the window, one event per line.
    * ``groupId`` in a recording name is the OCP group (a storage path segment, so a strict token).
    * A dialog group is at most 128 characters (room above the documented 86) of alphanumeric runs joined
      by single dots: see :data:`DIALOG_GROUP_RE`.
    * Export ids and file ids have no documented form: treated as opaque (URL-encoded as one path segment,
      never parsed, no length bound).
    * ``Retry-After`` (seconds or HTTP-date) may come with 429 and 5xx and may be long; a COMPLETED
      export's listing may still answer 409 ``export_not_ready`` for a while.
"""

from __future__ import annotations

import json
import re
import time as _clock
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import quote

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ocp_ingest import ids

# --------------------------------------------------------------------------------------------- auth
PAT_HEADER = "X-OCP-PERSONAL-ACCESS-TOKEN"
DEFAULT_CLIENT_ID = "ocp"
DEFAULT_REALM = "ocp"


def token_path(realm: str) -> str:
    """Keycloak token endpoint path for a realm (``master`` or ``ocp``)."""
    return f"/auth/realms/{quote(ids.token('realm', realm))}/protocol/openid-connect/token"


def password_grant_form(username: str, password: str, client_id: str = DEFAULT_CLIENT_ID) -> dict[str, str]:
    """Form body of a password grant."""
    return {"client_id": client_id, "grant_type": "password", "username": username, "password": password}


def refresh_grant_form(refresh_token: str, client_id: str = DEFAULT_CLIENT_ID) -> dict[str, str]:
    """Form body of a refresh-token grant."""
    return {"client_id": client_id, "grant_type": "refresh_token", "refresh_token": refresh_token}


class TokenResponse(BaseModel):
    """Keycloak token response (lifetimes in seconds)."""

    model_config = ConfigDict(extra="ignore")

    access_token: str = Field(repr=False)
    expires_in: float
    refresh_token: str | None = Field(default=None, repr=False)
    refresh_expires_in: float | None = None
    token_type: str = "Bearer"


# --------------------------------------------------------------------------------------- CDR events
class MessageType(StrEnum):
    DIALOG_START = "dialog_start"
    DIALOG_STEP = "dialog_step"
    DIALOG_END = "dialog_end"


class EndType(StrEnum):
    NEAR_HUP = "NEAR_HUP"
    FAR_HUP = "FAR_HUP"
    NORMAL = "NORMAL"
    TRANSFER = "TRANSFER"


# ASSUMED: the "IVR end" of the seed is a dialog_step with this step name and a reason.
IVR_END_STEP = "ivr_end"

# Plausible values (every CDR path, push or export, shares them): a call time from 2000-01-01 to one day
# ahead of our clock (clock skew), a duration from 0 to 24 hours. Anything else is refused, never stored.
MIN_EVENT_TIME_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
FUTURE_SKEW_MS = 24 * 3600 * 1000
MAX_DURATION_MS = 24 * 3600 * 1000
# A push body's JSON may nest this deep (an event is 3 levels; deeper is hostile, not OCP).
MAX_JSON_DEPTH = 32


def check_event_time(field: str, value_ms: int, now_ms: int | None = None) -> int:
    """Return ``value_ms`` if it is a plausible call time (epoch ms), else raise ValueError saying why."""
    latest = (int(_clock.time() * 1000) if now_ms is None else now_ms) + FUTURE_SKEW_MS
    if not MIN_EVENT_TIME_MS <= value_ms <= latest:
        raise ValueError(
            f"{field} must be epoch milliseconds between 2000-01-01 and one day from now, got {value_ms}"
        )
    return value_ms


class Flow(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    account_id: str


# Dialog group ids as OCP's CDR schema shows them: ``<40 hex>.<epoch ms>.<hex>`` (the example has 86
# characters). The parts' lengths are read off one example, so any dot-separated alphanumeric runs are
# accepted, bounded in total. Dots only ever sit between two runs: no ``.``/``..`` segment, no separator,
# so the id is safe even where it ends up in a key or a path (today it is only ever a ledger value).
DIALOG_GROUP_MAX_LEN = 128
DIALOG_GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9][A-Za-z0-9_-]*)*$")


def dialog_group(value: object) -> str:
    """Validate a dialog group id: OCP's documented dotted form, or a plain token (1-128 characters)."""
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= DIALOG_GROUP_MAX_LEN
        or not DIALOG_GROUP_RE.fullmatch(value)
    ):
        raise ids.InvalidIdentifier(
            f"group must be 1-{DIALOG_GROUP_MAX_LEN} characters: runs of [A-Za-z0-9_-] starting with a "
            f"letter or digit, joined by single dots (OCP's documented <hex>.<epoch ms>.<hex>), "
            f"got {value!r:.80}"
        )
    return value


# ASSUMED: OCP's event ids are opaque; no form is documented. Printable text of any form is accepted; the
# bound only tells an id from a hostile record (ids in the wild are UUIDs, URNs, composite keys: < 200).
EVENT_ID_MAX_LEN = 1024


def event_id(value: object) -> str:
    """Validate a pushed event's ``event_id``: non-empty printable text, at most EVENT_ID_MAX_LEN long.

    Never a storage key as it is: the DynamoDB ledger keys its CDR inbox by ``ids.opaque_key(event_id)``
    (bounded, collision-free).
    """
    if not isinstance(value, str) or not 1 <= len(value) <= EVENT_ID_MAX_LEN or not value.isprintable():
        raise ids.InvalidIdentifier(
            f"event_id must be 1-{EVENT_ID_MAX_LEN} printable characters (OCP's opaque id), got {value!r:.80}"
        )
    return value


class CdrEvent(BaseModel):
    """One CDR event as OCP pushes it (and as CDR exports deliver it, one per NDJSON line)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    message_type: MessageType
    event_id: str  # ASSUMED: unique per event, identical on duplicate deliveries
    id: str  # the dialog id
    group: str  # dialog group (orchestrator dialog + its flow dialogs)
    ocp_group: str  # ASSUMED: the OCP group (export unit) is carried on every event
    connection_id: str
    time: int  # epoch ms
    flow: Flow
    destination_uri: str = ""
    origin_uri: str = ""
    direction: str = "inbound"
    channel: str = "voice"
    test_flag: bool = False
    # dialog_end only (seen in practice, not official)
    end_type: EndType | None = None
    duration: int | None = None  # ms
    # dialog_step only
    step: str | None = None
    reason: str | None = None

    @field_validator("id")
    @classmethod
    def _dialog_id(cls, value: str) -> str:
        return ids.dialog_id(value)

    @field_validator("ocp_group")
    @classmethod
    def _ocp_group(cls, value: str) -> str:
        return ids.ocp_group(value)

    @field_validator("group")
    @classmethod
    def _dialog_group(cls, value: str) -> str:
        return dialog_group(value)

    @field_validator("time")
    @classmethod
    def _time(cls, value: int) -> int:
        return check_event_time("time", value)

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= MAX_DURATION_MS:
            raise ValueError(f"duration must be 0..{MAX_DURATION_MS} ms (24 h), got {value}")
        return value

    @property
    def dialog_id(self) -> str:
        return self.id

    @property
    def is_ivr_end(self) -> bool:
        return self.message_type is MessageType.DIALOG_STEP and self.step == IVR_END_STEP

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


def validation_reason(exc: ValidationError) -> str:
    """``field: message`` of a record's first validation error (the field as a dotted path)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "event"
    return f"{where}: {first.get('msg', 'invalid')}"


def parse_cdr_ndjson(lines: Iterable[bytes | str]) -> tuple[list[CdrEvent], list[str]]:
    """Parse NDJSON CDR lines (a CDR export file); blank lines are skipped. Returns the events and, for each
    line that is not a valid event (not UTF-8, not JSON, an impossible value), why: one bad line never
    costs the file's other events. Reasons name the line and the field, never quote the whole line."""
    events: list[CdrEvent] = []
    refused: list[str] = []
    for number, line in enumerate(lines, 1):
        try:
            text = line.decode() if isinstance(line, bytes) else line
            if text.strip():
                events.append(CdrEvent.model_validate_json(text))
        except ValidationError as exc:
            refused.append(f"line {number}: {validation_reason(exc)}"[:200])
        except ValueError as exc:  # not UTF-8
            refused.append(f"line {number}: {type(exc).__name__}")
    return events, refused


@dataclass(frozen=True)
class MalformedRecord:
    """One record of a push body that could not be read (an NDJSON line that is not JSON, or too deep)."""

    reason: str


def _record_problem(value: Any, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why a pushed record cannot be taken, or None: nested deeper than ``limit`` levels (that reason first),
    or holding text that is not Unicode (JSON's ``"\\ud800"``: a lone surrogate, which no UTF-8 store,
    file or Parquet column can hold), named by its dotted path (``flow.name``). One iterative walk."""
    not_unicode: tuple[Any, ...] | None = None
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(value, 1, ())]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            if not_unicode is None and not item.isascii():
                try:
                    item.encode()
                except UnicodeEncodeError:
                    not_unicode = path
        elif isinstance(item, dict | list):
            if depth > limit:
                return f"JSON nested deeper than {limit} levels"
            for key, child in item.items() if isinstance(item, dict) else enumerate(item):
                where = (*path, key)
                if isinstance(key, str):  # a key is text too
                    stack.append((key, depth, where))
                stack.append((child, depth + 1, where))
    if not_unicode is None:
        return None
    dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in not_unicode).lstrip(".")
    return f"{dotted or 'record'}: text that is not Unicode (a lone surrogate escape such as \\ud800)"


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:  # the decoder's own depth guard: hostile input, not our fault
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None


def _record(value: Any) -> Any:
    problem = _record_problem(value)
    return value if problem is None else MalformedRecord(problem)


def parse_event_body(body: bytes) -> list[Any]:
    """Split a push body (one JSON object, a JSON array, or NDJSON) into its records.

    A body that is one JSON document gives that object, or the array's items. Otherwise each non-blank line
    is one record (NDJSON), and a line that is not JSON becomes a ``MalformedRecord`` so the rest of the
    batch is kept; so does a record nested deeper than ``MAX_JSON_DEPTH``. Raises ValueError (with a reason
    that never quotes the body) when the body is not UTF-8 or no line of it is JSON.
    """
    text = body.decode().strip()  # UnicodeDecodeError is a ValueError
    if not text:
        return []
    try:
        loaded = _loads(text)
    except ValueError as whole:
        # JSON strings cannot hold a raw newline, so NDJSON splits on it alone.
        lines = [line.strip() for line in text.split("\n")]
        lines = [line for line in lines if line]
        if len(lines) < 2:
            raise
        records: list[Any] = []
        for number, line in enumerate(lines, 1):
            try:
                records.append(_record(_loads(line)))
            except ValueError as exc:
                records.append(MalformedRecord(f"line {number} is not JSON: {str(exc)[:120]}"))
        if all(isinstance(r, MalformedRecord) for r in records):
            raise whole from None
        return records
    if isinstance(loaded, list):
        return [_record(item) for item in loaded]
    return [_record(loaded)]


# ------------------------------------------------------------------------------------ recordings
@dataclass(frozen=True)
class RecordingName:
    """Parts of an OCP recording file name ``{ocp_group}~{account_id}~{dialog_timestamp}~{dialog_id}.wav``."""

    ocp_group: str
    account_id: str
    dialog_timestamp: int  # ASSUMED: dialog start, epoch ms
    dialog_id: str

    @property
    def filename(self) -> str:
        return f"{self.ocp_group}~{self.account_id}~{self.dialog_timestamp}~{self.dialog_id}.wav"


def recording_filename(ocp_group: str, account_id: str, dialog_timestamp: int, dialog_id: str) -> str:
    """OCP's recording file name, with every part validated (the name becomes a key)."""
    return RecordingName(
        ids.ocp_group(ocp_group),
        ids.token("account_id", account_id),
        int(dialog_timestamp),
        ids.dialog_id(dialog_id),
    ).filename


# ASCII digits only (str.isdigit and int() also take other scripts' digits); at most 16 (epoch ms).
_TIMESTAMP_RE = re.compile(r"[0-9]{1,16}")
MAX_RECORDING_NAME = 255  # 64 + 64 + 16 + 32 + separators fit well below; a longer name is not OCP's


def parse_recording_filename(name: str) -> RecordingName:
    """Parse and validate an OCP recording file name; raise ids.InvalidIdentifier if it is not one."""
    if (
        not isinstance(name, str)
        or len(name) > MAX_RECORDING_NAME
        or not name.endswith(".wav")
        or "/" in name
    ):
        raise ids.InvalidIdentifier(f"not an OCP recording file name: {str(name)[:80]!r}")
    parts = name.removesuffix(".wav").split("~")
    if len(parts) != 4 or not _TIMESTAMP_RE.fullmatch(parts[2]):
        raise ids.InvalidIdentifier(f"not an OCP recording file name: {name[:80]!r}")
    try:
        timestamp = check_event_time("the file name's dialog timestamp", int(parts[2]))
    except ValueError as exc:
        raise ids.InvalidIdentifier(str(exc)) from None
    return RecordingName(
        ids.ocp_group(parts[0]), ids.token("account_id", parts[1]), timestamp, ids.dialog_id(parts[3])
    )


# ----------------------------------------------------------------------------------- Exports API
EXPORTS_PATH = "/v1/exports"
MIN_WINDOW = timedelta(hours=1)
MAX_WINDOW = timedelta(days=2)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def path_segment(value: str) -> str:
    """One opaque id (export id, file id) as a URL path segment: every reserved byte percent-encoded.

    OCP's ids are theirs: dots, any length and any character are passed through, never parsed. A segment
    made only of dots is encoded too, so no HTTP stack can read it as ``.``/``..`` and climb the path.
    """
    if not isinstance(value, str) or not value:
        raise ValueError("an OCP id in a request path must be a non-empty string")
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if not quoted.strip(".") else quoted


def export_path(export_id: str) -> str:
    return f"{EXPORTS_PATH}/{path_segment(export_id)}"


def export_files_path(export_id: str) -> str:
    return f"{export_path(export_id)}/files"


def export_file_path(export_id: str, file_id: str) -> str:
    return f"{export_files_path(export_id)}/{path_segment(file_id)}"


class DataType(StrEnum):
    DIALOG_START = "dialog_start"
    DIALOG_STEP = "dialog_step"
    DIALOG_END = "dialog_end"
    ALL = "ALL"
    RECORDINGS = "recordings"  # ASSUMED name for "Whole Call Recordings"


class ExportStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"

    @property
    def is_active(self) -> bool:
        """True while the export blocks its group (one export at a time per group)."""
        return self in (ExportStatus.PENDING, ExportStatus.PROCESSING)


def _hour(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def align_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """Apply OCP's window rule: truncate both ends to the hour, then require 1 h <= length <= 2 days.

    Raises ValueError with a readable message (the simulator answers it as 422).
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("export window bounds must carry a time zone (ISO 8601 with offset or Z)")
    aligned = _hour(start), _hour(end)
    length = aligned[1] - aligned[0]
    if length < MIN_WINDOW:
        raise ValueError(
            f"export window must be at least 1 hour after truncating to the hour, got {length} "
            f"({aligned[0].isoformat()} .. {aligned[1].isoformat()})"
        )
    if length > MAX_WINDOW:
        raise ValueError(
            f"export window must be at most 2 days after truncating to the hour, got {length} "
            f"({aligned[0].isoformat()} .. {aligned[1].isoformat()})"
        )
    return aligned


class ExportRequest(BaseModel):
    """Body of ``POST /v1/exports``."""

    model_config = ConfigDict(extra="forbid")

    group: str
    start: AwareDatetime
    end: AwareDatetime
    data_types: list[DataType] = Field(min_length=1)

    @field_validator("group")
    @classmethod
    def _group(cls, value: str) -> str:
        return ids.ocp_group(value)


class ExportCounts(BaseModel):
    files: int = 0
    dialogs: int = 0
    bytes: int = 0
    skipped: int = 0  # e.g. recordings not available (yet)


class Export(BaseModel):
    """An export job as ``POST /v1/exports`` (201) and ``GET /v1/exports/{id}`` return it."""

    model_config = ConfigDict(extra="ignore")

    export_id: str
    group: str
    start: AwareDatetime
    end: AwareDatetime
    data_types: list[DataType]
    status: ExportStatus
    created_at: AwareDatetime
    expires_at: AwareDatetime
    counts: ExportCounts = Field(default_factory=ExportCounts)
    error: str | None = None


class ExportFile(BaseModel):
    """One downloadable file of a completed export (an entry of the files listing).

    A recording's documented fact is its file name: when the listing omits ``dialog_id`` (or the other
    call fields), they are read from the name. A ``dialog_id`` that contradicts the name, or a recording
    that can be tied to no call at all, is refused (ValueError) rather than guessed.
    """

    model_config = ConfigDict(extra="ignore")

    file_id: str
    name: str
    size: int
    sha256: str
    data_type: DataType
    content_type: str = "application/octet-stream"
    # recordings: the call it belongs to
    dialog_id: str | None = None
    ocp_group: str | None = None
    account_id: str | None = None
    dialog_timestamp: int | None = None
    # CDR files: the hour they cover
    window_start: AwareDatetime | None = None
    window_end: AwareDatetime | None = None

    @model_validator(mode="after")
    def _call_from_name(self) -> ExportFile:
        if self.data_type is not DataType.RECORDINGS:
            return self
        listed = ids.dialog_id(self.dialog_id) if self.dialog_id is not None else None
        try:
            named: RecordingName | None = parse_recording_filename(self.name)
        except ids.InvalidIdentifier:
            named = None
        if named is None:
            if listed is None:
                raise ValueError(f"recording {self.name[:120]!r} has no dialog_id and its name is not OCP's")
            self.dialog_id = listed
            return self
        if listed is not None and listed != named.dialog_id:
            raise ValueError(
                f"recording {self.name[:120]!r}: listed dialog_id {listed} contradicts its name's "
                f"{named.dialog_id}"
            )
        self.dialog_id = named.dialog_id
        if self.ocp_group is None:
            self.ocp_group = named.ocp_group
        if self.account_id is None:
            self.account_id = named.account_id
        if self.dialog_timestamp is None:
            self.dialog_timestamp = named.dialog_timestamp
        return self


class RefusedFile(BaseModel):
    """A listing entry that could not be read as an :class:`ExportFile`, and why (never downloaded)."""

    entry: dict[str, Any]
    reason: str


class FilePage(BaseModel):
    """``GET /v1/exports/{id}/files?page_token=&page_size=``; ``next_page_token`` is None on the last page.

    One unreadable entry does not hide the rest of the page: it lands in ``refused`` with its reason
    (parsing a response only, never sent: the simulator serialises ``files``).
    """

    files: list[ExportFile]
    next_page_token: str | None = None
    refused: list[RefusedFile] = Field(default_factory=list, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _split_refused(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("files"), list):
            return data
        files: list[Any] = []
        refused: list[RefusedFile] = list(data.get("refused") or [])
        for entry in data["files"]:
            if isinstance(entry, ExportFile):
                files.append(entry)
                continue
            try:
                files.append(ExportFile.model_validate(entry))
            except ValidationError as exc:
                reason = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in exc.errors()
                )
                shown = (
                    {k: v for k, v in entry.items() if k in _REFUSED_KEYS} if isinstance(entry, dict) else {}
                )
                refused.append(RefusedFile(entry=shown, reason=reason[:500]))
        return {**data, "files": files, "refused": refused}


# What a refused entry keeps for the log: what names the file, never its whole (untrusted) body.
_REFUSED_KEYS = ("file_id", "name", "data_type", "dialog_id", "size")


class ErrorBody(BaseModel):
    """Error responses: a machine code and a human message (never secrets)."""

    error: str
    message: str


# Error codes the simulator sends (a real tenant's bodies may differ: the client keys on HTTP status).
ERR_INVALID_WINDOW = "invalid_window"
ERR_VALIDATION = "validation_error"
ERR_CONFLICT = "export_conflict"
ERR_EXPIRED = "export_expired"
ERR_NOT_READY = "export_not_ready"
ERR_FAILED = "export_failed"
ERR_NOT_FOUND = "not_found"
ERR_UNAUTHORIZED = "unauthorized"
ERR_RATE_LIMITED = "rate_limited"
ERR_UNAVAILABLE = "unavailable"

# -------------------------------------------------------------------------------- push (realtime)
# Where the platform pushes to (the receiver implements these); signing lives in ocp_ingest.receiver.auth.
PUSH_EVENTS_PATH = "/v1/events"
PUSH_RECORDINGS_PREFIX = "/v1/recordings/"
AUDIO_CONTENT_TYPE = "audio/wav"
NDJSON_CONTENT_TYPE = "application/x-ndjson"


def push_recording_path(filename: str) -> str:
    return PUSH_RECORDINGS_PREFIX + quote(filename, safe="~")


JsonKind = Literal["array", "ndjson"]


def event_body(events: Iterable[CdrEvent], kind: JsonKind = "array") -> bytes:
    """Encode events as a push body (JSON array or NDJSON)."""
    encoded = [e.to_json() for e in events]
    if kind == "ndjson":
        return b"\n".join(encoded) + b"\n"
    return b"[" + b",".join(encoded) + b"]"
