"""The receiver: where OCP pushes CDR events and recordings (the seed's API Gateway + Lambda ingress).

- ``POST /v1/events``: one JSON object, a JSON array or NDJSON. Valid events go to the ledger at once and
  to the CDR manifest; invalid ones are listed back with the reason, the rest of the batch is kept.
- ``PUT /v1/recordings/{filename}``: the audio body, streamed to landing (flat memory), SHA-256 checked,
  FILE_RECEIVED set at once. OCP's file name ``{group}~{account}~{timestamp}~{dialog_id}.wav``.
- ``GET /healthz``, ``GET /metrics`` (Prometheus text), ``GET /openapi.json``.

Every request is authenticated before anything is written (Standard Webhooks HMAC, or a shared secret),
bodies are bounded, audio is sniffed from its bytes, and every id is validated before it touches storage.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
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
from ocp_ingest.ledger import Ledger, open_ledger
from ocp_ingest.ocp import wire
from ocp_ingest.realtime import (
    EventIdReused,
    LandingResult,
    RecordingTooLarge,
    land_recording,
    record_cdr_event,
)
from ocp_ingest.receiver import auth as signing
from ocp_ingest.receiver.metrics import Metrics
from ocp_ingest.routing import LobRouter
from ocp_ingest.storage import ChecksumMismatch, StorageLayout

log = logging.getLogger("ocp_ingest.receiver")
SNIFF_BYTES = 64


class RequestRejected(Exception):
    """A 4xx answer with a reason the sender can act on (never containing a secret)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


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
) -> FastAPI:
    """Build the receiver app. Tests pass their own settings, secret and ledger."""
    settings = settings or Settings.from_env()
    secret = secret if secret is not None else _secret_from_env()
    ledger = ledger or open_ledger(settings)
    layout = StorageLayout.from_settings(settings)
    router = LobRouter.load(settings.lob_routing_file)
    metrics = Metrics()
    instance = f"receiver-{uuid.uuid4().hex[:8]}"
    if ledger.audit is not None and ledger.audit.actor is None:
        ledger.audit.actor = instance  # audit events say which receiver instance recorded them

    app = FastAPI(
        title="OCP ingest receiver",
        version="1",
        description="Ingress for OCP CDR events and call recordings.",
    )
    app.state.metrics = metrics
    app.state.ledger = ledger

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

    def authenticate_audio(request: Request) -> str | None:
        """Check headers before the body streams; returns the sender's SHA-256 when it gave one."""
        try:
            if settings.receiver_auth == "shared":
                signing.verify_shared_secret(secret, request.headers)
                given = request.headers.get(signing.CONTENT_SHA256_HEADER, "").lower()
                if given and not (len(given) == 64 and all(c in "0123456789abcdef" for c in given)):
                    raise RequestRejected(400, f"malformed {signing.CONTENT_SHA256_HEADER} header")
                return given or None
            _, sha = signing.verify_digest(
                secret, request.headers, tolerance_s=settings.receiver_replay_window_s
            )
            return sha
        except signing.SignatureError as exc:
            raise RequestRejected(401, str(exc)) from None

    def check_declared_length(request: Request, limit: int) -> None:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise RequestRejected(400, "malformed Content-Length")
            if int(declared) > limit:
                raise RequestRejected(413, f"body of {declared} bytes exceeds the limit of {limit} bytes")

    async def read_bounded(request: Request, limit: int) -> bytes:
        parts, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestRejected(413, f"body exceeds the limit of {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    @app.exception_handler(RequestRejected)
    async def _rejected(request: Request, exc: RequestRejected) -> JSONResponse:
        metrics.inc("ocp_receiver_requests_rejected_total", status=str(exc.status))
        log.warning("rejected %s %s: %s %s", request.method, request.url.path, exc.status, exc.reason)
        return JSONResponse({"error": exc.reason}, status_code=exc.status)

    @app.post("/v1/events", summary="Push CDR events (JSON object, JSON array or NDJSON)")
    async def push_events(request: Request) -> JSONResponse:
        check_declared_length(request, settings.max_event_body_bytes)
        body = await read_bounded(request, settings.max_event_body_bytes)
        authenticate_events(request, body)
        try:
            raw_events = wire.parse_event_body(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestRejected(400, f"body is not JSON, a JSON array or NDJSON: {exc}") from None
        accepted: list[CdrEventOut] = []
        rejected: list[dict[str, Any]] = []
        events = []
        for index, raw in enumerate(raw_events):
            try:
                if not isinstance(raw, dict):
                    raise ValueError("each event must be a JSON object")
                event = wire.CdrEvent.model_validate(raw)
                ids.token("event_id", event.event_id)
                events.append((index, event))
            except (ValidationError, ValueError) as exc:
                rejected.append({"index": index, "reason": _short_reason(exc)})

        reused: list[dict[str, Any]] = []

        def apply_all() -> None:
            for index, event in events:
                try:
                    created = record_cdr_event(event, ledger, layout, router)
                except EventIdReused as exc:  # refused before any write
                    reused.append({"index": index, "event_id": event.event_id, "reason": str(exc)})
                    continue
                accepted.append({"index": index, "event_id": event.event_id, "duplicate": not created})
            ledger.flush_audit()  # before the 200: an acknowledged event has its audit row on storage

        await anyio.to_thread.run_sync(apply_all)
        rejected = sorted(rejected + reused, key=lambda r: r["index"])
        duplicates = sum(1 for a in accepted if a["duplicate"])
        metrics.inc("ocp_receiver_events_accepted_total", len(accepted) - duplicates)
        metrics.inc("ocp_receiver_events_duplicate_total", duplicates)
        metrics.inc("ocp_receiver_events_rejected_total", len(rejected))
        # 409 when every refused event reused an id for another event, and nothing was accepted
        refused = 409 if reused and len(reused) == len(rejected) else 422
        status = 200 if not rejected else (207 if accepted else refused)
        return JSONResponse(
            {"accepted": len(accepted), "duplicates": duplicates, "rejected": rejected}, status_code=status
        )

    @app.put("/v1/recordings/{filename}", summary="Push one call recording (streamed body)")
    async def push_recording(filename: str, request: Request) -> JSONResponse:
        try:
            name = wire.parse_recording_filename(filename)
        except ids.InvalidIdentifier as exc:
            raise RequestRejected(400, str(exc)) from None
        expected_sha = authenticate_audio(request)
        check_declared_length(request, settings.max_recording_bytes)
        stream = request.stream().__aiter__()
        head = await _first_bytes(stream, SNIFF_BYTES)
        if not head:
            raise RequestRejected(400, "empty body: no audio")
        if sniff_format(head) is None:
            raise RequestRejected(415, f"body is not audio: {describe_non_audio(head)}")

        def land() -> LandingResult:
            try:
                return land_recording(
                    name,
                    chunks(),
                    ledger=ledger,
                    layout=layout,
                    max_bytes=settings.max_recording_bytes,
                    expected_sha256=expected_sha,
                )
            finally:
                ledger.flush_audit()

        def chunks() -> Iterator[bytes]:
            yield head
            while True:
                try:
                    yield anyio.from_thread.run(stream.__anext__)
                except StopAsyncIteration:
                    return

        started = time.monotonic()
        metrics.add_gauge("ocp_receiver_uploads_in_flight", 1)
        try:
            result = await anyio.to_thread.run_sync(land)
        except RecordingTooLarge as exc:
            raise RequestRejected(413, str(exc)) from None
        except ChecksumMismatch:
            raise RequestRejected(400, "body does not match its x-ocp-content-sha256 checksum") from None
        except ClientDisconnect:
            metrics.inc("ocp_receiver_uploads_aborted_total")
            log.warning("upload of %s aborted by the sender; nothing kept", name.dialog_id)
            return JSONResponse({"error": "client disconnected"}, status_code=400)
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
        return JSONResponse(body, status_code=409 if result.status == "conflict" else 200)

    @app.get("/healthz", summary="Liveness and dependencies")
    async def healthz() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            await anyio.to_thread.run_sync(ledger.get, "0" * 32)
            checks["ledger"] = "ok"
        except Exception as exc:  # health must answer, whatever broke
            checks["ledger"] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "degraded", "instance": instance, **checks}, 200 if ok else 503
        )

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    return app


CdrEventOut = dict[str, Any]


async def _first_bytes(stream: AsyncIterator[bytes], want: int) -> bytes:
    head = b""
    try:
        while len(head) < want:
            head += await stream.__anext__()
    except StopAsyncIteration:
        pass
    return head


def _short_reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "event"
        return f"{where}: {first.get('msg', 'invalid')}"
    return str(exc)[:200]
