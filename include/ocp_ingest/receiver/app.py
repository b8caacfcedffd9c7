"""The receiver: where OCP pushes CDR events and recordings (the seed's API Gateway + Lambda ingress).

- ``POST /v1/events``: one JSON object, a JSON array or NDJSON. Valid events go to the ledger at once and
  to the CDR manifest; invalid ones (a malformed NDJSON line too) are listed back with the reason, the rest
  of the batch is kept (207).
- ``PUT /v1/recordings/{filename}``: the audio body, streamed to landing (flat memory), SHA-256 checked,
  FILE_RECEIVED set at once. OCP's file name ``{group}~{account}~{timestamp}~{dialog_id}.wav``.
- ``GET /healthz``, ``GET /metrics`` (Prometheus text), ``GET /openapi.json``.

Every request is authenticated before anything is written (Standard Webhooks HMAC, or a shared secret),
bodies are bounded in size and time, audio is sniffed from its bytes, and every id and value is validated
before it touches the ledger or storage. Anything wrong with the input is a 4xx with a reason (input
quoted back cut short); a 500 means our fault and is logged with its traceback.

Each acknowledged change's audit event is durable in the ledger's outbox before the answer; the receiver
publishes them to the Parquet trail every ``OCP_INGEST_RECEIVER_AUDIT_PUBLISH_S`` (``receiver.publisher``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from ocp_ingest import ids
from ocp_ingest.audio import sniff_format
from ocp_ingest.audio.sniff import describe_non_audio
from ocp_ingest.config import PREFIX, Settings
from ocp_ingest.infrastructure import is_outage, storage_full
from ocp_ingest.ledger import Ledger, open_ledger
from ocp_ingest.ocp import wire
from ocp_ingest.realtime import (
    EventIdReused,
    LandingResult,
    LandingStatus,
    RecordingTooLarge,
    land_recording,
    record_cdr_events,
)
from ocp_ingest.receiver import auth as signing
from ocp_ingest.receiver.guard import IngressGuard, ReceiverLimits, clip
from ocp_ingest.receiver.metrics import Metrics
from ocp_ingest.receiver.publisher import PeriodicPublisher
from ocp_ingest.routing import LobRouter
from ocp_ingest.storage import ChecksumMismatch, StorageLayout
from ocp_ingest.storage.objects import check_root

log = logging.getLogger("ocp_ingest.receiver")
SNIFF_BYTES = 64
_CONTENT_LENGTH_RE = re.compile(r"[0-9]{1,19}")  # ASCII digits; int() would take other scripts' digits
#: /healthz asks landing storage at most this often, and gives it this long to answer.
LANDING_CHECK_EVERY_S = 10.0
LANDING_CHECK_TIMEOUT_S = 5.0


class RequestRejected(Exception):
    """A 4xx answer with a reason the sender can act on (never containing a secret)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class BodyTooSlow(Exception):
    """The sender stopped sending, or sends slower than the receiver's minimum rate; nothing was kept."""


@contextlib.contextmanager
def parsing(what: str) -> Iterator[None]:
    """Any exception while reading the input (before any write) is the input's fault: a 400 with why."""
    try:
        yield
    except RequestRejected:
        raise
    except Exception as exc:
        log.warning("%s: unexpected %s", what, type(exc).__name__, exc_info=True)
        raise RequestRejected(400, f"{what}: {type(exc).__name__}: {clip(str(exc))}") from None


def _secret_from_env() -> str:
    secret = os.environ.get(PREFIX + "RECEIVER_SECRET", "")
    if not secret:
        raise RuntimeError(f"{PREFIX}RECEIVER_SECRET must be set (the push signing or shared secret)")
    return secret


def create_app(
    settings: Settings | None = None,
    *,
    secret: str | None = None,
    ledger: Ledger | None = None,
    limits: ReceiverLimits | None = None,
) -> FastAPI:
    """Build the receiver app. Tests pass their own settings, secret, ledger and limits."""
    settings = settings or Settings.from_env()
    limits = limits or ReceiverLimits()
    secret = secret if secret is not None else _secret_from_env()
    ledger = ledger or open_ledger(settings)
    layout = StorageLayout.from_settings(settings)
    router = LobRouter.load(settings.lob_routing_file)
    metrics = Metrics()
    instance = f"receiver-{uuid.uuid4().hex[:8]}"
    if ledger.audit is not None and ledger.audit.actor is None:
        ledger.audit.actor = instance  # audit events say which receiver instance recorded them

    # Audit events are durable in the ledger's outbox before each answer; Parquet gets them every interval.
    publisher = PeriodicPublisher(ledger.flush_audit, ledger.audit_pending, settings.receiver_audit_publish_s)
    publisher.start()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await anyio.to_thread.run_sync(publisher.stop)  # a clean stop publishes what is left

    app = FastAPI(
        title="OCP ingest receiver",
        version="1",
        description="Ingress for OCP CDR events and call recordings.",
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.state.ledger = ledger
    app.add_middleware(IngressGuard, limits=limits, metrics=metrics)
    # Uploads and event writes run in threads from their own pools, so uploads held open by slow senders
    # cannot take the threads that event pushes and /healthz (anyio's default pool) need.
    upload_threads = anyio.CapacityLimiter(limits.max_uploads)
    event_threads = anyio.CapacityLimiter(limits.event_threads)

    def authenticate_events(request: Request, body: bytes) -> None:
        try:
            if settings.receiver_auth == "shared":
                signing.verify_shared_secret(secret, request.headers)
            else:
                signing.verify_body(
                    secret, request.headers, body, tolerance_s=settings.receiver_replay_window_s
                )
        except signing.SignatureError as exc:
            raise RequestRejected(401, str(exc)) from None

    def authenticate_audio(request: Request, filename: str) -> str | None:
        """Check headers before the body streams; returns the sender's SHA-256 when it gave one."""
        try:
            if settings.receiver_auth == "shared":
                signing.verify_shared_secret(secret, request.headers)
                given = request.headers.get(signing.CONTENT_SHA256_HEADER, "").lower()
                if given and not (len(given) == 64 and all(c in "0123456789abcdef" for c in given)):
                    raise RequestRejected(400, f"malformed {signing.CONTENT_SHA256_HEADER} header")
                return given or None
            _, sha = signing.verify_digest(
                secret, request.headers, filename, tolerance_s=settings.receiver_replay_window_s
            )
            return sha
        except signing.SignatureError as exc:
            raise RequestRejected(401, str(exc)) from None

    def check_declared_length(request: Request, limit: int) -> None:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not _CONTENT_LENGTH_RE.fullmatch(declared):
                raise RequestRejected(400, "malformed Content-Length")
            if int(declared) > limit:
                raise RequestRejected(413, f"body of {declared} bytes exceeds the limit of {limit} bytes")

    async def read_bounded(request: Request, limit: int) -> bytes:
        parts, size = [], 0
        try:
            with anyio.fail_after(limits.event_body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise RequestRejected(413, f"body exceeds the limit of {limit} bytes")
                    parts.append(chunk)
        except TimeoutError:
            raise RequestRejected(
                408, f"body not complete within {limits.event_body_timeout_s:g} s"
            ) from None
        except ClientDisconnect:
            raise RequestRejected(400, "client disconnected before the body was complete") from None
        return b"".join(parts)

    def unavailable(exc: BaseException, what: str) -> JSONResponse:
        """Our storage or ledger failed, not the push: 507 when the disk is full, else 503, both with
        Retry-After. Nothing unacknowledged is kept, so OCP's retry (or reconciliation) gets the call."""
        full = storage_full(exc)
        metrics.inc("ocp_receiver_storage_unavailable_total", reason="full" if full else "error")
        log.error("%s not acknowledged: %s", what, type(exc).__name__, exc_info=not full)
        reason = "landing storage is full" if full else "landing storage or ledger unavailable"
        return JSONResponse(
            {"error": f"{reason}; push again later", "detail": what},
            status_code=507 if full else 503,
            headers={"Retry-After": str(limits.retry_after_s)},
        )

    @app.exception_handler(RequestRejected)
    async def _rejected(request: Request, exc: RequestRejected) -> JSONResponse:
        metrics.inc("ocp_receiver_requests_rejected_total", status=str(exc.status))
        log.warning("rejected %s %s: %s %s", request.method, clip(request.url.path), exc.status, exc.reason)
        return JSONResponse({"error": exc.reason}, status_code=exc.status)

    @app.post("/v1/events", summary="Push CDR events (JSON object, JSON array or NDJSON)")
    async def push_events(request: Request) -> JSONResponse:
        check_declared_length(request, settings.max_event_body_bytes)
        body = await read_bounded(request, settings.max_event_body_bytes)
        authenticate_events(request, body)
        with parsing("body is not JSON, a JSON array or NDJSON"):
            raw_events = wire.parse_event_body(body)
        if len(raw_events) > limits.max_events_per_push:
            raise RequestRejected(
                413, f"{len(raw_events)} records exceed the limit of {limits.max_events_per_push} per push"
            )
        accepted: list[CdrEventOut] = []
        rejected: list[dict[str, Any]] = []
        events = []
        for index, raw in enumerate(raw_events):
            try:
                if isinstance(raw, wire.MalformedRecord):
                    raise ValueError(raw.reason)
                if not isinstance(raw, dict):
                    raise ValueError("each event must be a JSON object")
                event = wire.CdrEvent.model_validate(raw)
                wire.event_id(event.event_id)  # OCP's opaque id: a key only through ids.opaque_key
                events.append((index, event))
            except (ValidationError, ValueError) as exc:
                rejected.append({"index": index, "reason": _short_reason(exc)})
            except Exception as exc:  # still the record's fault: nothing was written yet
                log.warning("event %d: unexpected %s", index, type(exc).__name__, exc_info=True)
                rejected.append({"index": index, "reason": f"{type(exc).__name__}: {clip(str(exc))}"})

        reused: list[dict[str, Any]] = []

        def apply_all() -> None:
            outcomes = record_cdr_events([e for _, e in events], ledger, layout, router)
            for (index, event), outcome in zip(events, outcomes, strict=True):
                if isinstance(outcome, EventIdReused):  # refused before any write
                    reused.append({"index": index, "event_id": event.event_id, "reason": str(outcome)})
                else:
                    accepted.append({"index": index, "event_id": event.event_id, "duplicate": not outcome})

        try:
            await anyio.to_thread.run_sync(apply_all, limiter=event_threads)
        except Exception as exc:
            if not is_outage(exc):
                raise
            # Nothing is acknowledged; what was written before the fault is an idempotent duplicate when
            # OCP redelivers the batch.
            return unavailable(exc, f"events (none of {len(events)} acknowledged)")
        rejected = sorted(rejected + reused, key=lambda r: r["index"])
        duplicates = sum(1 for a in accepted if a["duplicate"])
        metrics.inc("ocp_receiver_events_accepted_total", len(accepted) - duplicates)
        metrics.inc("ocp_receiver_events_duplicate_total", duplicates)
        metrics.inc("ocp_receiver_events_rejected_total", len(rejected))
        # 409 when every refused event reused an id for another event, and nothing was accepted
        refused = 409 if reused and len(reused) == len(rejected) else 422
        status = 200 if not rejected else (207 if accepted else refused)
        answer: dict[str, Any] = {
            "accepted": len(accepted),
            "duplicates": duplicates,
            "rejected": rejected[: limits.max_rejections_listed],
        }
        if len(rejected) > limits.max_rejections_listed:
            answer["rejected_total"] = len(rejected)  # the list above is its first part
        return JSONResponse(answer, status_code=status)

    @app.put("/v1/recordings/{filename}", summary="Push one call recording (streamed body)")
    async def push_recording(filename: str, request: Request) -> JSONResponse:
        with parsing("not an OCP recording file name"):
            try:
                name = wire.parse_recording_filename(filename)
            except ids.InvalidIdentifier as exc:
                raise RequestRejected(400, str(exc)) from None
        expected_sha = authenticate_audio(request, filename)
        check_declared_length(request, settings.max_recording_bytes)
        stream = request.stream().__aiter__()
        started = time.monotonic()
        received = 0

        async def next_chunk() -> bytes:
            """The body's next chunk, or BodyTooSlow: a sender must keep sending, at a minimum rate."""
            nonlocal received
            try:
                with anyio.fail_after(limits.body_idle_timeout_s):
                    chunk = await stream.__anext__()
            except TimeoutError:
                raise BodyTooSlow(f"no body bytes for {limits.body_idle_timeout_s:g} s") from None
            received += len(chunk)
            late = time.monotonic() - started - limits.upload_grace_s
            if late > 0 and received < limits.min_upload_rate * late:
                raise BodyTooSlow(f"body arrives slower than {limits.min_upload_rate} bytes/s")
            return chunk

        try:
            head = await _first_bytes(next_chunk, SNIFF_BYTES)
        except BodyTooSlow as exc:
            raise RequestRejected(408, str(exc)) from None
        except ClientDisconnect:
            raise RequestRejected(400, "client disconnected before the body was complete") from None
        if not head:
            raise RequestRejected(400, "empty body: no audio")
        with parsing("body is not audio"):
            audio_format = sniff_format(head)
            if audio_format is None:
                raise RequestRejected(415, f"body is not audio: {describe_non_audio(head)}")

        def land() -> LandingResult:
            return land_recording(
                name,
                chunks(),
                ledger=ledger,
                layout=layout,
                max_bytes=settings.max_recording_bytes,
                expected_sha256=expected_sha,
            )

        def chunks() -> Iterator[bytes]:
            yield head
            while True:
                try:
                    yield anyio.from_thread.run(next_chunk)
                except StopAsyncIteration:
                    return

        metrics.add_gauge("ocp_receiver_uploads_in_flight", 1)
        try:
            result = await anyio.to_thread.run_sync(land, limiter=upload_threads)
        except RecordingTooLarge as exc:
            raise RequestRejected(413, str(exc)) from None
        except ChecksumMismatch:
            raise RequestRejected(400, "body does not match its x-ocp-content-sha256 checksum") from None
        except BodyTooSlow as exc:
            metrics.inc("ocp_receiver_uploads_aborted_total")
            log.warning("upload of %s cut: %s; nothing kept", name.dialog_id, exc)
            raise RequestRejected(408, f"{exc}; nothing was kept") from None
        except ClientDisconnect:
            metrics.inc("ocp_receiver_uploads_aborted_total")
            log.warning("upload of %s aborted by the sender; nothing kept", name.dialog_id)
            return JSONResponse({"error": "client disconnected"}, status_code=400)
        except Exception as exc:
            if not is_outage(exc):
                raise
            return unavailable(exc, f"recording of {name.dialog_id} (nothing was kept)")
        finally:
            metrics.add_gauge("ocp_receiver_uploads_in_flight", -1)
        metrics.inc("ocp_receiver_recordings_total", status=result.status)
        metrics.inc("ocp_receiver_bytes_total", result.arrival.size_bytes)
        log.info(
            "recording %s %s (%d bytes, %.2fs)",
            name.dialog_id,
            result.status,
            result.arrival.size_bytes,
            time.monotonic() - started,
        )
        body = {
            "status": result.status,
            "dialog_id": name.dialog_id,
            "sha256": result.arrival.sha256,
            "size": result.arrival.size_bytes,
            "detail": result.detail,
        }
        return JSONResponse(body, status_code=409 if result.status is LandingStatus.CONFLICT else 200)

    landing_state = _CachedCheck(
        lambda: check_root(settings.landing_url, timeout_s=LANDING_CHECK_TIMEOUT_S), LANDING_CHECK_EVERY_S
    )

    @app.get("/healthz", summary="Readiness: the ledger and landing storage answer")
    async def healthz() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            await anyio.to_thread.run_sync(ledger.get, "0" * 32)
            checks["ledger"] = "ok"
        except Exception as exc:  # health must answer, whatever broke
            checks["ledger"] = f"error: {type(exc).__name__}"
        # Landing (where every push goes): the preflight's check (S3 HeadBucket or a writable folder), at
        # most once per LANDING_CHECK_EVERY_S, so a load balancer's probe every second costs no S3 request.
        checks["landing"] = await anyio.to_thread.run_sync(landing_state.state)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "degraded", "instance": instance, **checks}, 200 if ok else 503
        )

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    return app


CdrEventOut = dict[str, Any]


class _CachedCheck:
    """A dependency check's last answer (``ok`` or ``error: <cause>``), asked again once it is older than
    ``every_s``; concurrent askers share one check."""

    def __init__(self, check: Callable[[], None], every_s: float) -> None:
        self._check = check
        self._every_s = every_s
        self._lock = threading.Lock()
        self._at = -float("inf")
        self._state = "unknown"

    def state(self) -> str:
        with self._lock:
            if time.monotonic() - self._at >= self._every_s:
                try:
                    self._check()
                    self._state = "ok"
                except Exception as exc:  # ResourceUnavailable: its cause; anything else: its type
                    self._state = f"error: {getattr(exc, 'cause', type(exc).__name__)}"
                self._at = time.monotonic()
            return self._state


async def _first_bytes(next_chunk: Callable[[], Awaitable[bytes]], want: int) -> bytes:
    head = b""
    try:
        while len(head) < want:
            head += await next_chunk()
    except StopAsyncIteration:
        pass
    return head


def _short_reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return clip(wire.validation_reason(exc), 200)
    return clip(str(exc), 200)
