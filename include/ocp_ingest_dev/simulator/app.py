"""The simulated OCP tenant: configuration, state, and its HTTP API (a Starlette app).

Routes (shapes from :mod:`ocp_ingest.ocp.wire`):
``POST /auth/realms/{realm}/protocol/openid-connect/token``, ``POST|GET /v1/exports``,
``GET /v1/exports/{id}``, ``GET /v1/exports/{id}/files``, ``GET /v1/exports/{id}/files/{file_id}`` (Range),
``GET /health``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ocp_ingest.ocp import wire
from ocp_ingest_dev.simulator.auth import AuthSettings, TokenIssuer
from ocp_ingest_dev.simulator.calls import SimCall, generate_calls
from ocp_ingest_dev.simulator.clock import SimClock
from ocp_ingest_dev.simulator.exports import ExportRuleError, ExportSettings, ExportsService
from ocp_ingest_dev.simulator.faults import FaultInjector, FaultSettings


def _default_window_start() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


@dataclass
class SimulatorConfig:
    """Everything the simulated tenant does; defaults follow OCP's documented behaviour."""

    seed: int = 1
    calls: int = 100
    window_start: datetime = field(default_factory=_default_window_start)
    window_hours: float = 1.0
    no_recording_share: float = 0.05
    mean_duration_s: float = 180.0
    min_duration_s: float = 5.0
    max_duration_s: float = 3600.0
    #: dialog group ids in OCP's documented form ``<40 hex>.<epoch ms>.<31 hex>`` (86 characters)
    documented_group_ids: bool = False
    #: pushed and exported events carry opaque ids (dots, slashes, about 90 characters)
    opaque_event_ids: bool = False
    exports: ExportSettings = field(default_factory=ExportSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    faults: FaultSettings = field(default_factory=FaultSettings)


class Simulator:
    """A simulated OCP tenant: generated calls, exports, auth and faults, all driven by one clock."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: SimClock | None = None,
        calls: list[SimCall] | None = None,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.clock = clock or SimClock()
        cfg = self.config
        self.calls = (
            calls
            if calls is not None
            else generate_calls(
                seed=cfg.seed,
                count=cfg.calls,
                window_start=cfg.window_start,
                window_hours=cfg.window_hours,
                no_recording_share=cfg.no_recording_share,
                mean_duration_s=cfg.mean_duration_s,
                min_duration_s=cfg.min_duration_s,
                max_duration_s=cfg.max_duration_s,
                documented_group_ids=cfg.documented_group_ids,
                opaque_event_ids=cfg.opaque_event_ids,
            )
        )
        self.calls_by_id = {c.dialog_id: c for c in self.calls}
        self.exports = ExportsService(self.calls, self.clock, cfg.exports, seed=cfg.seed)
        self.tokens = TokenIssuer(cfg.auth, self.clock)
        self.faults = FaultInjector(cfg.faults, self.clock, seed=cfg.seed)

    @property
    def ocp_groups(self) -> list[str]:
        return sorted({c.ocp_group for c in self.calls})

    def app(self) -> ASGIApp:
        """The HTTP API of this tenant."""
        return build_app(self)


def _error(
    status: int, code: str, message: str, retry_after: int | None = None, **extra: object
) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status, headers=headers)


def _json(model: object, status: int = 200) -> Response:
    body = model.model_dump_json() if hasattr(model, "model_dump_json") else json.dumps(model)
    return Response(body, status_code=status, media_type="application/json")


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``bytes=a-`` or ``bytes=a-b`` -> (start, end exclusive); None if absent; ValueError if unusable."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    first, _, last = spec.partition("-")
    if unit.strip() != "bytes" or "," in spec or not first.strip().isdigit():
        raise ValueError("only single 'bytes=start-[end]' ranges are supported")
    start = int(first)
    end = int(last) + 1 if last.strip() else size
    if start >= size or end <= start:
        raise ValueError("range not satisfiable")
    return start, min(end, size)


def build_app(sim: Simulator) -> ASGIApp:
    """Starlette app serving ``sim`` (auth and faults checked before every API route)."""

    async def token(request: Request) -> Response:
        realm = request.path_params["realm"]
        if realm not in sim.config.auth.realms:
            return JSONResponse({"error": "Realm does not exist"}, status_code=404)
        form = dict(parse_qsl((await request.body()).decode(errors="replace")))
        status, body = sim.tokens.grant(form)
        return JSONResponse(body, status_code=status)

    async def create_export(request: Request) -> Response:
        try:
            export_request = wire.ExportRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            fields = ", ".join(".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in exc.errors())
            return _error(422, wire.ERR_VALIDATION, f"invalid export request: {fields}")
        return _json(sim.exports.create(export_request), 201)

    async def list_exports(request: Request) -> Response:
        exports = sim.exports.list(request.query_params.get("group"))
        return _json({"exports": [json.loads(e.model_dump_json()) for e in exports]})

    async def get_export(request: Request) -> Response:
        return _json(sim.exports.get(request.path_params["export_id"]))

    async def list_files(request: Request) -> Response:
        raw_size = request.query_params.get("page_size")
        if raw_size is not None and not raw_size.isdigit():
            return _error(422, wire.ERR_VALIDATION, "page_size must be an integer")
        page = sim.exports.files_page(
            request.path_params["export_id"],
            request.query_params.get("page_token"),
            int(raw_size or 0) or None,
        )
        return _json(sim.exports.listing_json(page))

    async def download(request: Request) -> Response:
        item = sim.exports.file(request.path_params["export_id"], request.path_params["file_id"])
        size = item.meta.size
        try:
            byte_range = _parse_range(request.headers.get("range"), size)
        except ValueError as exc:
            return Response(str(exc), status_code=416, headers={"Content-Range": f"bytes */{size}"})
        start, end = byte_range or (0, size)
        headers = {
            "Content-Length": str(end - start),
            "Accept-Ranges": "bytes",
            "ETag": f'"{item.meta.sha256}"',
            "Content-Disposition": f'attachment; filename="{item.meta.name}"',
        }
        if byte_range:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        cut = sim.faults.download_cut()
        return StreamingResponse(
            _stream(item.produce(start, end), cut),
            status_code=206 if byte_range else 200,
            headers=headers,
            media_type=item.meta.content_type,
        )

    async def health(request: Request) -> Response:
        # What a harness running the simulator as a separate process reads for its summary.
        return JSONResponse(
            {
                "status": "ok",
                "calls": len(sim.calls),
                "now": sim.clock.now(),
                "faults_injected": dict(sim.faults.injected),
                "exports_created": len(sim.exports.list(None)),
            }
        )

    routes = [
        Route("/health", health),
        Route("/auth/realms/{realm}/protocol/openid-connect/token", token, methods=["POST"]),
        Route(wire.EXPORTS_PATH, create_export, methods=["POST"]),
        Route(wire.EXPORTS_PATH, list_exports, methods=["GET"]),
        Route(wire.EXPORTS_PATH + "/{export_id}", get_export),
        Route(wire.EXPORTS_PATH + "/{export_id}/files", list_files),
        Route(wire.EXPORTS_PATH + "/{export_id}/files/{file_id}", download),
    ]

    async def rule_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ExportRuleError)
        return _error(exc.status, exc.code, exc.message, **exc.extra)

    app = Starlette(routes=routes, exception_handlers={ExportRuleError: rule_error})
    return _Guard(app, sim)


class _Guard:
    """Pure ASGI middleware (no body buffering, so 1 GB downloads stream): faults first, then auth."""

    def __init__(self, app: ASGIApp, sim: Simulator) -> None:
        self.app, self.sim = app, sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path == "/health":
            await self.app(scope, receive, send)
            return
        fault = self.sim.faults.on_request(path)
        if fault is not None:
            status, retry_after = fault
            code = wire.ERR_RATE_LIMITED if status == 429 else wire.ERR_UNAVAILABLE
            response = _error(status, code, f"simulated HTTP {status}")
            if retry_after is not None:
                response.headers["Retry-After"] = self.sim.faults.retry_after_header(retry_after)
            await response(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if path.startswith("/v1/") and not self.sim.tokens.check(
            headers.get(wire.PAT_HEADER), headers.get("authorization")
        ):
            await _error(401, wire.ERR_UNAUTHORIZED, "missing, invalid or expired credentials")(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


class _ConnectionCut(ConnectionError):
    """Raised inside a response body to make the server drop the connection (the broken-download fault)."""


async def _stream(chunks: Iterator[bytes], cut_after: int | None) -> AsyncIterator[bytes]:
    # Chunks are in-memory slices (no blocking I/O), so yielding them from the event loop is fine.
    sent = 0
    for chunk in chunks:
        if cut_after is not None and sent + len(chunk) > cut_after:
            if cut_after > sent:
                yield chunk[: cut_after - sent]
            raise _ConnectionCut("simulated connection drop")
        sent += len(chunk)
        yield chunk
