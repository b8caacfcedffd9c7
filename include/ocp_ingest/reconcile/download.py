"""The heavy half of reconciliation: take one completed export's files and store the planned calls' audio.

The same code runs in-process (a task on the Airflow worker, the embedded default) and in the project's
image as ``ocp-ingest download-export`` (:mod:`ocp_ingest.cli.download`, a KubernetesPodOperator in
production). Steps of :class:`ExportDownloader`:

1. list the export's files (paginated) and keep the export's metadata and listing with its calls
   (:func:`~ocp_ingest.reconcile.exports.keep_export_metadata`: the record and an EXPORT_COMPLETED
   milestone in each planned call's audit trail, once per export);
2. **manifest diff**: read the export's dialog_end CDR files; calls the ledger never saw (or never got a
   dialog_end for) get their ledger rows through ``cdr_transition``, so they are pending now and are
   recovered by this very download if their audio is in the export;
3. for every planned (or just discovered) call not stored yet: stream its file (resumed after broken
   connections), check its size and SHA-256 against the listing, and hand it to
   :class:`~ocp_ingest.ingest.RecordingIngestor` with source RECONCILIATION (the one validate + store +
   mark step). Files up to ``IN_MEMORY_MAX_BYTES`` are held in memory: hashed once, validated from
   memory, written once (create-only) to the call's key. Larger ones go through a landing file first
   (create-only, verified) so memory stays flat. A call stored meanwhile by the realtime path is reported
   ``already_stored`` and never stored twice.

An export that expired before or during the download is re-created (bounded) and waited for here, through
:func:`~ocp_ingest.reconcile.exports.recreate_and_wait`. The result is a :class:`DownloadSummary`, whose
small JSON form also carries the wait's result, so the close step needs only the downloads.

Throttling (429, or 5xx, outlasting the client's short retry budget) is OCP's state, not a call's: the
first one stops the download asking (the other workers finish the file they hold), and every call not
tried is ``throttled``: no attempt is counted for it and the next run tries again. No worker sleeps on
OCP's ``Retry-After``: the next run's export request meets the same throttling and waits it out deferred,
in the triggerer. This works alike in-process and in the download pod.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ocp_ingest.config import Settings
from ocp_ingest.ingest import IngestOutcome, RecordingIngestor
from ocp_ingest.ledger import CallRecord, IngestionSource, Ledger, open_ledger
from ocp_ingest.ledger.cdr import cdr_transition
from ocp_ingest.ledger.transitions import ExportRequested
from ocp_ingest.ocp import wire
from ocp_ingest.ocp.client import OcpClient
from ocp_ingest.ocp.download import iter_file_chunks
from ocp_ingest.ocp.errors import ChecksumMismatch, ExportExpired, OcpError, TransientError
from ocp_ingest.reconcile.exports import ExportOutcomeStatus, keep_export_metadata, recreate_and_wait
from ocp_ingest.reconcile.manifests import needs_manifest, read_manifest, write_manifest
from ocp_ingest.reconcile.plan import ExportPlan
from ocp_ingest.routing import LobRouter
from ocp_ingest.storage import StorageError, StorageLayout, write_create_only

log = logging.getLogger(__name__)

#: Recordings up to this size are downloaded into memory (about 1 MB per minute of call: 64 MiB is an
#: hour); larger ones stream through a landing file. Memory: at most download_workers times this.
IN_MEMORY_MAX_BYTES = 64 * 1024 * 1024
#: Files per slice: a slice's ledger records are read fresh (one query) when it is queued, while the
#: slice before it downloads.
SLICE = 256
#: Stored marks per ledger transaction.
MARK_BATCH = 64
#: ExportRequested marks per ledger transaction.
LEDGER_BATCH = 500
#: A file's outcome while the export expired under it: the download starts again on a re-created export.
_EXPIRED = "expired"


class CallDownload(StrEnum):
    """What the download did with one planned (or discovered) call."""

    STORED = "stored"
    ALREADY_STORED = "already_stored"
    NOT_IN_EXPORT = "not_in_export"
    REJECTED = "rejected"
    CONFLICT = "conflict"
    ERROR = "error"
    #: not tried: OCP throttled (or was unavailable) first; OCP's state, never an attempt against the call
    THROTTLED = "throttled"


class DownloadStatus(StrEnum):
    """How the download as a whole ended."""

    DONE = "done"
    #: the export did not complete: nothing to download
    SKIPPED = "skipped"
    #: the export kept expiring, more often than re-creations are allowed
    EXPIRED = "expired"
    #: OCP throttled the download before its listing and CDRs were read (or before a re-creation): the
    #: calls not stored yet were not tried
    THROTTLED = "throttled"


@dataclass
class DownloadSummary:
    export_id: str
    #: which plan this download served: the close step matches results to plans by it
    plan_label: str = ""
    #: the wait's result, carried for the close step (a skipped download says why)
    export_status: str = ExportOutcomeStatus.COMPLETED
    message: str = ""
    status: DownloadStatus = DownloadStatus.DONE
    outcomes: dict[str, CallDownload] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    discovered: list[str] = field(default_factory=list)
    no_recording: dict[str, str] = field(default_factory=dict)
    bytes_downloaded: int = 0
    recreated_exports: list[str] = field(default_factory=list)
    #: recordings the export listed, and how many of them are this plan's calls
    recordings_listed: int = 0
    planned_matched: int = 0
    #: set when the listing has recordings but none of the planned calls that expect one: a sign that
    #: listings are not read the way OCP writes them, not that every call lost its audio
    anomaly: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "export_id": self.export_id,
            "plan_label": self.plan_label,
            "export_status": str(self.export_status),
            "message": self.message,
            "status": str(self.status),
            "counts": dict(Counter(str(o) for o in self.outcomes.values())),
            "outcomes": {d: str(o) for d, o in self.outcomes.items()},
            "details": self.details,
            "discovered": self.discovered,
            "no_recording": self.no_recording,
            "bytes_downloaded": self.bytes_downloaded,
            "recreated_exports": self.recreated_exports,
            "recordings_listed": self.recordings_listed,
            "planned_matched": self.planned_matched,
            "anomaly": self.anomaly,
        }

    def to_reference(self, layout: StorageLayout | None) -> dict[str, Any]:
        """The summary as it travels (XCom, the pod's ``return.json``): the per-call results of a long
        download in a manifest object (one row per call), the counts and the rest beside it; short ones,
        or without ``layout``, inline (:meth:`to_dict`). Read back with :func:`per_call_results`."""
        whole = self.to_dict()
        ids = list(dict.fromkeys([*self.outcomes, *self.details, *self.discovered, *self.no_recording]))
        if not needs_manifest(len(ids), layout):
            return whole
        assert layout is not None
        discovered = set(self.discovered)
        rows = [
            [
                d,
                str(self.outcomes.get(d, "")),
                self.details.get(d, ""),
                self.no_recording.get(d),
                d in discovered,
            ]
            for d in ids
        ]
        small = {k: v for k, v in whole.items() if k not in PER_CALL_FIELDS}
        return {**small, CALLS_KEY: write_manifest(layout, rows)}


#: A download result's per-call fields; a long result carries them as a manifest under :data:`CALLS_KEY`.
PER_CALL_FIELDS = ("outcomes", "details", "discovered", "no_recording")
CALLS_KEY = "calls"


def per_call_results(result: Mapping[str, Any]) -> dict[str, Any]:
    """A download result's per-call fields (:data:`PER_CALL_FIELDS`), inline or read back from its
    manifest (a missing or altered one raises ``ManifestError``: never an empty result)."""
    reference = result.get(CALLS_KEY)
    if reference is None:
        return {
            "outcomes": result.get("outcomes") or {},
            "details": result.get("details") or {},
            "discovered": list(result.get("discovered") or ()),
            "no_recording": result.get("no_recording") or {},
        }
    outcomes: dict[str, str] = {}
    details: dict[str, str] = {}
    discovered: list[str] = []
    no_recording: dict[str, str] = {}
    for dialog_id, outcome, detail, origin_uri, was_discovered in read_manifest(reference):
        if outcome:
            outcomes[dialog_id] = outcome
        if detail:
            details[dialog_id] = detail
        if origin_uri is not None:
            no_recording[dialog_id] = origin_uri
        if was_discovered:
            discovered.append(dialog_id)
    return {"outcomes": outcomes, "details": details, "discovered": discovered, "no_recording": no_recording}


@dataclass(frozen=True)
class _NotIngested:
    """A file that never reached the ingestor: ``kind`` is a CallDownload value or ``_EXPIRED``."""

    kind: str
    detail: str = ""


def _row(outcome: IngestOutcome | _NotIngested, size: int) -> tuple[str, str, int]:
    """One file's result: (outcome, detail, bytes); a stored call needs no detail."""
    return outcome.kind, outcome.detail if outcome.kind != CallDownload.STORED else "", size


def lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by ``nice`` (a download worker's initializer): on Linux a
    thread has its own nice value, so only the pool's threads yield, and only while they live."""
    if not nice:
        return
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + nice))
    except (OSError, AttributeError):  # not Linux, or not allowed: the downloads run at the task's priority
        log.debug("download threads keep their priority", exc_info=True)


def throttled_detail(exc: TransientError) -> str:
    """Why a call was not tried, e.g. ``OCP throttled (HTTP 429, Retry-After 600 s): ...``."""
    status = f"HTTP {exc.status_code}" if exc.status_code else type(exc).__name__
    wait = f", Retry-After {exc.retry_after_s:.0f} s" if exc.retry_after_s is not None else ""
    return f"OCP throttled ({status}{wait}): not tried, no attempt counted; {exc}"[:300]


def _read_cdr_file(
    client: OcpClient, export_id: str, item: wire.ExportFile, max_resumes: int
) -> list[wire.CdrEvent]:
    """A CDR file is small NDJSON: read it into memory, verify it, parse it."""
    body = b"".join(iter_file_chunks(client, export_id, item, max_resumes=max_resumes))
    if hashlib.sha256(body).hexdigest() != item.sha256.lower():
        raise OcpError(f"CDR file {item.file_id}: SHA-256 does not match the listing")
    events, refused = wire.parse_cdr_ndjson(body.splitlines())
    if refused:  # the file's other events still count; a refused line's call is not discovered from it
        log.error(
            "CDR file %s of export %s: %d line(s) are not valid events and were skipped: %s",
            item.file_id,
            export_id,
            len(refused),
            "; ".join(refused[:5]),
        )
    return events


@dataclass
class ExportDownloader:
    """Stores one plan's calls from one completed export (see the module's docstring for the steps)."""

    plan: ExportPlan
    settings: Settings
    client: OcpClient
    ledger: Ledger
    layout: StorageLayout
    router: LobRouter

    def __post_init__(self) -> None:
        self.ingestor = RecordingIngestor(self.settings, self.ledger, self.layout)
        #: OCP's answer once it throttled a file: no further file is asked for (set once, read by workers)
        self.throttled: str | None = None

    def run(self, export_id: str, summary: DownloadSummary) -> None:
        """Download ``export_id`` into ``summary``; raises ExportExpired if the export expired meanwhile."""
        started, cpu = time.monotonic(), time.process_time()
        listing = list(self.client.iter_files(export_id, page_size=wire.MAX_PAGE_SIZE))
        recordings = {
            f.dialog_id: f for f in listing if f.data_type is wire.DataType.RECORDINGS and f.dialog_id
        }
        ends: dict[str, wire.CdrEvent] = {}
        for item in listing:
            if item.data_type is not wire.DataType.RECORDINGS:
                for event in _read_cdr_file(self.client, export_id, item, self.settings.download_max_resumes):
                    if event.message_type is wire.MessageType.DIALOG_END:
                        ends[event.dialog_id] = event
        # One read of every record this export concerns (planned calls and the export's CDRs).
        known = self.ledger.get_many(list(dict.fromkeys([*self.plan.dialog_ids, *ends])))
        keep_export_metadata(
            self.client, export_id, listing, self.plan, self.ledger, self.layout, records=known
        )
        changed = self._manifest_diff(ends, summary, known)
        wanted = list(dict.fromkeys([*self.plan.dialog_ids, *summary.discovered]))
        records = {**known, **self.ledger.get_many(changed)} if changed else known
        todo: list[wire.ExportFile] = []
        for dialog_id in wanted:
            record = records.get(dialog_id)
            if summary.outcomes.get(dialog_id) in (CallDownload.STORED, CallDownload.ALREADY_STORED):
                continue  # done before the export was re-created
            if record is not None and record.s3_stored:
                summary.outcomes[dialog_id] = CallDownload.ALREADY_STORED
            elif dialog_id in recordings:
                todo.append(recordings[dialog_id])
            else:
                summary.outcomes[dialog_id] = CallDownload.NOT_IN_EXPORT
                end = ends.get(dialog_id)
                if end is not None and not end.origin_uri.lower().startswith(("sip:", "sips:")):
                    summary.no_recording[dialog_id] = end.origin_uri
        self._check_matches(export_id, listing, recordings, records, summary)
        # The stored record keeps the export it came from. The export step marked the planned calls when
        # it requested this export; discovered calls and re-created exports are marked here.
        unmarked = [
            ExportRequested(f.dialog_id, export_id)
            for f in todo
            if f.dialog_id and ((r := records.get(f.dialog_id)) is None or r.export_id != export_id)
        ]
        for i in range(0, len(unmarked), LEDGER_BATCH):
            self.ledger.apply_many(unmarked[i : i + LEDGER_BATCH])
        workers = max(1, min(self.settings.download_workers, len(todo)))
        log.info(
            "export %s: %d files listed, metadata kept, %d discovered, %d to download (%.1f s, %.1f s CPU)",
            export_id,
            len(listing),
            len(summary.discovered),
            len(todo),
            time.monotonic() - started,
            time.process_time() - cpu,
        )
        started, cpu = time.monotonic(), time.process_time()
        results: list[tuple[str, str, int]] = []
        with ThreadPoolExecutor(
            workers, initializer=lower_priority, initargs=(self.settings.download_nice,)
        ) as pool:
            slices = [todo[i : i + SLICE] for i in range(0, len(todo), SLICE)]
            queued = deque(self._submit(pool, export_id, s) for s in slices[:2])
            for n in range(len(slices)):
                # the next slice is queued before this one's results are marked: the workers never wait
                # for the marks, nor for the next slice's ledger read
                results += self._collect(queued.popleft())
                if n + 2 < len(slices):
                    queued.append(self._submit(pool, export_id, slices[n + 2]))
        log.info(
            "export %s: %d files downloaded, checked and stored by %d workers in %.1f s (%.1f s CPU)",
            export_id,
            len(todo),
            workers,
            time.monotonic() - started,
            time.process_time() - cpu,
        )
        expired = None
        for item, (outcome, detail, size) in zip(todo, results, strict=True):
            assert item.dialog_id is not None
            if outcome == _EXPIRED:
                expired = detail
                continue
            summary.outcomes[item.dialog_id] = CallDownload(outcome)
            summary.bytes_downloaded += size
            if detail:
                summary.details[item.dialog_id] = detail
        if expired is not None:
            raise ExportExpired(expired)

    def _check_matches(
        self,
        export_id: str,
        listing: list[wire.ExportFile],
        recordings: dict[str, wire.ExportFile],
        records: dict[str, CallRecord],
        summary: DownloadSummary,
    ) -> None:
        """Flag an export whose listing has recordings yet none of the planned calls that expect one.

        Recordings "not there yet" is normal for some calls, never for all of them while the same window
        lists others: that is how a listing we cannot read (issue #17) looked, and it reported success.
        """
        summary.recordings_listed = sum(f.data_type is wire.DataType.RECORDINGS for f in listing)
        summary.planned_matched = sum(d in recordings for d in dict.fromkeys(self.plan.dialog_ids))
        expecting = [
            d
            for d in dict.fromkeys(self.plan.dialog_ids)
            if d not in summary.no_recording and not ((r := records.get(d)) is not None and r.s3_stored)
        ]
        summary.anomaly = ""
        if summary.recordings_listed and expecting and not summary.planned_matched:
            summary.anomaly = (
                f"export {export_id} lists {summary.recordings_listed} recording(s) but none of the "
                f"{len(expecting)} planned call(s) expecting one"
            )
            log.error("ANOMALY %s (%s)", summary.anomaly, self.plan.label)

    def _manifest_diff(
        self, ends: dict[str, wire.CdrEvent], summary: DownloadSummary, known: dict[str, CallRecord]
    ) -> list[str]:
        """Give calls the ledger never saw (lost events) their rows; merge CDR gaps into known calls.

        ``known``: the ledger's records of (at least) every call in ``ends``. Returns the calls changed.
        """
        changed: list[str] = []
        for dialog_id, event in ends.items():
            record = known.get(dialog_id)
            complete = record is not None and record.has_cdr_end and record.lob and record.ocp_group
            if complete:
                continue
            transition = cdr_transition(event, self.router)
            if transition is not None:
                self.ledger.apply(transition)
                changed.append(dialog_id)
            if (record is None or not record.has_cdr_end) and dialog_id not in summary.discovered:
                summary.discovered.append(dialog_id)
                log.info("manifest diff: dialog_id=%s was unknown to the ledger; row created", dialog_id)
        return changed

    def _submit(
        self, pool: ThreadPoolExecutor, export_id: str, items: list[wire.ExportFile]
    ) -> list[Future[tuple[IngestOutcome | _NotIngested, int]]]:
        """Queue a slice of files for the workers, with their ledger records read fresh (one query) just
        before: realtime may have stored some meanwhile."""
        fresh = self.ledger.get_many([f.dialog_id for f in items if f.dialog_id])
        return [pool.submit(self._one, export_id, f, fresh.get(f.dialog_id or "")) for f in items]

    def _collect(
        self, done: list[Future[tuple[IngestOutcome | _NotIngested, int]]]
    ) -> list[tuple[str, str, int]]:
        """A slice's results, in order, as the workers finish them; their ``Stored`` marks are applied
        here, one ledger transaction per ``MARK_BATCH`` files (SQLite: one write lock instead of one per
        call)."""
        out: list[tuple[str, str, int] | None] = [None] * len(done)
        written: list[tuple[int, IngestOutcome, int]] = []

        def flush() -> None:
            marked = self.ingestor.marked([outcome for _, outcome, _ in written])
            for (index, _, size), outcome in zip(written, marked, strict=True):
                out[index] = _row(outcome, size)
            written.clear()

        for index, future in enumerate(done):
            outcome, size = future.result()
            if isinstance(outcome, IngestOutcome) and outcome.kind == "written":
                written.append((index, outcome, size))
                if len(written) >= MARK_BATCH:
                    flush()
            else:
                out[index] = _row(outcome, size)
        flush()
        return [r for r in out if r is not None]

    def _one(
        self, export_id: str, item: wire.ExportFile, record: CallRecord | None
    ) -> tuple[IngestOutcome | _NotIngested, int]:
        """Download and store one call: (outcome, bytes downloaded); ``written`` still needs its mark."""
        assert item.dialog_id is not None
        if self.throttled is not None:  # OCP asked us to come back later: do not ask again now
            return _NotIngested(CallDownload.THROTTLED, self.throttled), 0
        try:
            if record is None:
                return _NotIngested(CallDownload.ERROR, "no ledger record"), 0
            if record.s3_stored:
                return _NotIngested(CallDownload.ALREADY_STORED, "stored meanwhile"), 0
            if item.size <= IN_MEMORY_MAX_BYTES:
                return self._one_in_memory(export_id, item, record)
            return self._one_via_landing(export_id, item)
        except ExportExpired as exc:
            return _NotIngested(_EXPIRED, str(exc)), 0
        except TransientError as exc:
            self.throttled = throttled_detail(exc)
            log.warning("export %s: %s; no more files are asked for now", export_id, self.throttled)
            return _NotIngested(CallDownload.THROTTLED, self.throttled), 0
        except (OcpError, StorageError, OSError) as exc:
            log.warning("download of %s from export %s failed: %s", item.dialog_id, export_id, exc)
            return _NotIngested(CallDownload.ERROR, f"{type(exc).__name__}: {exc}"[:300]), 0

    def _one_in_memory(
        self, export_id: str, item: wire.ExportFile, record: CallRecord
    ) -> tuple[IngestOutcome, int]:
        """The whole file in memory: one SHA-256 over it, shared by the listing check, validator and write."""
        chunks = iter_file_chunks(
            self.client, export_id, item, max_resumes=self.settings.download_max_resumes
        )
        data = b"".join(chunks)
        if len(data) != item.size:
            raise ChecksumMismatch(f"export file {item.file_id}: got {len(data)} bytes, listed {item.size}")
        sha256 = hashlib.sha256(data).hexdigest()
        if sha256 != item.sha256.lower():
            raise ChecksumMismatch(f"export file {item.file_id}: SHA-256 {sha256} does not match the listing")
        outcome = self.ingestor.ingest_bytes(data, sha256, record, IngestionSource.RECONCILIATION, mark=False)
        return outcome, item.size

    def _one_via_landing(
        self, export_id: str, item: wire.ExportFile
    ) -> tuple[IngestOutcome | _NotIngested, int]:
        """A large file: streamed into the landing area (create-only, verified), ingested from there."""
        assert item.dialog_id is not None
        landing = self.layout.landing_path(item.dialog_id, item.sha256.lower())
        chunks = iter_file_chunks(
            self.client, export_id, item, max_resumes=self.settings.download_max_resumes
        )
        write_create_only(landing, chunks, expected_sha256=item.sha256, expected_size=item.size)
        try:
            record = self.ledger.get(item.dialog_id)  # fresh: realtime may have stored it meanwhile
            if record is None:
                return _NotIngested(CallDownload.ERROR, "no ledger record"), item.size
            try:
                outcome = self.ingestor.ingest(
                    landing, item.sha256.lower(), item.size, record, IngestionSource.RECONCILIATION
                )
            except FileNotFoundError:
                # The realtime path landed the same bytes at the same key, stored them and cleared it.
                record = self.ledger.get(item.dialog_id)
                if record is not None and record.s3_stored:
                    return _NotIngested(
                        CallDownload.ALREADY_STORED, "stored by realtime during the download"
                    ), item.size
                raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                landing.unlink()
        return outcome, item.size


def download_export(
    plan: ExportPlan, export_id: str, settings: Settings, client: OcpClient, *, run_id: str | None = None
) -> DownloadSummary:
    """Store the planned pending calls' recordings from a completed export, re-creating it if it expires."""
    summary = DownloadSummary(export_id, plan_label=plan.label)
    with open_ledger(settings, actor=f"download-export/{run_id or '-'}/{export_id}") as ledger:
        downloader = ExportDownloader(
            plan,
            settings,
            client,
            ledger,
            StorageLayout.from_settings(settings),
            LobRouter.load(settings.lob_routing_file),
        )
        current = export_id
        try:
            for _ in range(settings.export_max_recreates + 1):
                try:
                    downloader.run(current, summary)
                    break
                except ExportExpired:
                    current = recreate_and_wait(
                        client,
                        ledger,
                        downloader.layout,
                        plan,
                        current,
                        poll_interval_s=settings.export_poll_interval_s,
                        max_wait_s=settings.export_max_wait_s,
                    )
                    summary.recreated_exports.append(current)
                    summary.export_id = current
            else:
                summary.status = DownloadStatus.EXPIRED
        except TransientError as exc:  # listing, CDRs or a re-creation: nothing more is asked of OCP
            _not_tried(summary, plan, throttled_detail(exc))
    log.info(
        "download %s (run %s): %s, %d bytes",
        plan.label,
        run_id or "-",
        dict(Counter(str(o) for o in summary.outcomes.values())),
        summary.bytes_downloaded,
    )
    return summary


def _not_tried(summary: DownloadSummary, plan: ExportPlan, detail: str) -> None:
    """OCP throttled the download as a whole: every call not stored yet is ``throttled`` (not tried)."""
    log.warning("download %s: %s", plan.label, detail)
    summary.status = DownloadStatus.THROTTLED
    done = (CallDownload.STORED, CallDownload.ALREADY_STORED)
    for dialog_id in dict.fromkeys([*plan.dialog_ids, *summary.discovered]):
        if summary.outcomes.get(dialog_id) not in done:
            summary.outcomes[dialog_id] = CallDownload.THROTTLED
            summary.details[dialog_id] = detail


def download_plan(
    plan: ExportPlan,
    export_id: str | None,
    export_status: str,
    settings: Settings,
    open_client: Callable[[], OcpClient],
    *,
    message: str = "",
    run_id: str | None = None,
) -> DownloadSummary:
    """The download step of one plan: its export's files if the export completed, else nothing.

    ``export_id``, ``export_status`` and ``message``: what requesting and waiting came to; they travel on
    in the summary. ``open_client`` is only called when there is something to download.
    """
    if export_status != ExportOutcomeStatus.COMPLETED or not export_id:
        return DownloadSummary(
            export_id or "",
            plan_label=plan.label,
            export_status=export_status,
            message=message,
            status=DownloadStatus.SKIPPED,
        )
    with open_client() as client:
        summary = download_export(plan, export_id, settings, client, run_id=run_id)
    summary.export_status, summary.message = export_status, message
    return summary
