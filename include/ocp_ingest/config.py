"""All configuration in one place: environment variables with documented defaults.

The embedded default (SQLite ledger, local disk under ``<project>/var``) needs no variable at all.
Secrets (OCP credentials, AWS keys) are never read here: they come from Airflow Connections
(``ocp_default``, ``aws_default``) or the standard AWS environment, and never appear in a repr.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

PREFIX = "OCP_INGEST_"


def _project_root() -> Path | None:
    # Editable install: include/ocp_ingest/config.py -> project root two levels above the package.
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").exists() else None


def default_home() -> Path:
    """Where the embedded default keeps its data: ``<project>/var`` or ``~/.ocp-ingest``."""
    root = _project_root()
    return root / "var" if root else Path.home() / ".ocp-ingest"


def _env(name: str, default: str) -> str:
    value = os.environ.get(PREFIX + name)
    return value if value not in (None, "") else default


def _env_float(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{PREFIX}{name} must be a number, got {raw!r}") from exc


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{PREFIX}{name} must be an integer, got {raw!r}") from exc


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name, "true" if default else "false").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{PREFIX}{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :meth:`from_env`; every field maps to ``OCP_INGEST_<NAME>``."""

    home: Path
    # Ledger: "sqlite" (embedded default) or "dynamodb" (production).
    ledger_backend: str = "sqlite"
    ledger_sqlite_path: Path = field(default=Path())
    dynamodb_table: str = "ocp_call_ledger"
    # Only for local DynamoDB endpoints (moto, DynamoDB Local); production uses the regional endpoint.
    dynamodb_endpoint_url: str | None = None
    aws_region: str = "eu-west-1"
    # Storage roots as file:// or s3:// URLs. ``{lob}`` in recordings_url selects bucket-per-LOB
    # (s3://aws_default@recordings-{lob}); without it the LOB becomes the first key segment.
    recordings_url: str = ""
    landing_url: str = ""
    quarantine_url: str = ""
    # Append-only records for auditors and analysts (CDR manifest, audit events, snapshots).
    audit_url: str = ""
    sse_kms_key_id: str | None = None
    # Audit trail: every applied ledger transition as a Parquet row under audit_url/audit_events/.
    audit_events: bool = True
    audit_batch_size: int = 1000
    # Completeness report: calls ended and unresolved longer than this fail the daily report DAG.
    report_sla_hours: float = 24.0
    # WORM: S3 Object Lock on every recording write. Mode GOVERNANCE or COMPLIANCE (None: off); days is
    # a number or a JSON map per LOB with an optional "default" (e.g. {"default": 3650, "cards": 2555}).
    object_lock_mode: str | None = None
    object_lock_days: str = ""
    lob_routing_file: Path | None = None
    # Audio checks: decoded duration may differ from the CDR duration by max(abs, ratio * cdr).
    duration_tolerance_s: float = 2.0
    duration_tolerance_ratio: float = 0.02
    # Largest recording accepted anywhere (bytes). 2 GiB covers a 30-hour PCM call.
    max_recording_bytes: int = 2 * 1024**3
    # Receiver (the ingress for OCP pushes). The secret itself comes from OCP_INGEST_RECEIVER_SECRET
    # and is read by the receiver only; it is not a field here so it can never be printed.
    receiver_auth: str = "hmac"
    receiver_host: str = "127.0.0.1"
    receiver_port: int = 8787
    receiver_replay_window_s: float = 300.0
    max_event_body_bytes: int = 5 * 1024 * 1024
    # Reconciliation policy (used by the ledger's pending query and escalation).
    pending_grace_s: float = 900.0
    # A call with a dialog_start but no dialog_end this long after its start is "open": its dialog_end
    # was lost (no call lasts that long), so reconciliation asks OCP for its window like a pending call.
    open_call_timeout_s: float = 4 * 3600.0
    # OCP groups whose every closed hour is diffed once against OCP's dialog_end CDRs (comma-separated;
    # empty: no sweep), finding calls whose events were all lost; hours older than the lookback are left.
    sweep_ocp_groups: str = ""
    sweep_lookback_hours: float = 48.0
    max_retry_count: int = 5
    ocp_retention_days: int = 60
    # Escalate this many days before OCP purges a call, so a human still has time to act.
    retention_safety_days: int = 5
    # Reconciliation DAG (ocp_reconciliation). Cadence (cron or preset), read when the DAG is parsed.
    reconciliation_schedule: str = "*/30 * * * *"
    # Pending calls one run reads (oldest first) and calls one export plan may carry. The plan travels
    # as one command-line argument to the download pod: 3000 dialog ids stay under Linux's 128 KiB limit.
    reconciliation_max_pending: int = 20000
    reconciliation_max_calls_per_plan: int = 3000
    # Waiting for an export (in the triggerer): first poll interval, backoff factor, largest interval,
    # and the bounds after which the wait ends as a timeout (counted as an attempt).
    export_poll_interval_s: float = 30.0
    export_poll_backoff: float = 1.5
    export_poll_max_interval_s: float = 300.0
    export_max_polls: int = 500
    export_max_wait_s: float = 6 * 3600.0
    # An export that expired (results kept 1 day) is re-created at most this many times per run.
    export_max_recreates: int = 2
    # How long one export's request and wait may spend waiting out OCP's throttling (429, or 5xx with a
    # Retry-After) in the triggerer, in total: OCP's state, never an attempt against the calls.
    export_max_throttled_s: float = 24 * 3600.0
    # Where the heavy download runs: "inprocess" (a task on the worker) or "kubernetes" (a pod).
    download_mode: str = "inprocess"
    download_workers: int = 4
    download_max_resumes: int = 5
    # Download pod (download_mode=kubernetes): image, namespace, service account, resources, and the
    # ConfigMap (OCP_INGEST_* settings) and Secret (AIRFLOW_CONN_OCP_DEFAULT, AWS) it reads by reference.
    image: str = "ocp-ingest:latest"
    k8s_namespace: str = "ocp-ingest"
    k8s_service_account: str = "ocp-ingest-downloader"
    k8s_configmap: str = "ocp-ingest-config"
    k8s_secret: str = "ocp-ingest-secrets"
    download_pod_cpu: str = "1"
    download_pod_memory: str = "1Gi"

    @classmethod
    def from_env(cls) -> Settings:
        """Read every setting from the environment, falling back to the embedded defaults."""
        home = Path(_env("HOME", str(default_home()))).expanduser().resolve()
        routing = _env("LOB_ROUTING_FILE", "")
        return cls(
            home=home,
            ledger_backend=_env("LEDGER_BACKEND", "sqlite").lower(),
            ledger_sqlite_path=Path(_env("LEDGER_SQLITE_PATH", str(home / "ledger.sqlite3"))),
            dynamodb_table=_env("DYNAMODB_TABLE", "ocp_call_ledger"),
            dynamodb_endpoint_url=_env("DYNAMODB_ENDPOINT_URL", "") or None,
            aws_region=os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "eu-west-1",
            recordings_url=_env("RECORDINGS_URL", (home / "recordings").as_uri()),
            landing_url=_env("LANDING_URL", (home / "landing").as_uri()),
            quarantine_url=_env("QUARANTINE_URL", (home / "quarantine").as_uri()),
            audit_url=_env("AUDIT_URL", (home / "audit").as_uri()),
            sse_kms_key_id=_env("SSE_KMS_KEY_ID", "") or None,
            audit_events=_env_bool("AUDIT_EVENTS", True),
            audit_batch_size=_env_int("AUDIT_BATCH_SIZE", 1000),
            report_sla_hours=_env_float("REPORT_SLA_HOURS", 24.0),
            object_lock_mode=_env("OBJECT_LOCK_MODE", "").upper() or None,
            object_lock_days=_env("OBJECT_LOCK_DAYS", ""),
            lob_routing_file=Path(routing) if routing else None,
            duration_tolerance_s=_env_float("DURATION_TOLERANCE_S", 2.0),
            duration_tolerance_ratio=_env_float("DURATION_TOLERANCE_RATIO", 0.02),
            max_recording_bytes=_env_int("MAX_RECORDING_BYTES", 2 * 1024**3),
            receiver_auth=_env("RECEIVER_AUTH", "hmac").lower(),
            receiver_host=_env("RECEIVER_HOST", "127.0.0.1"),
            receiver_port=_env_int("RECEIVER_PORT", 8787),
            receiver_replay_window_s=_env_float("RECEIVER_REPLAY_WINDOW_S", 300.0),
            max_event_body_bytes=_env_int("MAX_EVENT_BODY_BYTES", 5 * 1024 * 1024),
            pending_grace_s=_env_float("PENDING_GRACE_S", 900.0),
            open_call_timeout_s=_env_float("OPEN_CALL_TIMEOUT_S", 4 * 3600.0),
            sweep_ocp_groups=_env("SWEEP_OCP_GROUPS", ""),
            sweep_lookback_hours=_env_float("SWEEP_LOOKBACK_HOURS", 48.0),
            max_retry_count=_env_int("MAX_RETRY_COUNT", 5),
            ocp_retention_days=_env_int("OCP_RETENTION_DAYS", 60),
            retention_safety_days=_env_int("RETENTION_SAFETY_DAYS", 5),
            reconciliation_schedule=_env("RECONCILIATION_SCHEDULE", "*/30 * * * *"),
            reconciliation_max_pending=_env_int("RECONCILIATION_MAX_PENDING", 20000),
            reconciliation_max_calls_per_plan=_env_int("RECONCILIATION_MAX_CALLS_PER_PLAN", 3000),
            export_poll_interval_s=_env_float("EXPORT_POLL_INTERVAL_S", 30.0),
            export_poll_backoff=_env_float("EXPORT_POLL_BACKOFF", 1.5),
            export_poll_max_interval_s=_env_float("EXPORT_POLL_MAX_INTERVAL_S", 300.0),
            export_max_polls=_env_int("EXPORT_MAX_POLLS", 500),
            export_max_wait_s=_env_float("EXPORT_MAX_WAIT_S", 6 * 3600.0),
            export_max_recreates=_env_int("EXPORT_MAX_RECREATES", 2),
            export_max_throttled_s=_env_float("EXPORT_MAX_THROTTLED_S", 24 * 3600.0),
            download_mode=_env("DOWNLOAD_MODE", "inprocess").lower(),
            download_workers=_env_int("DOWNLOAD_WORKERS", 4),
            download_max_resumes=_env_int("DOWNLOAD_MAX_RESUMES", 5),
            image=_env("IMAGE", "ocp-ingest:latest"),
            k8s_namespace=_env("K8S_NAMESPACE", "ocp-ingest"),
            k8s_service_account=_env("K8S_SERVICE_ACCOUNT", "ocp-ingest-downloader"),
            k8s_configmap=_env("K8S_CONFIGMAP", "ocp-ingest-config"),
            k8s_secret=_env("K8S_SECRET", "ocp-ingest-secrets"),
            download_pod_cpu=_env("DOWNLOAD_POD_CPU", "1"),
            download_pod_memory=_env("DOWNLOAD_POD_MEMORY", "1Gi"),
        ).validated()

    def validated(self) -> Settings:
        """Fail early, with the variable's name, on values that cannot work."""
        if self.ledger_backend not in ("sqlite", "dynamodb"):
            raise ValueError(
                f"{PREFIX}LEDGER_BACKEND must be 'sqlite' or 'dynamodb', got {self.ledger_backend!r}"
            )
        for name in ("recordings_url", "landing_url", "quarantine_url", "audit_url"):
            url = getattr(self, name)
            if not url.startswith(("file://", "s3://")):
                raise ValueError(f"{PREFIX}{name.upper()} must be a file:// or s3:// URL, got {url!r}")
        if self.receiver_auth not in ("hmac", "shared"):
            raise ValueError(f"{PREFIX}RECEIVER_AUTH must be 'hmac' or 'shared', got {self.receiver_auth!r}")
        if self.duration_tolerance_s < 0 or self.duration_tolerance_ratio < 0:
            raise ValueError("duration tolerances must not be negative")
        if self.download_mode not in ("inprocess", "kubernetes"):
            raise ValueError(
                f"{PREFIX}DOWNLOAD_MODE must be 'inprocess' or 'kubernetes', got {self.download_mode!r}"
            )
        if self.export_poll_interval_s <= 0 or self.export_max_wait_s <= 0 or self.export_max_polls < 1:
            raise ValueError("export poll interval, max wait and max polls must be positive")
        if self.export_max_throttled_s <= 0:
            raise ValueError(f"{PREFIX}EXPORT_MAX_THROTTLED_S must be positive")
        if not 1 <= self.reconciliation_max_calls_per_plan <= 3000:
            raise ValueError(f"{PREFIX}RECONCILIATION_MAX_CALLS_PER_PLAN must be 1..3000")
        if self.retention_safety_days >= self.ocp_retention_days:
            raise ValueError("RETENTION_SAFETY_DAYS must be smaller than OCP_RETENTION_DAYS")
        if self.audit_batch_size < 1 or self.report_sla_hours <= 0:
            raise ValueError(f"{PREFIX}AUDIT_BATCH_SIZE and {PREFIX}REPORT_SLA_HOURS must be positive")
        if self.object_lock_mode is not None:
            if self.object_lock_mode not in ("GOVERNANCE", "COMPLIANCE"):
                raise ValueError(
                    f"{PREFIX}OBJECT_LOCK_MODE must be GOVERNANCE or COMPLIANCE: {self.object_lock_mode!r}"
                )
            self.object_lock_days_by_lob()  # fails early on a malformed value
        return self

    @property
    def sweep_groups(self) -> tuple[str, ...]:
        return tuple(g.strip() for g in self.sweep_ocp_groups.split(",") if g.strip())

    def object_lock_days_by_lob(self) -> dict[str, int]:
        """``OCP_INGEST_OBJECT_LOCK_DAYS`` as ``{lob or "default": days}`` (a bare number is the default)."""
        import json

        raw = self.object_lock_days.strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
            days = {"default": value} if isinstance(value, int) else dict(value)
            if not all(isinstance(d, int) and d > 0 for d in days.values()):
                raise ValueError("days must be positive integers")
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"{PREFIX}OBJECT_LOCK_DAYS must be a number of days or a JSON map per LOB, got {raw!r}"
            ) from exc
        return {str(k): int(v) for k, v in days.items()}

    def object_lock_days_for(self, lob: str) -> int | None:
        """Retention days for a LOB's recordings, or None when WORM is off for it."""
        if self.object_lock_mode is None:
            return None
        days = self.object_lock_days_by_lob()
        return days.get(lob, days.get("default"))

    def describe(self) -> dict[str, str]:
        """Settings as ``{ENV_NAME: value}`` for `ocp-ingest config` (nothing secret lives here)."""
        return {PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)}
