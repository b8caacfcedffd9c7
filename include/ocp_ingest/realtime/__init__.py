"""Stage 1, realtime: what happens to a CDR event and to a pushed recording. No tasks or DAGs in here
(object storage through :mod:`ocp_ingest.storage.objects`).

The receiver calls :func:`record_cdr_event` and :func:`land_recording` the moment something arrives; the
continuous DAG rolls CDR events into the manifest (:func:`roll_cdr_manifest`), splits what has landed into
shards (:func:`plan_shards`) and hands each shard's batch to :class:`RealtimeProcessor` in a mapped task.

- :mod:`~ocp_ingest.realtime.events`: CDR events (ledger, landing, the hourly manifest);
- :mod:`~ocp_ingest.realtime.landing`: pushed recordings in landing and their sidecars;
- :mod:`~ocp_ingest.realtime.shards`: which mapped task takes which recording;
- :mod:`~ocp_ingest.realtime.batch`: the DAG's batch (validate, store, mark).
"""

from __future__ import annotations

from ocp_ingest.realtime.batch import ArrivalState, BatchSummary, RealtimeProcessor
from ocp_ingest.realtime.events import (
    EventIdReused,
    record_cdr_event,
    record_cdr_events,
    roll_cdr_manifest,
)
from ocp_ingest.realtime.landing import (
    Arrival,
    LandingResult,
    LandingStatus,
    RecordingTooLarge,
    count_arrivals,
    count_landed_recordings,
    land_recording,
    land_sidecar,
    list_arrivals,
)
from ocp_ingest.realtime.shards import Shard, plan_shards, shard_of

__all__ = [
    "Arrival",
    "ArrivalState",
    "BatchSummary",
    "EventIdReused",
    "LandingResult",
    "LandingStatus",
    "RealtimeProcessor",
    "RecordingTooLarge",
    "Shard",
    "count_arrivals",
    "count_landed_recordings",
    "land_recording",
    "land_sidecar",
    "list_arrivals",
    "plan_shards",
    "record_cdr_event",
    "record_cdr_events",
    "roll_cdr_manifest",
    "shard_of",
]
