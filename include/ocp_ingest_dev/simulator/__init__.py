"""A faithful OCP simulator: calls, WAV audio, Exports API, auth, pushes with faults, ground truth."""

from __future__ import annotations

from ocp_ingest_dev.simulator.app import Simulator, SimulatorConfig
from ocp_ingest_dev.simulator.auth import AuthSettings
from ocp_ingest_dev.simulator.calls import SimCall, generate_calls
from ocp_ingest_dev.simulator.clock import SimClock
from ocp_ingest_dev.simulator.exports import ExportSettings
from ocp_ingest_dev.simulator.faults import FaultSettings
from ocp_ingest_dev.simulator.server import RunningSimulator, serve, start

__all__ = [
    "AuthSettings",
    "ExportSettings",
    "FaultSettings",
    "RunningSimulator",
    "SimCall",
    "SimClock",
    "Simulator",
    "SimulatorConfig",
    "generate_calls",
    "serve",
    "start",
]
