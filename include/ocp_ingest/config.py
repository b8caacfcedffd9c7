"""All configuration in one place: each setting defined once (name, type, default, description).

Every field of :class:`Settings` is read from ``OCP_INGEST_<NAME>`` (pydantic-settings); an empty variable
counts as unset. The embedded default (SQLite ledger, local disk under ``<project>/var``) needs no variable
at all: the ledger file and the storage roots are derived from ``OCP_INGEST_HOME``.

A bad value fails with one line per variable naming it and the expected form (:class:`SettingsError`); an
unknown ``OCP_INGEST_*`` variable (a misspelling) is logged once with the closest known name. Secrets (OCP
credentials, AWS keys, the receiver's secret) are never fields: they come from Airflow Connections, the
standard AWS environment or are read by their one user (:data:`READ_ELSEWHERE`), and never appear here.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import AliasChoices, Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PREFIX = "OCP_INGEST_"

log = logging.getLogger(__name__)

#: OCP_INGEST_* variables read by their one user rather than through Settings (secrets never become fields):
#: the receiver's secret (receiver/app.py) and the simulator's push credentials (dev harness).
READ_ELSEWHERE = frozenset(
    {
        PREFIX + "RECEIVER_SECRET",
        PREFIX + "PUSH_SIGNING_SECRET",
        PREFIX + "PUSH_SHARED_SECRET",
        PREFIX + "CHROMIUM",  # the dev harness's browser checks: which Chromium to drive
    }
)

SOURCE_ENV = "environment"
SOURCE_DEFAULT = "default"
SOURCE_DERIVED = f"derived from {PREFIX}HOME"
SOURCE_GIVEN = "given"


def _project_root() -> Path | None:
    # Editable install: include/ocp_ingest/config.py -> project root two levels above the package.
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").exists() else None


def default_home() -> Path:
    """Where the embedded default keeps its data: ``<project>/var`` or ``~/.ocp-ingest``."""
    root = _project_root()
    return root / "var" if root else Path.home() / ".ocp-ingest"


#: Settings whose default lives under the home directory (OCP_INGEST_HOME).
DERIVED_FROM_HOME: dict[str, Callable[[Path], object]] = {
    "ledger_sqlite_path": lambda home: home / "ledger.sqlite3",
    "recordings_url": lambda home: (home / "recordings").as_uri(),
    "landing_url": lambda home: (home / "landing").as_uri(),
    "quarantine_url": lambda home: (home / "quarantine").as_uri(),
    "audit_url": lambda home: (home / "audit").as_uri(),
}


class SettingsError(ValueError):
    """One or more settings have values that cannot work; one line per variable."""


def _home(value: object) -> Path:
    return Path(str(value) if value not in (None, "") else default_home()).expanduser().resolve()


def _object_lock_days(raw: str) -> dict[str, int]:
    raw = raw.strip()
    if not raw:
        return {}
    value = json.loads(raw)  # ValueError on malformed JSON
    days = {"default": value} if isinstance(value, int) else dict(value)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in days.values()):
        raise ValueError("days must be positive integers")
    return {str(k): int(v) for k, v in days.items()}


class Settings(BaseSettings):
    """Resolved settings. Build with :meth:`from_env`; every field maps to ``OCP_INGEST_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_ignore_empty=True,
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
    )

    home: Path = Field(
        default_factory=default_home,
        description="Where the embedded default keeps its data (ledger file, storage roots): "
        "<project>/var in a checkout, else ~/.ocp-ingest.",
    )
    # Ledger
    ledger_backend: Literal["sqlite", "dynamodb"] = Field(
        "sqlite", description="The call ledger: 'sqlite' (embedded default) or 'dynamodb' (production)."
    )
    ledger_sqlite_path: Path = Field(description="The SQLite ledger file.")
    dynamodb_table: str = Field("ocp_call_ledger", description="The DynamoDB ledger table.")
    dynamodb_endpoint_url: str | None = Field(
        None, description="Only for local DynamoDB endpoints (moto, DynamoDB Local)."
    )
    aws_region: str = Field(
        "eu-west-1",
        validation_alias=AliasChoices("AWS_DEFAULT_REGION", "AWS_REGION"),
        description="AWS region, from the standard AWS_DEFAULT_REGION or AWS_REGION.",
    )
    # Storage and audit
    recordings_url: str = Field(
        description="Recordings root, file:// or s3://. '{lob}' selects bucket-per-LOB "
        "(s3://aws_default@recordings-{lob}); without it the LOB is the first key segment."
    )
    landing_url: str = Field(description="Where pushed recordings land before checks (file:// or s3://).")
    quarantine_url: str = Field(description="Where recordings that fail checks are kept (file:// or s3://).")
    audit_url: str = Field(
        description="Append-only records for auditors (CDR manifest, audit events, snapshots)."
    )
    sse_kms_key_id: str | None = Field(None, description="KMS key for S3 server-side encryption.")
    audit_events: bool = Field(True, description="Write every ledger transition as a Parquet audit row.")
    audit_batch_size: int = Field(1000, ge=1, description="Audit rows per Parquet file.")
    # Realtime fan-out
    realtime_max_shards: int = Field(
        8, ge=1, le=64, description="Most mapped store tasks per realtime run (any worker takes any shard)."
    )
    realtime_shard_size: int = Field(
        200, ge=1, description="Landed recordings per shard before the realtime run adds another shard."
    )
    realtime_batch_size: int = Field(
        500, ge=1, description="Most recordings one shard stores per run (the rest: the next run)."
    )
    report_sla_hours: float = Field(
        24.0, gt=0, description="Calls ended and unresolved longer than this fail the daily report."
    )
    object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] | None = Field(
        None, description="S3 Object Lock (WORM) on every recording write; unset: off."
    )
    object_lock_days: str = Field(
        "",
        description='Retention days: a number, or a JSON map per LOB with an optional "default" '
        '(e.g. {"default": 3650, "cards": 2555}).',
        json_schema_extra={"expected": "a number of days or a JSON map per LOB"},
    )
    lob_routing_file: Path | None = Field(None, description="LOB routing (TOML); unset: the packaged one.")
    # Audio checks
    duration_tolerance_s: float = Field(
        2.0, ge=0, description="Decoded vs CDR duration may differ by max(this, ratio * CDR duration)."
    )
    duration_tolerance_ratio: float = Field(0.02, ge=0, description="See duration_tolerance_s.")
    max_recording_bytes: int = Field(
        2 * 1024**3, gt=0, description="Largest recording accepted anywhere (2 GiB: a 30-hour PCM call)."
    )
    # Receiver (its secret is OCP_INGEST_RECEIVER_SECRET, read by the receiver only)
    receiver_auth: Literal["hmac", "shared"] = Field("hmac", description="How pushes authenticate.")
    receiver_host: str = Field("127.0.0.1", description="Receiver bind address.")
    receiver_port: int = Field(8787, ge=0, le=65535, description="Receiver port.")
    receiver_replay_window_s: float = Field(300.0, gt=0, description="Signed pushes older than this fail.")
    receiver_audit_publish_s: float = Field(
        1.0,
        gt=0,
        le=300,
        description="How often the receiver publishes its audit events to Parquet (each is durable in the "
        "ledger's outbox before the answer; a clean stop publishes the rest).",
    )
    max_event_body_bytes: int = Field(5 * 1024 * 1024, gt=0, description="Largest event body accepted.")
    # Reconciliation policy
    pending_grace_s: float = Field(
        900.0, ge=0, description="A call is pending once it ended this long ago without its recording."
    )
    open_call_timeout_s: float = Field(
        4 * 3600.0,
        gt=0,
        description="A call with dialog_start but no dialog_end this long after its start lost its "
        "dialog_end; reconciliation asks OCP for its window.",
    )
    sweep_ocp_groups: str = Field(
        "",
        description="OCP groups (comma-separated) whose closed hours are diffed once against OCP's CDRs; "
        "empty: no sweep.",
    )
    sweep_lookback_hours: float = Field(48.0, gt=0, description="Hours older than this are not swept.")
    max_retry_count: int = Field(5, ge=0, description="Attempts before a call is escalated.")
    ocp_retention_days: int = Field(60, gt=0, description="How long OCP keeps a call.")
    retention_safety_days: int = Field(
        5, ge=0, description="Escalate this many days before OCP purges a call."
    )
    # Reconciliation DAG
    reconciliation_schedule: str = Field(
        "*/30 * * * *", description="ocp_reconciliation's cadence (cron or preset), read at DAG parse."
    )
    reconciliation_max_pending: int = Field(
        0,
        ge=0,
        description="Pending calls one run reads, oldest first; 0: all of them (read page by page, kept "
        "in a manifest, not an XCom).",
    )
    reconciliation_exports_per_group: int = Field(
        4,
        ge=1,
        le=24,
        description="Exports one run chains per OCP group, one at a time (2 days each: 4 cover a week); "
        "read at DAG parse (one task group per link of the chain).",
    )
    reconciliation_max_calls_per_plan: int = Field(
        0,
        ge=0,
        description="Calls one export plan takes; 0: no cap (a plan's call list is a manifest object in "
        "storage, and OCP's 2-day window bounds a plan).",
    )
    # Waiting for an export (in the triggerer)
    export_poll_interval_s: float = Field(30.0, gt=0, description="First poll interval.")
    export_poll_backoff: float = Field(1.5, ge=1, description="Poll interval growth factor.")
    export_poll_max_interval_s: float = Field(300.0, gt=0, description="Largest poll interval.")
    export_max_polls: int = Field(500, ge=1, description="Polls before the wait ends as a timeout.")
    export_max_wait_s: float = Field(6 * 3600.0, gt=0, description="Wait before it ends as a timeout.")
    export_max_recreates: int = Field(2, ge=0, description="Re-creations of an expired export per run.")
    export_max_throttled_s: float = Field(
        24 * 3600.0,
        gt=0,
        description="Total time one export's request and wait may spend waiting out OCP's throttling "
        "(429, or 5xx with a Retry-After): OCP's state, never an attempt against the calls.",
    )
    # Download
    download_mode: Literal["inprocess", "kubernetes"] = Field(
        "inprocess", description="Where the download runs: a task on the worker or a pod."
    )
    download_workers: int = Field(4, ge=1, description="Parallel downloads.")
    download_nice: int = Field(
        5,
        ge=0,
        le=19,
        description="How much lower than their task's CPU priority the download threads run (Linux nice): "
        "the bulk transfer yields the CPU to the scheduler, triggerer and API on a shared worker; 0: equal.",
    )
    download_max_resumes: int = Field(5, ge=0, description="Resumes of one interrupted download.")
    download_timeout_s: float = Field(
        6 * 3600.0,
        gt=0,
        description="The most one export plan's download may take, as a task (its execution_timeout) or "
        "as a pod (its activeDeadlineSeconds); then that attempt fails and is retried.",
    )
    # Download pod (download_mode=kubernetes)
    image: str = Field("ocp-ingest:latest", description="The download pod's image.")
    k8s_namespace: str = Field("ocp-ingest", description="The download pod's namespace.")
    k8s_service_account: str = Field("ocp-ingest-downloader", description="Its service account.")
    k8s_configmap: str = Field("ocp-ingest-config", description="ConfigMap of OCP_INGEST_* it reads.")
    k8s_secret: str = Field("ocp-ingest-secrets", description="Secret (OCP connection, AWS) it reads.")
    download_pod_cpu: str = Field("1", description="Its CPU request.")
    download_pod_memory: str = Field("1Gi", description="Its memory request.")

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)  # no .env or secrets files: the environment only

    # -- validation ------------------------------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _derive_from_home(cls, data: Any) -> Any:
        if isinstance(data, dict):
            home = _home(data.get("home"))
            data = {**data, "home": home}
            for name, derive in DERIVED_FROM_HOME.items():
                if data.get(name) in (None, ""):
                    data[name] = derive(home)
        return data

    @field_validator("ledger_backend", "receiver_auth", "download_mode", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("object_lock_mode", mode="before")
    @classmethod
    def _upper_or_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().upper() or None
        return value

    @field_validator("sse_kms_key_id", "dynamodb_endpoint_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("lob_routing_file", mode="before")
    @classmethod
    def _no_path_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("recordings_url", "landing_url", "quarantine_url", "audit_url")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        if not value.startswith(("file://", "s3://")):
            raise ValueError("not a file:// or s3:// URL")
        return value

    @field_validator("object_lock_days")
    @classmethod
    def _lock_days(cls, value: str) -> str:
        _object_lock_days(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.retention_safety_days >= self.ocp_retention_days:
            raise ValueError(
                f"{PREFIX}RETENTION_SAFETY_DAYS ({self.retention_safety_days}) must be smaller than "
                f"{PREFIX}OCP_RETENTION_DAYS ({self.ocp_retention_days})"
            )
        return self

    # -- building --------------------------------------------------------------------------------------

    def __init__(self, **values: Any) -> None:
        """Settings from the environment, with ``values`` taking precedence; :class:`SettingsError` if bad."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(explain(exc, values)) from None
        self._sources = _sources(values, os.environ)

    @classmethod
    def from_env(cls) -> Settings:
        """Read every setting from the environment, falling back to the defaults; warn of unknown names."""
        warn_unknown(os.environ)
        return cls()

    # -- reading ---------------------------------------------------------------------------------------

    @property
    def sweep_groups(self) -> tuple[str, ...]:
        return tuple(g.strip() for g in self.sweep_ocp_groups.split(",") if g.strip())

    def object_lock_days_by_lob(self) -> dict[str, int]:
        """``OCP_INGEST_OBJECT_LOCK_DAYS`` as ``{lob or "default": days}`` (a bare number is the default)."""
        return _object_lock_days(self.object_lock_days)

    def object_lock_days_for(self, lob: str) -> int | None:
        """Retention days for a LOB's recordings, or None when WORM is off for it."""
        if self.object_lock_mode is None:
            return None
        days = self.object_lock_days_by_lob()
        return days.get(lob, days.get("default"))

    def describe(self) -> dict[str, str]:
        """Settings as ``{ENV_NAME: value}`` for `ocp-ingest config` (nothing secret lives here)."""
        return {variable(name): str(getattr(self, name)) for name in type(self).model_fields}

    def sources(self) -> dict[str, str]:
        """Where each value came from, as ``{ENV_NAME: environment | default | derived from ... | given}``."""
        return {variable(name): self._sources.get(name, SOURCE_DEFAULT) for name in type(self).model_fields}


def variable(name: str) -> str:
    """The environment variable a field is read from (the AWS region uses the standard AWS names)."""
    return "AWS_DEFAULT_REGION" if name == "aws_region" else PREFIX + name.upper()


def known_variables() -> frozenset[str]:
    """Every OCP_INGEST_* variable the code reads: the settings and :data:`READ_ELSEWHERE`."""
    names = {variable(name) for name in Settings.model_fields}
    return frozenset({n for n in names if n.startswith(PREFIX)} | READ_ELSEWHERE)


def _env_names(name: str) -> tuple[str, ...]:
    return ("AWS_DEFAULT_REGION", "AWS_REGION") if name == "aws_region" else (PREFIX + name.upper(),)


def _sources(values: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    sources = {}
    for name in Settings.model_fields:
        if name in values:
            sources[name] = SOURCE_GIVEN
        elif any(environ.get(env) for env in _env_names(name)):
            sources[name] = SOURCE_ENV
        elif name in DERIVED_FROM_HOME:
            sources[name] = SOURCE_DERIVED
        else:
            sources[name] = SOURCE_DEFAULT
    return sources


_warned: set[str] = set()


def warn_unknown(environ: Mapping[str, str]) -> list[str]:
    """Log each unknown OCP_INGEST_* variable once per process, with the closest known name; return them."""
    known = known_variables()
    unknown = sorted(k for k in environ if k.startswith(PREFIX) and k not in known)
    for name in unknown:
        if name in _warned:
            continue
        _warned.add(name)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        log.warning("%s is not a setting and is ignored%s", name, hint)
    return unknown


# -- error messages -------------------------------------------------------------------------------------

_UNITS = {"_s": "seconds", "_hours": "hours", "_days": "days", "_bytes": "bytes"}
_BOUNDS: dict[type, tuple[str, str]] = {
    annotated_types.Gt: (">", "gt"),
    annotated_types.Ge: (">=", "ge"),
    annotated_types.Lt: ("<", "lt"),
    annotated_types.Le: ("<=", "le"),
}


def expected_form(name: str) -> str:
    """What a field's variable must hold, in words (from its type, bounds and name)."""
    field = Settings.model_fields[name]
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("expected"), str):
        return str(extra["expected"])
    annotation: Any = field.annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if annotation is bool:
        return "true or false"
    if name.endswith("_url") and name in DERIVED_FROM_HOME:
        return "a file:// or s3:// URL"
    unit = next((u for suffix, u in _UNITS.items() if name.endswith(suffix)), None)
    if annotation is int:
        text = f"a whole number of {unit}" if unit else "a whole number"
    elif annotation is float:
        text = f"a number of {unit}" if unit else "a number"
    elif annotation is Path:
        return "a path"
    else:
        return "text"
    bounds = [
        f"{_BOUNDS[type(m)][0]} {getattr(m, _BOUNDS[type(m)][1])}"
        for m in field.metadata
        if type(m) in _BOUNDS
    ]
    return text + (" " + " and ".join(bounds) if bounds else "")


def explain(exc: ValidationError, values: Mapping[str, Any] | None = None) -> str:
    """A ValidationError as one line per bad variable: ``NAME: expected <form>, got <value>``."""
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        loc = error.get("loc", ())
        name = str(loc[0]) if loc else ""
        if name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
            name = "aws_region"
        if name in Settings.model_fields:
            line = f"{variable(name)}: expected {expected_form(name)}, got {error.get('input')!r}"
        elif not loc and error.get("type") == "value_error":
            line = str(error.get("ctx", {}).get("error") or error.get("msg"))
        else:
            line = f"{name or 'settings'}: {error.get('msg')}"
        if line not in lines:
            lines.append(line)
    return "\n".join(lines)
