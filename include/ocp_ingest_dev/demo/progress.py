"""The demo's progress line: where the calls of a running flow stand, every few seconds."""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ocp_ingest.ledger import Ledger
    from ocp_ingest_dev.demo.flow import Flow


def progress_line(flow: Flow, ledger: Ledger) -> str:
    """Pushed, stored, terminal and pending calls of ``flow`` (read through ``ledger``) and its DAG runs."""
    records = flow.records(ledger)
    pushed = sum(1 for p in list(flow.plans.values()) if p.events_status)
    stored = sum(1 for r in records.values() if r.s3_stored)
    terminal = sum(1 for r in records.values() if r.is_terminal and not r.s3_stored)
    pending = len(flow.calls) - stored - terminal
    return (
        f"[{flow.elapsed_s:6.1f}s] pushed {pushed}/{len(flow.calls)}  stored {stored}  "
        f"terminal {terminal}  pending {pending}  realtime runs {flow.realtime_runs}  "
        f"reconciliation runs {flow.reconciliation_runs}"
    )


class Progress:
    """Prints :func:`progress_line` every few seconds: in place on a terminal, as lines otherwise."""

    def __init__(self, flow: Flow, interval_s: float | None = None, stream: Any = None) -> None:
        self.flow = flow
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = interval_s or (2.0 if self.tty else 10.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-progress", daemon=True)
        self._ledger: Ledger | None = None

    def _emit(self, final: bool = False) -> None:
        with contextlib.suppress(Exception):  # a progress line must never break the run
            assert self._ledger is not None
            line = progress_line(self.flow, self._ledger)
            if self.tty:
                self.stream.write("\r\x1b[K" + line + ("\n" if final else ""))
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._emit()

    def __enter__(self) -> Progress:
        from ocp_ingest.ledger import open_ledger

        # The progress thread reads through its own connection, never the one the flow's thread uses.
        self._ledger = open_ledger(self.flow.settings)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._emit(final=True)
        if self._ledger is not None:
            self._ledger.close()
