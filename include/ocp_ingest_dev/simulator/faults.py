"""Fault injection for the simulator's API: forced responses, random 5xx, rate limit, per-window quotas,
broken downloads. ``Retry-After`` goes out as delta-seconds or, when switched on, as an HTTP-date."""

from __future__ import annotations

import email.utils
import math
import random
import threading
import time
from dataclasses import dataclass

from ocp_ingest_dev.simulator.clock import SimClock


@dataclass
class FaultSettings:
    transient_error_share: float = 0.0  # share of API requests answered 503
    rate_limit_per_s: float | None = None  # token bucket refill rate; None = unlimited
    rate_limit_burst: int = 10
    broken_download_share: float = 0.0  # share of file downloads cut mid-file
    broken_after_bytes: int = 64 * 1024
    # A request quota per fixed window (OCP's limits are unpublished: per minute is one legal shape).
    quota_per_window: int | None = None  # None = no quota
    quota_window_s: float = 60.0
    quota_retry_after_s: int | None = None  # Retry-After sent over quota; None = until the window ends
    retry_after_http_date: bool = False  # send Retry-After as an HTTP-date instead of seconds


@dataclass
class ForcedResponse:
    path_prefix: str
    status: int
    remaining: int
    retry_after: int | None = None


class FaultInjector:
    """Decides, per request, whether to answer with a fault instead of the real thing (thread-safe)."""

    def __init__(self, settings: FaultSettings, clock: SimClock, seed: int = 0) -> None:
        self.settings = settings
        self.clock = clock
        self._rng = random.Random(seed ^ 0xFA017)
        self._lock = threading.Lock()
        self._forced: list[ForcedResponse] = []
        self._broken_downloads = 0
        self._broken_after = settings.broken_after_bytes
        self._tokens = float(settings.rate_limit_burst)
        self._refilled = clock.now()
        self._quota_window = -1
        self._quota_used = 0
        self.injected: dict[str, int] = {"forced": 0, "5xx": 0, "429": 0, "broken": 0}

    def force(
        self, status: int, *, count: int = 1, path_prefix: str = "/v1/", retry_after: int | None = None
    ) -> None:
        """Answer the next ``count`` requests under ``path_prefix`` with ``status``."""
        with self._lock:
            self._forced.append(ForcedResponse(path_prefix, status, count, retry_after))

    def break_downloads(self, count: int = 1, after_bytes: int | None = None) -> None:
        """Drop the connection of the next ``count`` file downloads after ``after_bytes`` bytes."""
        with self._lock:
            self._broken_downloads += count
            if after_bytes is not None:
                self._broken_after = after_bytes

    def _rate_limited(self) -> int | None:
        rate = self.settings.rate_limit_per_s
        if not rate:
            return None
        now = self.clock.now()
        self._tokens = min(
            float(self.settings.rate_limit_burst), self._tokens + (now - self._refilled) * rate
        )
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return max(1, math.ceil((1 - self._tokens) / rate))

    def _over_quota(self) -> int | None:
        quota = self.settings.quota_per_window
        if quota is None:
            return None
        now, length = self.clock.now(), self.settings.quota_window_s
        window = int(now // length)
        if window != self._quota_window:
            self._quota_window, self._quota_used = window, 0
        if self._quota_used < quota:
            self._quota_used += 1
            return None
        if self.settings.quota_retry_after_s is not None:
            return self.settings.quota_retry_after_s
        return max(1, math.ceil((window + 1) * length - now))

    def retry_after_header(self, seconds: int) -> str:
        """The ``Retry-After`` value for a wait of ``seconds`` (an HTTP-date is against the wall clock)."""
        if self.settings.retry_after_http_date:
            return email.utils.formatdate(time.time() + seconds, usegmt=True)
        return str(seconds)

    def on_request(self, path: str) -> tuple[int, int | None] | None:
        """(status, retry_after) to answer instead of serving, or None to serve normally."""
        with self._lock:
            for forced in self._forced:
                if forced.remaining > 0 and path.startswith(forced.path_prefix):
                    forced.remaining -= 1
                    self.injected["forced"] += 1
                    return forced.status, forced.retry_after
            self._forced = [f for f in self._forced if f.remaining > 0]
            wait = self._over_quota()
            if wait is not None:
                self.injected["429"] += 1
                return 429, wait
            wait = self._rate_limited()
            if wait is not None:
                self.injected["429"] += 1
                return 429, wait
            if (
                self.settings.transient_error_share
                and self._rng.random() < self.settings.transient_error_share
            ):
                self.injected["5xx"] += 1
                return 503, None
            return None

    def download_cut(self) -> int | None:
        """Byte count after which this download's connection drops, or None."""
        with self._lock:
            if self._broken_downloads > 0:
                self._broken_downloads -= 1
            elif not (
                self.settings.broken_download_share
                and self._rng.random() < self.settings.broken_download_share
            ):
                return None
            self.injected["broken"] += 1
            return self._broken_after
