"""OCP Exports API clients: :class:`OcpClient` (sync, for tasks) and :class:`AsyncOcpClient` (for triggers).

Both build their requests from :mod:`ocp_ingest.ocp.wire` through the same :class:`_Api` definitions and
share the error mapping and the retry decisions; only the I/O differs. Retries: 429, 5xx and connection
errors, exponential backoff with jitter, ``Retry-After`` honoured, bounded by attempts *and* total time. A
``Retry-After`` longer than what is left of that budget is not a failure: the client raises
:class:`Throttled` carrying the wait, for a caller that can wait elsewhere (the triggerer). A listing that
answers "not ready" for an export OCP already reports COMPLETED is waited for, bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from ocp_ingest.ocp import wire
from ocp_ingest.ocp.errors import (
    AuthError,
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

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: at most ``max_attempts`` requests and ``max_total_s`` seconds per operation."""

    max_attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_total_s: float = 120.0
    # Longest single Retry-After waited inside one operation; a longer one goes to the caller (Throttled).
    max_retry_after_s: float = 120.0
    # How long a COMPLETED export's listing may keep answering "not ready" before that is an error.
    max_listing_lag_s: float = 60.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or HTTP-date), None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass
class _Attempts:
    """Retry bookkeeping for one operation (sans I/O: the caller sleeps)."""

    policy: RetryPolicy
    operation: str
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    count: int = 0

    def __post_init__(self) -> None:
        self.started = self.clock()

    def next_delay(self, status: int | None, retry_after: float | None, cause: str) -> float:
        """Seconds to wait before the next attempt, or raise the typed error when the budget is spent.

        With a ``Retry-After`` the error is :class:`Throttled` carrying OCP's wait, never a plain give-up.
        """
        self.count += 1
        elapsed = self.clock() - self.started
        spent = self.count >= self.policy.max_attempts
        if retry_after is not None:
            # The server said when; a little jitter keeps many clients from returning at the same instant.
            delay = retry_after + random.uniform(0, min(1.0, retry_after * 0.1))
            too_long = retry_after > self.policy.max_retry_after_s
            if spent or too_long or elapsed + delay > self.policy.max_total_s:
                raise Throttled(
                    f"{self.operation}: OCP asked to retry in {retry_after:.0f} s ({cause}, attempt "
                    f"{self.count}, {elapsed:.1f} s in); more than this caller waits",
                    status_code=status,
                    retry_after_s=retry_after,
                )
        else:
            backoff = min(self.policy.max_delay_s, self.policy.base_delay_s * 2 ** (self.count - 1))
            delay = random.uniform(backoff / 2, backoff)  # "equal jitter"
            if spent or elapsed + delay > self.policy.max_total_s:
                error = RateLimited if status == 429 else ServiceUnavailable
                raise error(
                    f"{self.operation}: gave up after {self.count} attempt(s) in {elapsed:.1f} s ({cause})",
                    status_code=status,
                )
        log.warning("%s: %s, retrying in %.2f s (attempt %d)", self.operation, cause, delay, self.count + 1)
        return delay


@dataclass
class _ListingLag:
    """Waits for a COMPLETED export whose listing still answers "not ready" (sans I/O: the caller sleeps)."""

    policy: RetryPolicy
    export_id: str
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    count: int = 0

    def __post_init__(self) -> None:
        self.started = self.clock()

    def next_delay(self, error: ExportNotReady) -> float:
        """Seconds to wait before listing again, or re-raise ``error`` once the lag bound is spent."""
        self.count += 1
        delay = min(self.policy.max_delay_s, self.policy.base_delay_s * 2 ** (self.count - 1))
        if self.clock() - self.started + delay > self.policy.max_listing_lag_s:
            raise error
        log.info(
            "export %s is COMPLETED but its listing is not ready yet; listing again in %.2f s",
            self.export_id,
            delay,
        )
        return delay


def _log_refused(export_id: str, page: wire.FilePage) -> None:
    for refused in page.refused:
        log.error(
            "export %s: listing entry refused, not downloaded: %s (%s)",
            export_id,
            refused.reason,
            refused.entry,
        )


def _error_body(response: httpx.Response) -> tuple[str, str, dict[str, Any]]:
    try:
        body = response.json()
    except (ValueError, httpx.ResponseNotRead):
        return "", "", {}
    if not isinstance(body, dict):
        return "", "", {}
    message = str(body.get("message", ""))[:300]
    return str(body.get("error", "")), message, body


def raise_for_status(operation: str, response: httpx.Response) -> None:
    """Map a non-success response to a typed error (message: operation, status, server's message)."""
    status = response.status_code
    if status < 400:
        return
    code, message, body = _error_body(response)
    text = f"{operation}: HTTP {status}" + (f": {message}" if message else "")
    if status in (401, 403):
        raise AuthError(text, status_code=status)
    if status == 404:
        raise NotFound(text, status_code=status)
    if status == 409:
        if code == wire.ERR_NOT_READY:
            raise ExportNotReady(text, status_code=status)
        if code == wire.ERR_FAILED:
            raise ExportFailed(text, status_code=status)
        error = ExportConflict(text, status_code=status)
        error.active_export_id = body.get("export_id")  # type: ignore[attr-defined]
        raise error
    if status == 410:
        raise ExportExpired(text, status_code=status)
    if status in (400, 422):
        raise (InvalidWindow if code == wire.ERR_INVALID_WINDOW else InvalidRequest)(text, status_code=status)
    if status == 429:
        raise RateLimited(text, status_code=status)
    if status >= 500:
        raise ServiceUnavailable(text, status_code=status)
    raise OcpError(text, status_code=status)


@dataclass(frozen=True)
class _Call:
    """One API operation: what to send and how to read the answer."""

    operation: str
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    model: type[BaseModel] | None = None


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("export window bounds must be timezone-aware datetimes")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class _Api:
    """The Exports API's operations as data, shared by the sync and async clients."""

    @staticmethod
    def create_export(group: str, start: datetime, end: datetime, data_types: Iterable[str]) -> _Call:
        body = {
            "group": group,
            "start": _iso(start),
            "end": _iso(end),
            "data_types": [wire.DataType(d).value for d in data_types],
        }
        return _Call("create export", "POST", wire.EXPORTS_PATH, json=body, model=wire.Export)

    @staticmethod
    def get_export(export_id: str) -> _Call:
        return _Call("get export", "GET", wire.export_path(export_id), model=wire.Export)

    @staticmethod
    def list_exports(group: str | None) -> _Call:
        return _Call("list exports", "GET", wire.EXPORTS_PATH, params={"group": group} if group else None)

    @staticmethod
    def files_page(export_id: str, page_token: str | None, page_size: int | None) -> _Call:
        params: dict[str, Any] = {}
        if page_token:
            params["page_token"] = page_token
        if page_size:
            params["page_size"] = page_size
        return _Call(
            "list export files", "GET", wire.export_files_path(export_id), params=params, model=wire.FilePage
        )

    @staticmethod
    def file(export_id: str, file_id: str, offset: int) -> tuple[str, str, dict[str, str]]:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        return "download export file", wire.export_file_path(export_id, file_id), headers

    @staticmethod
    def parse(call: _Call, response: httpx.Response) -> Any:
        raise_for_status(call.operation, response)
        try:
            if call.model is not None:
                return call.model.model_validate_json(response.content)
            return [wire.Export.model_validate(item) for item in response.json()["exports"]]
        except (ValidationError, ValueError, KeyError) as exc:
            raise OcpError(f"{call.operation}: unexpected response shape ({type(exc).__name__})") from None

    @staticmethod
    def check_export(export: wire.Export) -> wire.Export:
        if export.status is wire.ExportStatus.FAILED:
            raise ExportFailed(f"export {export.export_id} failed: {export.error or 'no reason given'}")
        if export.status is wire.ExportStatus.EXPIRED:
            raise ExportExpired(f"export {export.export_id} expired at {export.expires_at.isoformat()}")
        return export


def _retry_after(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"))


def _timeout(timeout: float | httpx.Timeout) -> httpx.Timeout:
    return (
        timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout, connect=min(10.0, timeout))
    )


class OcpClient:
    """Synchronous Exports API client (Airflow tasks, the download entrypoint)."""

    def __init__(
        self,
        base_url: str,
        auth: httpx.Auth,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = 60.0,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=self.base_url, auth=auth, timeout=_timeout(timeout), verify=verify, transport=transport
        )

    def __repr__(self) -> str:
        return f"OcpClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OcpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, operation: str, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        attempts = _Attempts(self.retry, operation)
        while True:
            try:
                response = self._http.send(request, stream=stream)
            except (httpx.TransportError, TransientError) as exc:
                status, wait = getattr(exc, "status_code", None), getattr(exc, "retry_after_s", None)
                time.sleep(attempts.next_delay(status, wait, type(exc).__name__))
                continue
            if response.status_code not in RETRYABLE_STATUS:
                return response
            delay = attempts.next_delay(
                response.status_code, _retry_after(response), f"HTTP {response.status_code}"
            )
            response.close()
            time.sleep(delay)

    def _call(self, call: _Call) -> Any:
        request = self._http.build_request(call.method, call.path, params=call.params, json=call.json)
        return _Api.parse(call, self._send(call.operation, request))

    def create_export(
        self,
        group: str,
        start: datetime,
        end: datetime,
        data_types: Iterable[str] = (wire.DataType.RECORDINGS,),
    ) -> wire.Export:
        """Create an export for one OCP group and window. Raises InvalidWindow, ExportConflict (409)."""
        return self._call(_Api.create_export(group, start, end, data_types))

    def get_export(self, export_id: str) -> wire.Export:
        """Current state of an export (status is reported, not raised)."""
        return self._call(_Api.get_export(export_id))

    def list_exports(self, group: str | None = None) -> list[wire.Export]:
        """Exports known to the platform, optionally for one group (to adopt an export after a 409)."""
        return self._call(_Api.list_exports(group))

    def list_files_page(
        self, export_id: str, page_token: str | None = None, page_size: int | None = None
    ) -> wire.FilePage:
        """One page of a completed export's files; waits (bounded) while a COMPLETED one's listing lags."""
        lag: _ListingLag | None = None
        while True:
            try:
                page: wire.FilePage = self._call(_Api.files_page(export_id, page_token, page_size))
            except ExportNotReady as exc:
                if self.get_export(export_id).status is not wire.ExportStatus.COMPLETED:
                    raise
                lag = lag or _ListingLag(self.retry, export_id)
                time.sleep(lag.next_delay(exc))
                continue
            _log_refused(export_id, page)
            return page

    def iter_files(self, export_id: str, page_size: int | None = None) -> Iterator[wire.ExportFile]:
        """Every file of a completed export, following the page tokens."""
        token: str | None = None
        while True:
            page = self.list_files_page(export_id, token, page_size)
            yield from page.files
            if not page.next_page_token:
                return
            token = page.next_page_token

    def wait_for_export(
        self, export_id: str, *, poll_interval_s: float = 5.0, timeout_s: float = 3600.0
    ) -> wire.Export:
        """Poll until COMPLETED (returned) or FAILED/EXPIRED (raised); TimeoutError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            export = _Api.check_export(self.get_export(export_id))
            if export.status is wire.ExportStatus.COMPLETED:
                return export
            if time.monotonic() + poll_interval_s > deadline:
                raise TimeoutError(f"export {export_id} still {export.status} after {timeout_s:g} s")
            time.sleep(poll_interval_s)

    @contextlib.contextmanager
    def open_file(self, export_id: str, file_id: str, offset: int = 0) -> Iterator[httpx.Response]:
        """Open a file's byte stream (from ``offset`` via HTTP Range); status errors raised typed."""
        operation, path, headers = _Api.file(export_id, file_id, offset)
        request = self._http.build_request("GET", path, headers=headers)
        response = self._send(operation, request, stream=True)
        try:
            if response.status_code >= 400:
                response.read()
                raise_for_status(operation, response)
            yield response
        finally:
            response.close()


class AsyncOcpClient:
    """Asynchronous Exports API client (triggers: never blocks the event loop)."""

    def __init__(
        self,
        base_url: str,
        auth: httpx.Auth,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = 60.0,
        verify: bool | str = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=self.base_url, auth=auth, timeout=_timeout(timeout), verify=verify, transport=transport
        )

    def __repr__(self) -> str:
        return f"AsyncOcpClient(base_url={self.base_url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncOcpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, operation: str, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        attempts = _Attempts(self.retry, operation)
        while True:
            try:
                response = await self._http.send(request, stream=stream)
            except (httpx.TransportError, TransientError) as exc:
                status, wait = getattr(exc, "status_code", None), getattr(exc, "retry_after_s", None)
                await asyncio.sleep(attempts.next_delay(status, wait, type(exc).__name__))
                continue
            if response.status_code not in RETRYABLE_STATUS:
                return response
            delay = attempts.next_delay(
                response.status_code, _retry_after(response), f"HTTP {response.status_code}"
            )
            await response.aclose()
            await asyncio.sleep(delay)

    async def _call(self, call: _Call) -> Any:
        request = self._http.build_request(call.method, call.path, params=call.params, json=call.json)
        return _Api.parse(call, await self._send(call.operation, request))

    async def create_export(
        self,
        group: str,
        start: datetime,
        end: datetime,
        data_types: Iterable[str] = (wire.DataType.RECORDINGS,),
    ) -> wire.Export:
        """Create an export for one OCP group and window. Raises InvalidWindow, ExportConflict (409)."""
        return await self._call(_Api.create_export(group, start, end, data_types))

    async def get_export(self, export_id: str) -> wire.Export:
        """Current state of an export (status is reported, not raised)."""
        return await self._call(_Api.get_export(export_id))

    async def list_exports(self, group: str | None = None) -> list[wire.Export]:
        """Exports known to the platform, optionally for one group."""
        return await self._call(_Api.list_exports(group))

    async def list_files_page(
        self, export_id: str, page_token: str | None = None, page_size: int | None = None
    ) -> wire.FilePage:
        """One page of a completed export's files; waits (bounded) while a COMPLETED one's listing lags."""
        lag: _ListingLag | None = None
        while True:
            try:
                page: wire.FilePage = await self._call(_Api.files_page(export_id, page_token, page_size))
            except ExportNotReady as exc:
                if (await self.get_export(export_id)).status is not wire.ExportStatus.COMPLETED:
                    raise
                lag = lag or _ListingLag(self.retry, export_id)
                await asyncio.sleep(lag.next_delay(exc))
                continue
            _log_refused(export_id, page)
            return page

    async def iter_files(
        self, export_id: str, page_size: int | None = None
    ) -> AsyncIterator[wire.ExportFile]:
        """Every file of a completed export, following the page tokens."""
        token: str | None = None
        while True:
            page = await self.list_files_page(export_id, token, page_size)
            for item in page.files:
                yield item
            if not page.next_page_token:
                return
            token = page.next_page_token

    async def wait_for_export(
        self, export_id: str, *, poll_interval_s: float = 5.0, timeout_s: float = 3600.0
    ) -> wire.Export:
        """Poll until COMPLETED (returned) or FAILED/EXPIRED (raised); TimeoutError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            export = _Api.check_export(await self.get_export(export_id))
            if export.status is wire.ExportStatus.COMPLETED:
                return export
            if time.monotonic() + poll_interval_s > deadline:
                raise TimeoutError(f"export {export_id} still {export.status} after {timeout_s:g} s")
            await asyncio.sleep(poll_interval_s)

    @contextlib.asynccontextmanager
    async def open_file(self, export_id: str, file_id: str, offset: int = 0) -> AsyncIterator[httpx.Response]:
        """Open a file's byte stream (from ``offset`` via HTTP Range); status errors raised typed."""
        operation, path, headers = _Api.file(export_id, file_id, offset)
        request = self._http.build_request("GET", path, headers=headers)
        response = await self._send(operation, request, stream=True)
        try:
            if response.status_code >= 400:
                await response.aread()
                raise_for_status(operation, response)
            yield response
        finally:
            await response.aclose()
