"""The simulator's clock: real time plus a controllable offset, so tests can jump hours without sleeping."""

from __future__ import annotations

import threading
import time


class SimClock:
    """Epoch-seconds clock. ``advance()`` jumps forward; ``freeze()`` stops it (both thread-safe)."""

    def __init__(self, start: float | None = None, *, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0 if start is None else start - time.time()
        self._frozen_at: float | None = (time.time() + self._offset) if frozen else None

    def now(self) -> float:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return time.time() + self._offset

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def advance(self, seconds: float) -> None:
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += seconds
            else:
                self._offset += seconds

    def freeze(self) -> None:
        with self._lock:
            self._frozen_at = time.time() + self._offset

    def unfreeze(self) -> None:
        with self._lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - time.time()
                self._frozen_at = None
