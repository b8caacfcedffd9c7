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
    # Storage roots as ObjectStoragePath URLs. ``{lob}`` in recordings_url selects bucket-per-LOB
    # (s3://aws_default@recordings-{lob}); without it the LOB becomes the first key segment.
    recordings_url: str = ""
    landing_url: str = ""
    quarantine_url: str = ""
    sse_kms_key_id: str | None = None
    lob_routing_file: Path | None = None
    # Audio checks: decoded duration may differ from the CDR duration by max(abs, ratio * cdr).
    duration_tolerance_s: float = 2.0
    duration_tolerance_ratio: float = 0.02
    # Largest recording accepted anywhere (bytes). 2 GiB covers a 30-hour PCM call.
    max_recording_bytes: int = 2 * 1024**3
    # Reconciliation policy (used by the ledger's pending query and escalation).
    pending_grace_s: float = 900.0
    max_retry_count: int = 5
    ocp_retention_days: int = 60
    # Escalate this many days before OCP purges a call, so a human still has time to act.
    retention_safety_days: int = 5

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
            sse_kms_key_id=_env("SSE_KMS_KEY_ID", "") or None,
            lob_routing_file=Path(routing) if routing else None,
            duration_tolerance_s=_env_float("DURATION_TOLERANCE_S", 2.0),
            duration_tolerance_ratio=_env_float("DURATION_TOLERANCE_RATIO", 0.02),
            max_recording_bytes=_env_int("MAX_RECORDING_BYTES", 2 * 1024**3),
            pending_grace_s=_env_float("PENDING_GRACE_S", 900.0),
            max_retry_count=_env_int("MAX_RETRY_COUNT", 5),
            ocp_retention_days=_env_int("OCP_RETENTION_DAYS", 60),
            retention_safety_days=_env_int("RETENTION_SAFETY_DAYS", 5),
        ).validated()

    def validated(self) -> Settings:
        """Fail early, with the variable's name, on values that cannot work."""
        if self.ledger_backend not in ("sqlite", "dynamodb"):
            raise ValueError(
                f"{PREFIX}LEDGER_BACKEND must be 'sqlite' or 'dynamodb', got {self.ledger_backend!r}"
            )
        for name in ("recordings_url", "landing_url", "quarantine_url"):
            url = getattr(self, name)
            if not url.startswith(("file://", "s3://")):
                raise ValueError(f"{PREFIX}{name.upper()} must be a file:// or s3:// URL, got {url!r}")
        if self.duration_tolerance_s < 0 or self.duration_tolerance_ratio < 0:
            raise ValueError("duration tolerances must not be negative")
        if self.retention_safety_days >= self.ocp_retention_days:
            raise ValueError("RETENTION_SAFETY_DAYS must be smaller than OCP_RETENTION_DAYS")
        return self

    def describe(self) -> dict[str, str]:
        """Settings as ``{ENV_NAME: value}`` for `ocp-ingest config` (nothing secret lives here)."""
        return {PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)}
