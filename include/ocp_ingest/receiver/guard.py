"""The receiver's limits and its ASGI guard: what uvicorn does not bound, bounded before any route runs.

The guard refuses a request with too many headers (431) and an upload beyond the concurrent-upload slots
(503 with ``Retry-After``, before its body is read), so held-open uploads cannot take the capacity that
``/healthz`` and event pushes need. It also turns an unexpected exception into a logged 500 (our fault:
the routes answer 4xx themselves for anything that is the input's fault).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocp_ingest.ocp.wire import PUSH_RECORDINGS_PREFIX
from ocp_ingest.receiver.metrics import Metrics

log = logging.getLogger("ocp_ingest.receiver")
MAX_ECHO = 120  # characters of a request path or input quoted back in a log line or an answer


@dataclass(frozen=True)
class ReceiverLimits:
    """Bounds on what one sender can make the receiver hold (sizes in bytes, times in seconds)."""

    #: request line + headers; a bigger head is answered 431 before it is buffered
    max_head_bytes: int = 64 * 1024
    #: headers per request (431 beyond); OCP sends about ten
    max_header_count: int = 100
    #: a request head must be complete this long after the connection opened (or its first bytes came)
    head_timeout_s: float = 10.0
    #: connections and requests in flight as a whole (uvicorn answers 503 beyond)
    max_connections: int = 1000
    #: recordings streaming at once; beyond, 503 with Retry-After (health and events stay free)
    max_uploads: int = 32
    #: an upload (or an event body) that sends nothing for this long is cut with 408
    body_idle_timeout_s: float = 30.0
    #: after this long, an upload must have averaged ``min_upload_rate`` bytes/s, else 408
    upload_grace_s: float = 60.0
    min_upload_rate: int = 8 * 1024
    #: an event body (at most OCP_INGEST_MAX_EVENT_BODY_BYTES) must arrive whole within this
    event_body_timeout_s: float = 60.0
    #: threads writing CDR events to the ledger at once
    event_threads: int = 8
    #: records in one event push; rejected records listed in the answer (the count is always given)
    max_events_per_push: int = 10_000
    max_rejections_listed: int = 100
    #: what ``Retry-After`` says when the upload slots are full
    retry_after_s: int = 5


def clip(text: object, limit: int = MAX_ECHO) -> str:
    """``repr`` of a request-supplied value, cut to ``limit`` characters (control bytes stay visible)."""
    shown = repr(text) if not isinstance(text, str) else repr(text)[1:-1]
    return shown if len(shown) <= limit else shown[:limit] + f"... ({len(shown)} characters)"


def is_upload(scope: Scope) -> bool:
    return scope.get("method") == "PUT" and str(scope.get("path", "")).startswith(PUSH_RECORDINGS_PREFIX)


class IngressGuard:
    """Pure ASGI middleware (no body buffering): header count, upload slots, last-resort 500."""

    def __init__(self, app: ASGIApp, limits: ReceiverLimits, metrics: Metrics) -> None:
        self.app = app
        self.limits = limits
        self.metrics = metrics
        self.uploads = 0  # only touched on the event loop's thread

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope["headers"]) > self.limits.max_header_count:
            await self._refuse(send, 431, f"more than {self.limits.max_header_count} request headers")
            return
        upload = is_upload(scope)
        if upload:
            if self.uploads >= self.limits.max_uploads:
                self.metrics.inc("ocp_receiver_uploads_refused_busy_total")
                await self._refuse(
                    send,
                    503,
                    f"all {self.limits.max_uploads} upload slots are busy; retry later",
                    [(b"retry-after", str(self.limits.retry_after_s).encode())],
                )
                return
            self.uploads += 1
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            # Routes answer 4xx for the input's faults; what reaches here is ours: log it, answer 500.
            log.exception("unexpected error in %s %s", scope.get("method"), clip(scope.get("path")))
            self.metrics.inc("ocp_receiver_internal_errors_total")
            if not started:
                await self._send(send, 500, {"error": "internal error; the push was not acknowledged"})
        finally:
            if upload:
                self.uploads -= 1

    async def _refuse(
        self, send: Send, status: int, reason: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.metrics.inc("ocp_receiver_requests_rejected_total", status=str(status))
        log.warning("refused: %s %s", status, reason)
        await self._send(send, status, {"error": reason}, headers)

    @staticmethod
    async def _send(
        send: Send, status: int, body: dict[str, str], headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                    *(headers or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
