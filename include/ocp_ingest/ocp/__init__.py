"""OCP platform client: wire shapes, auth, sync/async Exports API clients, resumable file streams.

Nothing here imports Airflow; :mod:`ocp_ingest.airflow.hooks` is the only Airflow adapter.
"""

from __future__ import annotations

from ocp_ingest.ocp.auth import PasswordAuth, PatAuth, token_url_for
from ocp_ingest.ocp.client import AsyncOcpClient, OcpClient, RetryPolicy
from ocp_ingest.ocp.download import iter_file_chunks
from ocp_ingest.ocp.errors import (
    AuthError,
    ChecksumMismatch,
    DownloadError,
    ExportConflict,
    ExportExpired,
    ExportFailed,
    ExportNotReady,
    InvalidRequest,
    InvalidWindow,
    NotFound,
    OcpError,
    RateLimited,
    ServiceUnavailable,
    Throttled,
    TransientError,
)

__all__ = [
    "AsyncOcpClient",
    "AuthError",
    "ChecksumMismatch",
    "DownloadError",
    "ExportConflict",
    "ExportExpired",
    "ExportFailed",
    "ExportNotReady",
    "InvalidRequest",
    "InvalidWindow",
    "NotFound",
    "OcpClient",
    "OcpError",
    "PasswordAuth",
    "PatAuth",
    "RateLimited",
    "RetryPolicy",
    "ServiceUnavailable",
    "Throttled",
    "TransientError",
    "iter_file_chunks",
    "token_url_for",
]
