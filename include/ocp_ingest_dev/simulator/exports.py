"""The Exports API's behaviour, without HTTP: jobs, status progression, the documented rules, file contents.

Status is computed from the (injectable) clock on every read, so tests move time instead of sleeping:
PENDING for the first third of the preparation time, PROCESSING until it ends, then COMPLETED (or FAILED
when injected), and EXPIRED once the TTL since creation has passed.

Behaviours OCP's docs allow and a client must tolerate are switches of :class:`ExportSettings`, all off by
default: opaque ids, name-only listings, CDR lines selected by their own event time, a listing that lags
behind COMPLETED, and results deleted in the middle of a download.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ocp_ingest.ocp import wire
from ocp_ingest_dev.simulator import audio
from ocp_ingest_dev.simulator.calls import SimCall
from ocp_ingest_dev.simulator.clock import SimClock

CDR_TYPES = {wire.DataType.DIALOG_START, wire.DataType.DIALOG_STEP, wire.DataType.DIALOG_END}


class ExportRuleError(Exception):
    """A request the platform refuses; ``status`` and ``code`` become the HTTP answer."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass
class SimFile:
    """One file of an export: listing metadata plus a lazy byte-range producer."""

    meta: wire.ExportFile
    produce: Callable[[int, int], Iterator[bytes]]  # (start, end) -> bytes of that range


@dataclass
class ExportJob:
    export_id: str
    group: str
    start: datetime
    end: datetime
    data_types: list[wire.DataType]
    created_at: float
    prep_s: float
    ttl_s: float
    fail: bool
    files: list[SimFile] = field(default_factory=list)
    #: file_id -> file, built on first use: a download looks its file up in O(1), as a real store does
    file_index: dict[str, SimFile] = field(default_factory=dict, repr=False)
    dialogs: int = 0
    skipped: int = 0
    listing_lag_s: float = 0.0
    downloads: int = 0  # file downloads served

    def expire(self, now: float) -> None:
        """Delete the results now (OCP may do so before the documented day is over)."""
        self.ttl_s = min(self.ttl_s, now - self.created_at)

    def listing_ready(self, now: float) -> bool:
        return now >= self.created_at + self.prep_s + self.listing_lag_s

    def status(self, now: float) -> wire.ExportStatus:
        if now >= self.created_at + self.ttl_s:
            return wire.ExportStatus.EXPIRED
        if now < self.created_at + self.prep_s / 3:
            return wire.ExportStatus.PENDING
        if now < self.created_at + self.prep_s:
            return wire.ExportStatus.PROCESSING
        return wire.ExportStatus.FAILED if self.fail else wire.ExportStatus.COMPLETED

    def view(self, now: float) -> wire.Export:
        status = self.status(now)
        done = status is wire.ExportStatus.COMPLETED
        return wire.Export(
            export_id=self.export_id,
            group=self.group,
            start=self.start,
            end=self.end,
            data_types=self.data_types,
            status=status,
            created_at=datetime.fromtimestamp(self.created_at, UTC),
            expires_at=datetime.fromtimestamp(self.created_at + self.ttl_s, UTC),
            counts=wire.ExportCounts(
                files=len(self.files) if done else 0,
                dialogs=self.dialogs if done else 0,
                bytes=sum(f.meta.size for f in self.files) if done else 0,
                skipped=self.skipped if done else 0,
            ),
            error="simulated export failure" if status is wire.ExportStatus.FAILED else None,
        )


# The listing fields a name-only listing leaves out: the recording's file name is all it says.
CALL_FIELDS = frozenset({"dialog_id", "ocp_group", "account_id", "dialog_timestamp"})
CdrSelection = Literal["call_start", "event_time"]


@dataclass
class ExportSettings:
    prep_s: float = 2.0
    ttl_s: float = 86400.0
    retention_days: float = 60.0
    fail_share: float = 0.0
    default_page_size: int = wire.DEFAULT_PAGE_SIZE
    #: export and file ids with dots and longer than 64 characters (OCP's ids are opaque)
    opaque_ids: bool = False
    #: recordings listed by their documented file name only (no dialog_id or other call fields)
    name_only_listings: bool = False
    #: which CDR lines an export's hour files hold: those of calls starting in the hour (default), or
    #: every line whose own event time falls in the hour (a dialog_end lands in the hour the call ended)
    cdr_selection: CdrSelection = "call_start"
    #: seconds after COMPLETED during which the files listing still answers 409 "not ready"
    listing_lag_s: float = 0.0
    #: the export's results are deleted (EXPIRED, 410) once this many of its files were downloaded
    expire_after_downloads: int | None = None


class ExportsService:
    """All export jobs of the simulated tenant (thread-safe)."""

    def __init__(
        self, calls: list[SimCall], clock: SimClock, settings: ExportSettings, seed: int = 0
    ) -> None:
        self.calls = calls
        self.clock = clock
        self.settings = settings
        self.jobs: dict[str, ExportJob] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._rng = random.Random(seed ^ 0x5EED)
        self._fail_next: set[str] = set()
        self._digests: dict[str, tuple[str, int]] = {}

    def fail_next(self, group: str) -> None:
        """Make the next export created for ``group`` end FAILED."""
        self._fail_next.add(group)

    # -- rules ----------------------------------------------------------------------------------------
    def create(self, request: wire.ExportRequest) -> wire.Export:
        try:
            start, end = wire.align_window(request.start, request.end)
        except ValueError as exc:
            raise ExportRuleError(422, wire.ERR_INVALID_WINDOW, str(exc)) from None
        now = self.clock.now()
        with self._lock:
            for job in self.jobs.values():
                if job.group == request.group and job.status(now).is_active:
                    raise ExportRuleError(
                        409,
                        wire.ERR_CONFLICT,
                        f"group {request.group} already has export {job.export_id} in progress",
                        export_id=job.export_id,
                    )
            fail = request.group in self._fail_next or self._rng.random() < self.settings.fail_share
            self._fail_next.discard(request.group)
            job = ExportJob(
                export_id=self._export_id(now),
                group=request.group,
                start=start,
                end=end,
                data_types=list(request.data_types),
                created_at=now,
                prep_s=self.settings.prep_s,
                ttl_s=self.settings.ttl_s,
                fail=fail,
                listing_lag_s=self.settings.listing_lag_s,
            )
            self._fill(job, now)
            self.jobs[job.export_id] = job
            return job.view(now)

    def _export_id(self, now: float) -> str:
        number, salt = next(self._ids), self._rng.getrandbits(32)
        if not self.settings.opaque_ids:
            return f"exp-{number:06d}-{salt:08x}"
        day = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d")
        tail = hashlib.sha256(f"{number}:{salt}".encode()).hexdigest()
        return f"exp.{day}.{number:04d}.{tail}"  # dots, 83 characters

    def _file_id(self, job: ExportJob, kind: str, key: str) -> str:
        if not self.settings.opaque_ids:
            return f"{kind}-{key}" if kind == "rec" else f"{kind}-{job.export_id}-{key}"
        return f"{kind}.{job.export_id}.{key.lower()}"

    def _exportable(self, job: ExportJob, now: float, *, by_event_time: bool = False) -> list[SimCall]:
        lo, hi = int(job.start.timestamp() * 1000), int(job.end.timestamp() * 1000)
        oldest = (now - self.settings.retention_days * 86400) * 1000

        def selected(c: SimCall) -> bool:
            return lo <= c.start < hi or (by_event_time and lo <= c.end < hi)

        # Known to OCP: ended before the export was requested; purged after the retention period.
        return [
            c
            for c in self.calls
            if c.ocp_group == job.group and selected(c) and c.end <= now * 1000 and c.start >= oldest
        ]

    def _fill(self, job: ExportJob, now: float) -> None:
        calls = self._exportable(job, now)
        job.dialogs = len(calls)
        types = set(job.data_types)
        if wire.DataType.ALL in types:
            types |= CDR_TYPES
        if wire.DataType.RECORDINGS in types:
            for call in calls:
                if call.has_recording:
                    job.files.append(self._recording_file(job, call))
                else:
                    job.skipped += 1
        cdr_types = sorted(types & CDR_TYPES)
        if cdr_types:
            by_event_time = self.settings.cdr_selection == "event_time"
            cdr_calls = self._exportable(job, now, by_event_time=True) if by_event_time else calls
            hour = job.start
            while hour < job.end:
                job.files.append(self._cdr_file(job, hour, cdr_calls, cdr_types, by_event_time))
                hour += timedelta(hours=1)

    def recording_digest(self, call: SimCall) -> tuple[str, int]:
        if call.dialog_id not in self._digests:
            self._digests[call.dialog_id] = audio.wav_digest(call.dialog_id, call.duration_ms)
        return self._digests[call.dialog_id]

    def _recording_file(self, job: ExportJob, call: SimCall) -> SimFile:
        sha, size = self.recording_digest(call)
        meta = wire.ExportFile(
            file_id=self._file_id(job, "rec", call.dialog_id),
            name=call.recording_filename,
            size=size,
            sha256=sha,
            data_type=wire.DataType.RECORDINGS,
            content_type=wire.AUDIO_CONTENT_TYPE,
            dialog_id=call.dialog_id,
            ocp_group=call.ocp_group,
            account_id=call.account_id,
            dialog_timestamp=call.start,
        )

        def produce(start: int, end: int) -> Iterator[bytes]:
            return audio.iter_wav(call.dialog_id, call.duration_ms, start=start, end=end)

        return SimFile(meta, produce)

    def _cdr_file(
        self,
        job: ExportJob,
        hour: datetime,
        calls: list[SimCall],
        types: list[wire.DataType],
        by_event_time: bool = False,
    ) -> SimFile:
        lo, hi = int(hour.timestamp() * 1000), int((hour + timedelta(hours=1)).timestamp() * 1000)
        lines = []
        for call in calls:
            if by_event_time:
                events = [e for e in call.events() if lo <= e.time < hi]
            elif lo <= call.start < hi:
                events = call.events()
            else:
                continue
            lines += [e.to_json() for e in events if e.message_type.value in types]
        body = b"".join(line + b"\n" for line in lines)
        stamp = hour.strftime("%Y%m%dT%H")
        meta = wire.ExportFile(
            file_id=self._file_id(job, "cdr", stamp),
            name=f"cdr_{job.group}_{stamp}.ndjson",
            size=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            data_type=wire.DataType.DIALOG_END if types == [wire.DataType.DIALOG_END] else wire.DataType.ALL,
            content_type=wire.NDJSON_CONTENT_TYPE,
            ocp_group=job.group,
            window_start=hour,
            window_end=hour + timedelta(hours=1),
        )
        return SimFile(meta, lambda a, b: iter([body[a:b]]))

    # -- reads ----------------------------------------------------------------------------------------
    def _job(self, export_id: str) -> ExportJob:
        job = self.jobs.get(export_id)
        if job is None:
            raise ExportRuleError(404, wire.ERR_NOT_FOUND, f"export {export_id} not found")
        return job

    def get(self, export_id: str) -> wire.Export:
        return self._job(export_id).view(self.clock.now())

    def list(self, group: str | None) -> list[wire.Export]:
        now = self.clock.now()
        return [j.view(now) for j in self.jobs.values() if group is None or j.group == group]

    def _ready(self, export_id: str) -> ExportJob:
        job = self._job(export_id)
        status = job.status(self.clock.now())
        if status is wire.ExportStatus.EXPIRED:
            raise ExportRuleError(
                410, wire.ERR_EXPIRED, f"export {export_id} expired; its results are deleted"
            )
        if status is wire.ExportStatus.FAILED:
            raise ExportRuleError(409, wire.ERR_FAILED, f"export {export_id} failed; it has no results")
        if status.is_active:
            raise ExportRuleError(409, wire.ERR_NOT_READY, f"export {export_id} is {status.value}")
        return job

    def files_page(self, export_id: str, page_token: str | None, page_size: int | None) -> wire.FilePage:
        job = self._ready(export_id)
        if not job.listing_ready(self.clock.now()):
            raise ExportRuleError(
                409, wire.ERR_NOT_READY, f"export {export_id} is COMPLETED; its files are still being listed"
            )
        size = page_size or self.settings.default_page_size
        if not 1 <= size <= wire.MAX_PAGE_SIZE:
            raise ExportRuleError(422, wire.ERR_VALIDATION, f"page_size must be 1..{wire.MAX_PAGE_SIZE}")
        offset = 0
        if page_token:
            try:
                token_export, raw = base64.urlsafe_b64decode(page_token.encode()).decode().split(":")
                offset = int(raw)
                if token_export != export_id:
                    raise ValueError
            except ValueError:
                raise ExportRuleError(422, wire.ERR_VALIDATION, "invalid page_token") from None
        page = job.files[offset : offset + size]
        following = offset + size
        token = (
            base64.urlsafe_b64encode(f"{export_id}:{following}".encode()).decode()
            if following < len(job.files)
            else None
        )
        return wire.FilePage(files=[f.meta for f in page], next_page_token=token)

    def listing_json(self, page: wire.FilePage) -> dict[str, object]:
        """A files page as the API sends it (name-only listings drop the recordings' call fields)."""
        body = page.model_dump(mode="json")
        if self.settings.name_only_listings:
            for entry in body["files"]:
                if entry["data_type"] == wire.DataType.RECORDINGS.value:
                    for name in CALL_FIELDS:
                        entry.pop(name, None)
        return body

    def file(self, export_id: str, file_id: str) -> SimFile:
        job = self._ready(export_id)
        if len(job.file_index) != len(job.files):
            job.file_index = {item.meta.file_id: item for item in job.files}
        item = job.file_index.get(file_id)
        if item is not None:
            limit = self.settings.expire_after_downloads
            with self._lock:
                if limit is not None and job.downloads >= limit:
                    job.expire(self.clock.now())
                    raise ExportRuleError(
                        410, wire.ERR_EXPIRED, f"export {export_id} expired; its results are deleted"
                    )
                job.downloads += 1
            return item
        raise ExportRuleError(404, wire.ERR_NOT_FOUND, f"file {file_id} not found in export {export_id}")
