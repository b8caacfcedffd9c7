"""The heavy half of reconciliation: take one completed export's files and store the planned calls' audio.

The same code runs in-process (a task on the Airflow worker, the embedded default) and in the project's
image as ``ocp-ingest download-export`` (a KubernetesPodOperator in production). Steps:

1. list the export's files (paginated);
2. **manifest diff**: read the export's dialog_end CDR files; calls the ledger never saw (or never got a
   dialog_end for) get their ledger rows through :func:`ocp_ingest.realtime.cdr_transition`, so they are
   pending now and are recovered by this very download if their audio is in the export;
3. for every planned (or just discovered) call not stored yet: stream its file into the landing area
   (create-only, SHA-256 and size checked against the listing, resumed after broken connections), hand it
   to :class:`~ocp_ingest.ingest.RecordingIngestor` with source RECONCILIATION (the one validate + store
   + mark step), and remove the landing file. A call stored meanwhile by the realtime path is reported
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocp_ingest.config import Settings
from ocp_ingest.ingest import RecordingIngestor
from ocp_ingest.ledger import IngestionSource, Ledger, open_ledger
from ocp_ingest.ledger.transitions import ExportRequested
from ocp_ingest.ocp import wire
from ocp_ingest.ocp.download import iter_file_chunks
from ocp_ingest.ocp.errors import ExportExpired, OcpError
from ocp_ingest.reconciliation import EXPORT_DATA_TYPES, ExportPlan, audit_export_milestone, create_or_adopt
from ocp_ingest.routing import LobRouter
from ocp_ingest.storage import StorageError, StorageLayout, write_create_only

log = logging.getLogger(__name__)

XCOM_RETURN_PATH = Path("/airflow/xcom/return.json")


@dataclass
class DownloadSummary:
    export_id: str
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
        self._manifest_diff(ends, summary)
        wanted = list(dict.fromkeys([*self.plan.dialog_ids, *summary.discovered]))
        records = self.ledger.get_many(wanted)
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
        for item in todo:  # the stored record keeps the export it came from, whichever step runs first
            assert item.dialog_id is not None
            self.ledger.apply(ExportRequested(item.dialog_id, export_id))
        workers = max(1, min(self.settings.download_workers, len(todo)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda f: self._one(export_id, f), todo))
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

    def _manifest_diff(self, ends: dict[str, wire.CdrEvent], summary: DownloadSummary) -> None:
        """Give calls the ledger never saw (lost events) their rows; merge CDR gaps into known calls."""
        from ocp_ingest.realtime import cdr_transition

        known = self.ledger.get_many(list(ends))
        for dialog_id, event in ends.items():
            record = known.get(dialog_id)
            complete = record is not None and record.has_cdr_end and record.lob and record.ocp_group
            if complete:
                continue
            transition = cdr_transition(event, self.router)
            if transition is not None:
                self.ledger.apply(transition)
            if (record is None or not record.has_cdr_end) and dialog_id not in summary.discovered:
                summary.discovered.append(dialog_id)
                log.info("manifest diff: dialog_id=%s was unknown to the ledger; row created", dialog_id)

    def _one(self, export_id: str, item: wire.ExportFile) -> tuple[str, str, int]:
        """Download, store and mark one call: (outcome, detail, bytes downloaded)."""
        assert item.dialog_id is not None
        landing = self.layout.landing_path(item.dialog_id, item.sha256.lower())
        try:
            chunks = iter_file_chunks(
                self.client, export_id, item, max_resumes=self.settings.download_max_resumes
            )
            write_create_only(landing, chunks, expected_sha256=item.sha256, expected_size=item.size)
        except ExportExpired as exc:
            return "expired", str(exc), 0
        except (OcpError, StorageError, OSError) as exc:
            log.warning("download of %s from export %s failed: %s", item.dialog_id, export_id, exc)
            return "error", f"{type(exc).__name__}: {exc}"[:300], 0
        try:
            record = self.ledger.get(item.dialog_id)  # fresh: realtime may have stored it meanwhile
            if record is None:
                return "error", "no ledger record", item.size
            try:
                outcome = self.ingestor.ingest(
                    landing, item.sha256.lower(), item.size, record, IngestionSource.RECONCILIATION
                )
            except FileNotFoundError:
                # The realtime path landed the same bytes at the same key, stored them and cleared it.
                record = self.ledger.get(item.dialog_id)
                if record is not None and record.s3_stored:
                    return "already_stored", "stored by realtime during the download", item.size
                raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                landing.unlink()
        return outcome.kind, outcome.detail if outcome.kind != "stored" else "", item.size


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
        from ocp_ingest.ocp.hook import OcpHook

        client = OcpHook(ocp_conn_id).get_client()
    summary = DownloadSummary(export_id)
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


# --------------------------------------------------------------------------------------------- CLI
def _cmd_download(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    plan = json.loads(args.plan_json)
    if args.export_status and args.export_status != "COMPLETED":
        result: dict[str, Any] = {"export_id": args.export_id, "status": "skipped", "counts": {}}
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

__all__ = ["EXPORT_DATA_TYPES", "add_cli", "run_download"]
