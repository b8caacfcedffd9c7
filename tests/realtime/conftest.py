"""The realtime tests push to the same real receiver as tests/receiver (production uvicorn setup)."""

from tests.receiver.conftest import SECRET, Receiver, calls, limits, receiver

__all__ = ["SECRET", "Receiver", "calls", "limits", "receiver"]
