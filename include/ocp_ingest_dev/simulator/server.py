"""Run the simulator's HTTP API with uvicorn in a background thread (tests, benchmarks, the CLI)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from ocp_ingest.receiver.server import serve_in_thread
from ocp_ingest_dev.simulator.app import Simulator


@dataclass
class RunningServer:
    """An ASGI app served by uvicorn in a background thread; ``url`` is its base URL."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


@dataclass
class RunningSimulator(RunningServer):
    """A served simulator: ``sim`` gives tests its clock, faults and state."""

    sim: Simulator | None = None


def start_asgi(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "critical"
) -> RunningServer:
    """Serve ``app`` on ``host:port`` (0 = a free port) and return once it accepts connections."""

    def config_for(_bound: int) -> uvicorn.Config:
        return uvicorn.Config(
            app, log_level=log_level, access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )

    return RunningServer(*serve_in_thread(config_for, host, port, "ocp-asgi"))


def start(
    sim: Simulator, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "critical"
) -> RunningSimulator:
    """Start serving ``sim`` and return once it accepts connections."""
    running = start_asgi(sim.app(), host, port, log_level=log_level)
    return RunningSimulator(running.url, running.server, running.thread, sim)


@contextlib.contextmanager
def serve(
    sim: Simulator | None = None, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "critical"
) -> Iterator[RunningSimulator]:
    """Context manager: serve a simulator on loopback for the duration of the block."""
    running = start(sim or Simulator(), host, port, log_level=log_level)
    try:
        yield running
    finally:
        running.stop()
