"""Stage 1, realtime: what happens to a CDR event and to a pushed recording. No tasks or DAGs in here
(object storage through :mod:`ocp_ingest.storage.objects`).

The receiver calls :func:`record_cdr_event` and :func:`land_recording` the moment something arrives; the
continuous DAG rolls CDR events into the manifest (:func:`roll_cdr_manifest`) and hands batches of landed
recordings to :class:`RealtimeProcessor`.

- :mod:`~ocp_ingest.realtime.events`: CDR events (ledger, landing, the hourly manifest);
- :mod:`~ocp_ingest.realtime.landing`: pushed recordings in landing and their sidecars;
- :mod:`~ocp_ingest.realtime.batch`: the DAG's batch (validate, store, mark).
"""

from __future__ import annotations

from ocp_ingest.realtime.batch import ArrivalState, BatchSummary, RealtimeProcessor
from ocp_ingest.realtime.events import EventIdReused, record_cdr_event, roll_cdr_manifest
from ocp_ingest.realtime.landing import (
    Arrival,
    LandingResult,
    LandingStatus,
    RecordingTooLarge,
    count_arrivals,
    land_recording,
    land_sidecar,
    list_arrivals,
)

__all__ = [
    "Arrival",
    "ArrivalState",
    "BatchSummary",
    "EventIdReused",
    "LandingResult",
    "LandingStatus",
    "RealtimeProcessor",
    "RecordingTooLarge",
    "count_arrivals",
    "land_recording",
    "land_sidecar",
    "list_arrivals",
    "record_cdr_event",
    "roll_cdr_manifest",
]
