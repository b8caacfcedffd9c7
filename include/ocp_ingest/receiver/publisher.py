"""The receiver's audit publisher: the Parquet trail written every interval, not once per request.

Every acknowledged change's audit event is durable before the answer (the ledger's outbox, committed with
the change). Publishing it to Parquet per request cost a Parquet file, its fsyncs and an outbox transaction
for every push; here one thread publishes whatever the interval gathered in one file per (day, LOB). A
receiver that stops cleanly publishes what is left; one that is killed leaves its events in the outbox,
where any later publisher's leftover pass finds them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("ocp_ingest.receiver")


class PeriodicPublisher:
    """Call ``flush`` every ``every_s`` seconds while ``pending()`` says there is something to publish.

    ``start`` is idempotent; ``stop`` ends the thread and flushes one last time. A failing flush is logged
    and tried again at the next interval (the events wait in the outbox meanwhile).
    """

    def __init__(self, flush: Callable[[], object], pending: Callable[[], int], every_s: float) -> None:
        self._flush = flush
        self._pending = pending
        self._every_s = every_s
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stopping.is_set():
                self._thread = threading.Thread(target=self._run, name="audit-publisher", daemon=True)
                self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        with self._lock:
            self._stopping.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        self._publish()  # what the last interval gathered (and anything a late request added)

    def _run(self) -> None:
        while not self._stopping.wait(self._every_s):
            self._publish()

    def _publish(self) -> None:
        try:
            if self._pending():
                self._flush()
        except Exception:  # durable in the outbox: the next interval (or a leftover pass) publishes them
            log.exception("audit publish failed; events wait in the ledger's outbox")
