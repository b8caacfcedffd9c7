"""A minimal Prometheus text-format registry (counters and gauges with labels), thread-safe."""

from __future__ import annotations

import threading
from collections import defaultdict


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self._gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        with self._lock:
            self._counters[(name, tuple(sorted(labels.items())))] += amount

    def add_gauge(self, name: str, amount: float, **labels: str) -> None:
        with self._lock:
            self._gauges[(name, tuple(sorted(labels.items())))] += amount

    def value(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            return self._counters.get(key, self._gauges.get(key, 0.0))

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for kind, series in (("counter", self._counters), ("gauge", self._gauges)):
                for name in sorted({n for n, _ in series}):
                    lines.append(f"# TYPE {name} {kind}")
                    for (metric, labels), value in sorted(series.items()):
                        if metric != name:
                            continue
                        label_text = ",".join(f'{k}="{v}"' for k, v in labels)
                        lines.append(
                            f"{name}{{{label_text}}} {value:g}" if label_text else f"{name} {value:g}"
                        )
        return "\n".join(lines) + "\n"
