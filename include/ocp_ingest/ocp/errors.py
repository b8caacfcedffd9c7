"""Typed OCP client errors. Messages name the operation and the status, never headers or secrets."""

from __future__ import annotations


class OcpError(Exception):
    """Base class of everything the OCP client raises."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class AuthError(OcpError):
    """Credentials rejected (401/403) or token endpoint refused the grant."""


class InvalidRequest(OcpError):
    """422/400: the platform refused the request as invalid."""


class InvalidWindow(InvalidRequest):
    """The export window breaks OCP's rule (1 h .. 2 days, hour-aligned)."""


class ExportConflict(OcpError):
    """409: the group already has an export being prepared. Means "wait", not failure."""


class NotFound(OcpError):
    """404: unknown export or file."""


class ExportExpired(OcpError):
    """The export's results are gone (status EXPIRED, or 410 on download): re-create it."""


class ExportFailed(OcpError):
    """The platform reported the export as FAILED."""


class ExportNotReady(OcpError):
    """Files were requested before the export completed."""


class TransientError(OcpError):
    """429/5xx/connection errors that survived every retry (bounded by attempts and total time).

    They are OCP's state, not the call's. ``retry_after_s`` is the wait OCP asked for (``Retry-After``),
    when it said one: the caller should come back then rather than count a failure.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after_s = retry_after_s


class RateLimited(TransientError):
    """429 still returned after the retry budget was spent."""


class Throttled(RateLimited):
    """OCP asked (429 or 5xx with ``Retry-After``) for a wait longer than this caller's retry budget.

    ``retry_after_s`` is always set: a caller that can wait elsewhere (an Airflow task deferring to the
    triggerer) waits that long and tries again; nothing about the call itself went wrong.
    """

    retry_after_s: float


class ServiceUnavailable(TransientError):
    """5xx or connection failure still happening after the retry budget was spent."""


class DownloadError(OcpError):
    """A download could not be completed (resumes exhausted, or the bytes are wrong)."""


class ChecksumMismatch(DownloadError):
    """Downloaded bytes do not match the listing's size or SHA-256; nothing was stored."""
