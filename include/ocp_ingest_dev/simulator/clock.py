"""The simulator's clock: real time plus a controllable offset, so tests can jump hours without sleeping."""

from __future__ import annotations

import threading
import time


class SimClock:
    """Epoch-seconds clock; ``advance()`` jumps it forward (or back), thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds
