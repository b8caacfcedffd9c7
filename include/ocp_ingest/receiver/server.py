"""Running the receiver: ``ocp-ingest receiver`` (uvicorn, structured JSON logs, bounded connections).

uvicorn's defaults leave the ingress open to a few cheap attacks, so the server is configured here:

* request heads (request line + headers) are parsed by h11 with a size bound; a bigger head is answered
  431 and the connection closed before it is buffered (httptools, uvicorn's default parser, has no bound);
* a request head must be complete within ``head_timeout_s`` of the connection (or of its first bytes on a
  kept-alive connection), else 408 and close: a slowloris sender trickling header bytes, or a connection
  that never sends anything, cannot hold a connection;
* ``limit_concurrency`` caps connections and requests in flight as a whole (503 beyond).

Per-route limits (header count, concurrent and slow uploads, body read timeouts) live in the ASGI guard and
the routes (``receiver.guard``, ``receiver.app``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from ocp_ingest.config import Settings
from ocp_ingest.receiver.guard import ReceiverLimits

MAX_LOG_MESSAGE = 2000  # characters of a log message; the rest is cut (a request can be large)


class JsonFormatter(logging.Formatter):
    """One JSON object per log line, for log shippers; a traceback travels inside the object."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if len(message) > MAX_LOG_MESSAGE:
            message = message[:MAX_LOG_MESSAGE] + f"... ({len(message)} characters)"
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str = "INFO") -> None:
    """Every line JSON: the root handler, uvicorn's own loggers, warnings and uncaught exceptions."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "asyncio"):
        uv = logging.getLogger(name)
        uv.handlers[:] = []  # through the root's JSON handler, never a plain-text one of their own
        uv.propagate = True
    logging.captureWarnings(True)
    crash = logging.getLogger("ocp_ingest.receiver.crash")

    def log_uncaught(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        crash.critical("uncaught exception", exc_info=(kind, exc, tb))

    def log_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit and args.exc_value is not None:
            crash.error(
                "uncaught exception in thread %s",
                getattr(args.thread, "name", "?"),
                exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
            )

    sys.excepthook = log_uncaught
    threading.excepthook = log_thread


def protocol_class(limits: ReceiverLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a bounded, timed request head (431 / 408 instead of unbounded waits)."""

    class ReceiverProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the head is complete (or the connection failed)
                self._cancel_head_timer()
            elif self._head_timer is None and not self.transport.is_closing():
                # The first bytes of a later request's head: it is timed from here. (An idle keep-alive
                # connection between requests is uvicorn's keep-alive timeout's business.)
                self._arm_head_timer()

        def send_400_response(self, msg: str) -> None:
            # Called while h11's RemoteProtocolError is being handled; its hint says 431 for a head
            # larger than the bound.
            hint = getattr(sys.exc_info()[1], "error_status_hint", 400)
            if hint == 431:
                self.logger.warning("request head larger than %d bytes refused", limits.max_head_bytes)
                self._send_error(431, f"request head exceeds {limits.max_head_bytes} bytes")
            else:
                super().send_400_response(msg)

        def _send_error(self, status: int, msg: str) -> None:
            if self.conn.our_state is h11.IDLE:
                headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
                try:
                    self.transport.write(self.conn.send(h11.Response(status_code=status, headers=headers)))
                    self.transport.write(self.conn.send(h11.Data(data=msg.encode("ascii"))))
                    self.transport.write(self.conn.send(h11.EndOfMessage()))
                except h11.LocalProtocolError:
                    pass  # the connection is already broken; closing is all that is left
            self.transport.close()

        def _arm_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(limits.head_timeout_s, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            if self.conn.trailing_data[0]:  # part of a head came, too slowly
                self.logger.warning("request head not complete within %gs; closed", limits.head_timeout_s)
                self._send_error(408, f"request head not complete within {limits.head_timeout_s:g} s")
            else:  # an idle connection: close it quietly, as keep-alive does
                self.transport.close()

    return ReceiverProtocol


def receiver_config(
    app: ASGIApp,
    host: str,
    port: int,
    limits: ReceiverLimits | None = None,
    *,
    log_level: str = "info",
) -> uvicorn.Config:
    """The uvicorn configuration the receiver runs with, in production and in its tests."""
    limits = limits or ReceiverLimits()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_class(limits),
        h11_max_incomplete_event_size=limits.max_head_bytes,
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
        log_config=None,  # keep our JSON formatter
        log_level=log_level,
        access_log=False,
        lifespan="on",  # its shutdown publishes the last audit events
        ws="none",
    )


@dataclass
class RunningReceiver:
    """A receiver served by uvicorn in a background thread (tests, the demo)."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A socket bound to ``host:port`` for uvicorn to listen on. ``reuse_port``: other receiver processes
    may bind it too (``SO_REUSEPORT``), and the kernel spreads new connections over them, so one host runs
    a receiver per core."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve_in_thread(
    config_for: Callable[[int], uvicorn.Config], host: str, port: int, name: str
) -> tuple[str, uvicorn.Server, threading.Thread]:
    """Serve the uvicorn config ``config_for(bound_port)`` in a daemon thread on ``host:port`` (0 = a free
    port); return (url, server, thread) once it accepts connections."""
    sock = listening_socket(host, port)
    bound = sock.getsockname()[1]
    server = uvicorn.Server(config_for(bound))
    # uvicorn installs no signal handlers off the main thread: the caller keeps owning process signals.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} on {host}:{bound} failed to start")
        time.sleep(0.005)
    return f"http://{host}:{bound}", server, thread


def start_receiver(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, limits: ReceiverLimits | None = None
) -> RunningReceiver:
    """Serve ``app`` with the receiver's uvicorn configuration on ``host:port`` (0 = a free port)."""
    return RunningReceiver(
        *serve_in_thread(
            lambda bound: receiver_config(app, host, bound, limits, log_level="warning"),
            host,
            port,
            "ocp-receiver",
        )
    )


def serve(host: str | None = None, port: int | None = None, *, reuse_port: bool = False) -> None:
    from ocp_ingest.preflight import preflight, receiver_needs
    from ocp_ingest.receiver.app import create_app

    settings = Settings.from_env()
    configure_logging()
    # Fail fast, before listening: a missing bucket or table, or an endpoint not answering, is one line
    # naming the setting (PreflightError; the CLI prints it and exits 1), never a traceback on the first push.
    preflight(settings, receiver_needs(settings))
    limits = ReceiverLimits()
    app = create_app(settings, limits=limits)
    host, port = host or settings.receiver_host, port or settings.receiver_port
    config = receiver_config(app, host, port, limits, log_level="info")
    # One process is one core at most (the GIL): --reuse-port lets several share the port.
    sockets = [listening_socket(host, port, reuse_port=True)] if reuse_port else None
    uvicorn.Server(config).run(sockets=sockets)
