"""Streaming an export file's bytes: each byte once, resuming with HTTP Range after a broken connection.

The consumer (reconciliation's downloader) checks size and SHA-256 against the listing and stores the bytes
with the create-only writer of :mod:`ocp_ingest.storage`; nothing here touches storage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from ocp_ingest.ocp import wire
from ocp_ingest.ocp.errors import ChecksumMismatch, DownloadError

if TYPE_CHECKING:
    from ocp_ingest.ocp.client import OcpClient

log = logging.getLogger(__name__)


@dataclass
class _Progress:
    received: int = 0
    resumes: int = 0


def _content_range_start(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Range", "")  # "bytes 100-199/200"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def iter_file_chunks(
    client: OcpClient,
    export_id: str,
    file: wire.ExportFile,
    *,
    max_resumes: int = 5,
    progress: _Progress | None = None,
) -> Iterator[bytes]:
    """Yield a file's bytes exactly once each, resuming with HTTP Range after a broken connection.

    If the server ignores the Range header (answers 200), the bytes already yielded are read again and
    skipped, so the consumer still sees one continuous, correct stream.
    """
    progress = progress or _Progress()
    while True:
        try:
            with client.open_file(export_id, file.file_id, offset=progress.received) as response:
                skip = 0
                if progress.received:
                    start = _content_range_start(response) if response.status_code == 206 else 0
                    if start is None or start > progress.received:
                        raise DownloadError(f"export file {file.file_id}: unusable Content-Range on resume")
                    skip = progress.received - start
                # Recordings are sent without content-encoding: read the raw stream as the socket delivers
                # it (no decoder, no re-chunking copy in the hot loop); a compressed answer still goes
                # through httpx's decoder.
                encoded = response.headers.get("content-encoding", "identity") not in ("", "identity")
                chunks = response.iter_bytes() if encoded else response.iter_raw()
                for chunk in chunks:
                    if skip:
                        if len(chunk) <= skip:
                            skip -= len(chunk)
                            continue
                        chunk, skip = chunk[skip:], 0
                    progress.received += len(chunk)
                    if progress.received > file.size:
                        raise ChecksumMismatch(
                            f"export file {file.file_id}: more bytes than the listed size {file.size}"
                        )
                    yield chunk
            if progress.received >= file.size:
                return
            reason = "connection closed early"
        except httpx.TransportError as exc:
            reason = type(exc).__name__
        progress.resumes += 1
        if progress.resumes > max_resumes:
            raise DownloadError(
                f"export file {file.file_id}: gave up after {max_resumes} resumes at byte {progress.received}"
            )
        log.warning(
            "export file %s: %s at byte %d of %d, resuming",
            file.file_id,
            reason,
            progress.received,
            file.size,
        )
        time.sleep(min(2.0, 0.1 * 2**progress.resumes))
