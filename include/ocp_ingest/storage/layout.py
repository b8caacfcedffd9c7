"""Every key this project writes or reads, built in one place from the configured roots.

- recordings: ``{recordings_root(lob)}/{yyyy}/{mm}/{dd}/{ocp_group}/{dialog_id}.{ext}`` where the root is
  ``OCP_INGEST_RECORDINGS_URL`` with ``{lob}`` substituted (bucket per LOB) or with ``/{lob}`` appended
  (prefix per LOB);
- landing (``OCP_INGEST_LANDING_URL``), where arrivals wait for the realtime DAG:
  ``audio/{dialog_id}.{sha16}.{ext}`` (the pushed bytes), ``audio/{dialog_id}.{sha16}.json`` (their
  sidecar), ``audio/waiting/{dialog_id}.{sha16}.json`` (a sidecar parked until the call's dialog_end),
  ``cdr_waiting`` (empty: CDR events wait in the ledger's inbox) and ``cdr/{event_id}.json`` (one
  accepted CDR event, as versions before the inbox kept them);
- quarantine: ``{reason_code}/{dialog_id}.{sha16}.bin`` (rejected or conflicting audio);
- the audit area (``OCP_INGEST_AUDIT_URL``): ``audit_events/``, ``audit_compactions/``,
  ``ledger_snapshot/``, ``cdr_manifest/``, ``reconciliation/`` and ``reports/``, Hive-style partitioned.
Keys are built from validated identifiers (:mod:`ocp_ingest.ids`), so nothing collides with a stored
recording and no identifier can reach outside its root.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ocp_ingest import ids
from ocp_ingest.config import Settings
from ocp_ingest.storage.objects import ObjectPath, object_path

AUDIO_EXTENSIONS = ("wav", "mp3")
AUDIT_EVENTS_TABLE = "audit_events"
AUDIT_COMPACTIONS_TABLE = "audit_compactions"
SNAPSHOT_TABLE = "ledger_snapshot"
REPORTS_FOLDER = "reports"


# ------------------------------------------------------------------------------------------- landing
def landing_audio_folder(landing_url: str) -> ObjectPath:
    """Pushed recordings and their sidecars."""
    return object_path(landing_url) / "audio"


def landing_waiting_folder(landing_url: str) -> ObjectPath:
    """Sidecars of recordings whose dialog_end has not come yet."""
    return landing_audio_folder(landing_url) / "waiting"


def landing_cdr_folder(landing_url: str) -> ObjectPath:
    """Accepted CDR events, one file each, as versions before the ledger's CDR inbox kept them."""
    return object_path(landing_url) / "cdr"


@functools.lru_cache(maxsize=16)
def cdr_waiting_marker(landing_url: str) -> ObjectPath:
    """An empty file there while accepted CDR events wait in the ledger's inbox for the roll. Built once
    per configuration: the receiver asks for it on every event push."""
    return object_path(landing_url) / "cdr_waiting"


def arrival_sidecar_path(audio_url: str) -> ObjectPath:
    """The sidecar of a landed recording: its key with ``.json`` for the audio extension."""
    return object_path(audio_url.rsplit(".", 1)[0] + ".json")


def waiting_sidecar_path(audio_url: str) -> ObjectPath:
    """Where the sidecar of a landed recording is parked while it waits for its dialog_end."""
    sidecar = arrival_sidecar_path(audio_url)
    return sidecar.parent / "waiting" / sidecar.name


# ---------------------------------------------------------------------------------------- audit area
def audit_events_root(audit_url: str) -> ObjectPath:
    return object_path(audit_url) / AUDIT_EVENTS_TABLE


def audit_events_day(audit_url: str, day: date | str) -> ObjectPath:
    """One day's partition of ``audit_events`` (``day`` as a date or ``YYYY-MM-DD``)."""
    return audit_events_root(audit_url) / f"dt={_day(day)}"


def new_audit_events_file(audit_url: str, day: date | str, lob: str) -> ObjectPath:
    """A new (never reused) Parquet file in the ``(dt, lob)`` partition of ``audit_events``."""
    return audit_events_day(audit_url, day) / f"lob={lob}" / f"part-{uuid.uuid4().hex}.parquet"


def audit_events_file(audit_url: str, day: date | str, lob: str, name: str) -> ObjectPath:
    """The Parquet file ``part-<name>`` of the ``(dt, lob)`` partition: the outbox publisher's name for one
    claimed batch of events, the same on every re-publish of that batch."""
    return audit_events_day(audit_url, day) / f"lob={lob}" / f"part-{name}.parquet"


def new_audit_compaction_record(audit_url: str, day: date | str, lob: str) -> ObjectPath:
    """A new record of what one compaction of ``(dt, lob)`` replaced."""
    folder = object_path(audit_url) / AUDIT_COMPACTIONS_TABLE / f"dt={_day(day)}" / f"lob={lob}"
    return folder / f"compaction-{uuid.uuid4().hex}.json"


def snapshot_folder(audit_url: str, day: date) -> ObjectPath:
    """One day's ledger snapshot (a derived table: a re-run replaces the folder's files)."""
    return object_path(audit_url) / SNAPSHOT_TABLE / f"dt={day:%Y-%m-%d}"


def snapshot_file(audit_url: str, day: date, part: int) -> ObjectPath:
    return snapshot_folder(audit_url, day) / f"part-{part:05d}.parquet"


def report_path(audit_url: str, day: date, stamp: str, suffix: str) -> ObjectPath:
    """One completeness report: ``reports/dt=YYYY-MM-DD/completeness-{stamp}.{suffix}``."""
    return object_path(audit_url) / REPORTS_FOLDER / f"dt={day:%Y-%m-%d}" / f"completeness-{stamp}.{suffix}"


def sla_alert_path(audit_url: str, at: datetime) -> ObjectPath:
    """The record of one SLA alert: ``reports/alerts/sla-{time}.json``."""
    return object_path(audit_url) / REPORTS_FOLDER / "alerts" / f"sla-{at:%Y%m%dT%H%M%S%fZ}.json"


def _day(day: date | str) -> str:
    return day if isinstance(day, str) else f"{day:%Y-%m-%d}"


# ---------------------------------------------------------------------------------------- recordings
@functools.lru_cache(maxsize=256)
def _recordings_root(recordings_url: str, lob: str) -> ObjectPath:
    """Built once per (configuration, LOB): the root is on the path of every stored recording."""
    if "{lob}" in recordings_url:
        return object_path(recordings_url.replace("{lob}", lob))
    return object_path(recordings_url) / lob


@dataclass(frozen=True)
class StorageLayout:
    """Where recordings, arrivals and rejected audio live, for one configuration."""

    recordings_url: str
    landing_url: str
    quarantine_url: str
    sse_kms_key_id: str | None = None
    audit_url: str | None = None
    #: WORM on recordings: Object Lock mode and retention days per LOB ("default" for the rest).
    object_lock_mode: str | None = None
    object_lock_days: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> StorageLayout:
        return cls(
            settings.recordings_url,
            settings.landing_url,
            settings.quarantine_url,
            settings.sse_kms_key_id,
            settings.audit_url,
            settings.object_lock_mode,
            tuple(sorted(settings.object_lock_days_by_lob().items())) if settings.object_lock_mode else (),
        )

    def object_lock_for(self, lob: str | None, now: datetime | None = None) -> tuple[str, datetime] | None:
        """(mode, retain-until) for a new recording of ``lob``, or None when WORM is off for it."""
        if self.object_lock_mode is None:
            return None
        days = dict(self.object_lock_days)
        retention = days.get(lob or "", days.get("default"))
        if retention is None:
            return None
        return self.object_lock_mode, (now or datetime.now(UTC)) + timedelta(days=retention)

    def cdr_manifest_path(self, hour: datetime, name: str) -> ObjectPath:
        """One file of the hourly CDR manifest (Hive-style partitions for Athena/DuckDB)."""
        root = object_path(self.audit_url or self.landing_url)
        part = f"dt={hour:%Y-%m-%d}/hour={hour:%H}"
        return root / "cdr_manifest" / part / f"{ids.token('manifest_name', name)}.ndjson"

    def reconciliation_record_path(self, kind: str, name: str) -> ObjectPath:
        """Reconciliation's audit records: ``reconciliation/exports/{export_id}.json`` (an export's metadata
        and file listing, kept with its calls) and ``reconciliation/alerts/{run}.json`` (escalations).

        ``name`` is opaque (OCP's export ids have any form): encoded by :func:`ids.opaque_key`, never
        refused, so an odd id cannot fail the download that keeps its record."""
        root = object_path(self.audit_url or self.landing_url)
        name = ids.opaque_key(name)
        return root / "reconciliation" / ids.token("record_kind", kind) / f"{name}.json"

    def recordings_root(self, lob: str) -> ObjectPath:
        return _recordings_root(self.recordings_url, ids.lob(lob))

    def recording_path(
        self, *, lob: str, ocp_group: str, dialog_id: str, call_start: datetime, extension: str = "wav"
    ) -> ObjectPath:
        """The deterministic key of a call's recording: the same call always maps to the same key."""
        _check_extension(extension)
        day = call_start.strftime("%Y/%m/%d")
        name = f"{ids.dialog_id(dialog_id)}.{extension}"
        return self.recordings_root(lob).joinpath(day, ids.ocp_group(ocp_group), name)

    def landing_path(self, dialog_id: str, sha256: str, extension: str = "wav") -> ObjectPath:
        """An arrival: keyed by call and content, so a repeated push of the same bytes is the same key."""
        _check_extension(extension)
        return self.landing_audio_folder() / f"{ids.dialog_id(dialog_id)}.{sha256[:16]}.{extension}"

    def landing_audio_folder(self) -> ObjectPath:
        return landing_audio_folder(self.landing_url)

    def landing_waiting_folder(self) -> ObjectPath:
        return landing_waiting_folder(self.landing_url)

    def landing_cdr_folder(self) -> ObjectPath:
        return landing_cdr_folder(self.landing_url)

    def quarantine_path(self, dialog_id: str, sha256: str, reason_code: str) -> ObjectPath:
        """Rejected or conflicting audio, kept for inspection, never where a recording lives."""
        reason = ids.token("reason_code", reason_code)
        return object_path(self.quarantine_url) / reason / f"{ids.dialog_id(dialog_id)}.{sha256[:16]}.bin"


def _check_extension(extension: str) -> None:
    if extension not in AUDIO_EXTENSIONS:
        raise ValueError(f"extension must be one of {AUDIO_EXTENSIONS}, got {extension!r}")
