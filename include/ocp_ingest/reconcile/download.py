"""The heavy half of reconciliation: take one completed export's files and store the planned calls' audio.

The same code runs in-process (a task on the Airflow worker, the embedded default) and in the project's
image as ``ocp-ingest download-export`` (a KubernetesPodOperator in production). Steps:

1. list the export's files (paginated) and keep the export's metadata and listing with its calls
   (``reconciliation/exports/{export_id}.json`` and an EXPORT_COMPLETED milestone in each planned call's
   audit trail, once per export);
2. **manifest diff**: read the export's dialog_end CDR files; calls the ledger never saw (or never got a
   dialog_end for) get their ledger rows through :func:`ocp_ingest.realtime.cdr_transition`, so they are
   pending now and are recovered by this very download if their audio is in the export;
3. for every planned (or just discovered) call not stored yet: stream its file (resumed after broken
   connections), check its size and SHA-256 against the listing, and hand it to
   :class:`~ocp_ingest.ingest.RecordingIngestor` with source RECONCILIATION (the one validate + store +
   mark step). Files up to ``IN_MEMORY_MAX_BYTES`` are held in memory: hashed once, validated from
   memory, written once (create-only) to the call's key. Larger ones go through a landing file first
   (create-only, verified) so memory stays flat. A call stored meanwhile by the realtime path is reported
   ``already_stored`` and never stored twice.

An export that expired before or during the download is re-created (bounded) and waited for here.
The summary is small JSON: the task's XCom, or the pod's ``/airflow/xcom/return.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocp_ingest.config import Settings
from ocp_ingest.ingest import IngestOutcome, RecordingIngestor
from ocp_ingest.ledger import CallRecord, IngestionSource, Ledger, open_ledger
from ocp_ingest.ledger.transitions import ExportRequested
from ocp_ingest.ocp import wire
from ocp_ingest.ocp.download import iter_file_chunks
from ocp_ingest.ocp.errors import ChecksumMismatch, ExportExpired, OcpError
from ocp_ingest.reconcile import EXPORT_DATA_TYPES, ExportPlan, audit_export_milestone, create_or_adopt
from ocp_ingest.routing import LobRouter
from ocp_ingest.storage import ObjectExists, StorageError, StorageLayout, write_create_only

log = logging.getLogger(__name__)

XCOM_RETURN_PATH = Path("/airflow/xcom/return.json")
#: Recordings up to this size are downloaded into memory (about 1 MB per minute of call: 64 MiB is an
#: hour); larger ones stream through a landing file. Memory: at most download_workers times this.
IN_MEMORY_MAX_BYTES = 64 * 1024 * 1024
#: Files per slice: the slice's ledger records are read fresh (one query) just before it is downloaded.
SLICE = 256
#: Stored marks per ledger transaction.
MARK_BATCH = 64


@dataclass
class DownloadSummary:
    export_id: str
    #: which plan this download served: close_and_escalate matches results to plans by it
    plan_label: str = ""
    status: str = "done"
    outcomes: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    discovered: list[str] = field(default_factory=list)
    no_recording: dict[str, str] = field(default_factory=dict)
    bytes_downloaded: int = 0
    recreated_exports: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        return {
            "export_id": self.export_id,
            "plan_label": self.plan_label,
            "status": self.status,
            "counts": counts,
            "outcomes": self.outcomes,
            "details": self.details,
            "discovered": self.discovered,
            "no_recording": self.no_recording,
            "bytes_downloaded": self.bytes_downloaded,
            "recreated_exports": self.recreated_exports,
        }


def _read_cdr_file(
    client: Any, export_id: str, item: wire.ExportFile, max_resumes: int
) -> list[wire.CdrEvent]:
    """A CDR file is small NDJSON: read it into memory, verify it, parse it."""
    body = b"".join(iter_file_chunks(client, export_id, item, max_resumes=max_resumes))
    if hashlib.sha256(body).hexdigest() != item.sha256.lower():
        raise OcpError(f"CDR file {item.file_id}: SHA-256 does not match the listing")
    return wire.parse_cdr_ndjson(body.splitlines())


@dataclass
class _Downloader:
    plan: ExportPlan
    settings: Settings
    client: Any
    ledger: Ledger
    layout: StorageLayout
    router: LobRouter

    def __post_init__(self) -> None:
        self.ingestor = RecordingIngestor(self.settings, self.ledger, self.layout)

    def run(self, export_id: str, summary: DownloadSummary) -> None:
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
            if summary.outcomes.get(dialog_id) in ("stored", "already_stored"):
                continue  # done before the export was re-created
            if record is not None and record.s3_stored:
                summary.outcomes[dialog_id] = "already_stored"
            elif dialog_id in recordings:
                todo.append(recordings[dialog_id])
            else:
                summary.outcomes[dialog_id] = "not_in_export"
                end = ends.get(dialog_id)
                if end is not None and not end.origin_uri.lower().startswith(("sip:", "sips:")):
                    summary.no_recording[dialog_id] = end.origin_uri
        # The stored record keeps the export it came from. The export step marked the planned calls when
        # it requested this export; discovered calls and re-created exports are marked here.
        unmarked = [
            ExportRequested(f.dialog_id, export_id)
            for f in todo
            if f.dialog_id and ((r := records.get(f.dialog_id)) is None or r.export_id != export_id)
        ]
        for i in range(0, len(unmarked), 500):
            self.ledger.apply_many(unmarked[i : i + 500])
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
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for i in range(0, len(todo), SLICE):
                results += self._slice(pool, export_id, todo[i : i + SLICE])
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
            if outcome == "expired":
                expired = detail
                continue
            summary.outcomes[item.dialog_id] = outcome
            summary.bytes_downloaded += size
            if detail:
                summary.details[item.dialog_id] = detail
        if expired is not None:
            raise ExportExpired(expired)

    def _manifest_diff(
        self, ends: dict[str, wire.CdrEvent], summary: DownloadSummary, known: dict[str, CallRecord]
    ) -> list[str]:
        """Give calls the ledger never saw (lost events) their rows; merge CDR gaps into known calls.

        ``known``: the ledger's records of (at least) every call in ``ends``. Returns the calls changed.
        """
        from ocp_ingest.realtime import cdr_transition

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

    def _slice(
        self, pool: ThreadPoolExecutor, export_id: str, items: list[wire.ExportFile]
    ) -> list[tuple[str, str, int]]:
        """Download and store a slice of files in parallel; their ledger marks are written in batches.

        The slice's records are read fresh first (realtime may have stored some meanwhile); files are
        downloaded, validated and stored by the workers; their ``Stored`` marks are applied here, one
        ledger transaction per ``MARK_BATCH`` files (SQLite: one write lock instead of one per call).
        """
        fresh = self.ledger.get_many([f.dialog_id for f in items if f.dialog_id])
        out: list[tuple[str, str, int] | None] = [None] * len(items)
        written: list[tuple[int, IngestOutcome, int]] = []

        def flush() -> None:
            marked = self.ingestor.marked([outcome for _, outcome, _ in written])
            for (index, _, size), outcome in zip(written, marked, strict=True):
                out[index] = (outcome.kind, outcome.detail if outcome.kind != "stored" else "", size)
            written.clear()

        done = pool.map(lambda f: self._one(export_id, f, fresh.get(f.dialog_id or "")), items)
        for index, (outcome, size) in enumerate(done):
            if outcome.kind == "written":
                written.append((index, outcome, size))
                if len(written) >= MARK_BATCH:
                    flush()
            else:
                out[index] = (outcome.kind, outcome.detail if outcome.kind != "stored" else "", size)
        flush()
        return [r for r in out if r is not None]

    def _one(
        self, export_id: str, item: wire.ExportFile, record: CallRecord | None
    ) -> tuple[IngestOutcome, int]:
        """Download and store one call: (outcome, bytes downloaded); ``written`` still needs its mark."""
        assert item.dialog_id is not None
        try:
            if record is None:
                return IngestOutcome("error", "no ledger record"), 0
            if record.s3_stored:
                return IngestOutcome("already_stored", "stored meanwhile"), 0
            if item.size <= IN_MEMORY_MAX_BYTES:
                return self._one_in_memory(export_id, item, record)
            return self._one_via_landing(export_id, item)
        except ExportExpired as exc:
            return IngestOutcome("expired", str(exc)), 0
        except (OcpError, StorageError, OSError) as exc:
            log.warning("download of %s from export %s failed: %s", item.dialog_id, export_id, exc)
            return IngestOutcome("error", f"{type(exc).__name__}: {exc}"[:300]), 0

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

    def _one_via_landing(self, export_id: str, item: wire.ExportFile) -> tuple[IngestOutcome, int]:
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
                return IngestOutcome("error", "no ledger record"), item.size
            try:
                outcome = self.ingestor.ingest(
                    landing, item.sha256.lower(), item.size, record, IngestionSource.RECONCILIATION
                )
            except FileNotFoundError:
                # The realtime path landed the same bytes at the same key, stored them and cleared it.
                record = self.ledger.get(item.dialog_id)
                if record is not None and record.s3_stored:
                    return IngestOutcome(
                        "already_stored", "stored by realtime during the download"
                    ), item.size
                raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                landing.unlink()
        return outcome, item.size


def keep_export_metadata(
    client: Any,
    export_id: str,
    listing: list[wire.ExportFile],
    plan: ExportPlan,
    ledger: Ledger,
    layout: StorageLayout,
    *,
    records: dict[str, CallRecord] | None = None,
) -> bool:
    """Keep the export with its calls: its metadata and listing as ``reconciliation/exports/{id}.json``
    (create-only) and an EXPORT_COMPLETED milestone in each planned call's audit trail.

    The record is the milestone's idempotency key: a retried download (or a re-run) writes neither again.
    Returns True when this call wrote them. ``records``: the planned calls' ledger records, if read already.
    """
    export = client.get_export(export_id)
    planned = set(plan.dialog_ids)
    record = {
        "export": json.loads(export.model_dump_json()),
        "plan": plan.to_dict(),
        "files": dict(Counter(f.data_type.value for f in listing)),
        "bytes": sum(f.size for f in listing),
        "planned_recordings": {
            f.dialog_id: {"name": f.name, "size": f.size, "sha256": f.sha256}
            for f in listing
            if f.dialog_id in planned
        },
    }
    dest = layout.reconciliation_record_path("exports", export_id)
    try:
        first_time = write_create_only(dest, [json.dumps(record, sort_keys=True, indent=1).encode()]).created
    except ObjectExists:  # written by an earlier try with other content (e.g. a re-listing): it stands
        first_time = False
    if first_time and ledger.audit is not None:
        from ocp_ingest.audit.events import export_event
        from ocp_ingest.audit.schema import AuditEventType

        listed = {f.dialog_id: f.name for f in listing if f.dialog_id}
        if records is None:
            records = ledger.get_many(list(plan.dialog_ids))
        at = ledger.clock()
        for dialog_id in plan.dialog_ids:
            if dialog_id in records:
                detail = f"file {listed[dialog_id]}" if dialog_id in listed else "not in the export's listing"
                ledger.audit_event(
                    export_event(
                        AuditEventType.EXPORT_COMPLETED, records[dialog_id], export_id, at=at, detail=detail
                    )
                )
    return first_time


def _recreate(client: Any, plan: ExportPlan, settings: Settings) -> str:
    """A replacement for an expired export, waited for synchronously (rare: results live a day)."""
    deadline = time.monotonic() + settings.export_max_wait_s
    export_id, blocker = create_or_adopt(client, plan)
    while export_id is None:  # another export holds the group: wait for it to finish, then create
        if time.monotonic() > deadline:
            raise OcpError(f"group {plan.ocp_group} is busy with export {blocker}; left for the next run")
        time.sleep(settings.export_poll_interval_s)
        export_id, blocker = create_or_adopt(client, plan)
    client.wait_for_export(
        export_id, poll_interval_s=settings.export_poll_interval_s, timeout_s=settings.export_max_wait_s
    )
    return export_id


def run_download(
    plan: ExportPlan | dict[str, Any],
    export_id: str,
    settings: Settings | None = None,
    *,
    run_id: str | None = None,
    client: Any = None,
    ocp_conn_id: str = "ocp_default",
) -> dict[str, Any]:
    """Store the planned pending calls' recordings from a completed export; returns the summary."""
    settings = settings or Settings.from_env()
    plan = plan if isinstance(plan, ExportPlan) else ExportPlan.from_dict(plan)
    own_client = client is None
    if own_client:
        from ocp_ingest.airflow.hooks import OcpHook

        client = OcpHook(ocp_conn_id).get_client()
    summary = DownloadSummary(export_id, plan_label=plan.label)
    try:
        with open_ledger(settings, actor=f"download-export/{run_id or '-'}/{export_id}") as ledger:
            downloader = _Downloader(
                plan,
                settings,
                client,
                ledger,
                StorageLayout.from_settings(settings),
                LobRouter.load(settings.lob_routing_file),
            )
            current = export_id
            for _ in range(settings.export_max_recreates + 1):
                try:
                    downloader.run(current, summary)
                    break
                except ExportExpired as exc:
                    log.warning("export %s expired (%s); re-creating it for %s", current, exc, plan.label)
                    expired, current = current, _recreate(client, plan, settings)
                    audit_export_milestone(
                        ledger,
                        "EXPORT_EXPIRED",
                        plan.dialog_ids,
                        expired,
                        f"expired at download; re-created as {current}",
                    )
                    summary.recreated_exports.append(current)
                    summary.export_id = current
            else:
                summary.status = "expired"
    finally:
        if own_client:
            client.close()
    result = summary.to_dict()
    log.info(
        "download %s (run %s): %s, %d bytes",
        plan.label,
        run_id or "-",
        result["counts"],
        summary.bytes_downloaded,
    )
    return result


def skipped_download(plan: ExportPlan | dict[str, Any], export_id: str | None) -> dict[str, Any]:
    """The result when there was nothing to download (the export did not complete)."""
    plan = plan if isinstance(plan, ExportPlan) else ExportPlan.from_dict(plan)
    return {
        **DownloadSummary(export_id or "", plan_label=plan.label, status="skipped").to_dict(),
        "counts": {},
    }


# --------------------------------------------------------------------------------------------- CLI
def _cmd_download(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    plan = json.loads(args.plan_json)
    if args.export_status and args.export_status != "COMPLETED":
        result = skipped_download(plan, args.export_id)
    else:
        result = run_download(plan, args.export_id, run_id=args.run_id, ocp_conn_id=args.ocp_conn_id)
    text = json.dumps(result, sort_keys=True)
    xcom = Path(args.xcom_path) if args.xcom_path else XCOM_RETURN_PATH
    if args.xcom_path or xcom.parent.is_dir():  # inside a KubernetesPodOperator pod with do_xcom_push
        xcom.write_text(text)
    print(text)
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "download-export", help="store the planned calls' recordings from a completed OCP export"
    )
    parser.add_argument("--plan-json", required=True, help="the export plan (ExportPlan.to_dict JSON)")
    parser.add_argument("--export-id", required=True)
    parser.add_argument("--export-status", default="COMPLETED", help="skip unless COMPLETED")
    parser.add_argument("--run-id", default=None, help="the DAG run (for logs)")
    parser.add_argument("--ocp-conn-id", default="ocp_default")
    parser.add_argument(
        "--xcom-path", default=None, help=f"result file (default {XCOM_RETURN_PATH} if present)"
    )
    parser.add_argument("--label", default=None, help="ignored; shows the plan in process listings")
    parser.set_defaults(func=_cmd_download)


if __name__ == "__main__":  # pragma: no cover
    cli = argparse.ArgumentParser(prog="download-export")
    add_cli(cli.add_subparsers(dest="command", required=True))
    ns = cli.parse_args(["download-export", *sys.argv[1:]])
    sys.exit(ns.func(ns))

__all__ = ["EXPORT_DATA_TYPES", "add_cli", "run_download", "skipped_download"]
