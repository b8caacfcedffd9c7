"""Plan: group a run's pending calls into OCP exports, the way OCP allows them.

Per OCP group, one hour-aligned export window of 1 h .. 2 days. At most ``max_plans_per_group`` plans per
group per run (default 1: exports of a group are then strictly serial across the whole system, because the
DAG runs one run at a time); the rest is carried to the next run, oldest calls first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ocp_ingest.ocp import wire
from ocp_ingest.reconcile.detect import PendingCall
from ocp_ingest.reconcile.windows import HOUR, ceil_hour, floor_hour, iso_seconds, parse_when

#: Added before a call's start and after its end when its window is planned: OCP's docs do not say by
#: which time it selects CDR lines (the call's start, or each line's own event time).
WINDOW_MARGIN = timedelta(minutes=10)
#: Added to the margin per attempt the call has already failed. Windows are hour-aligned, so anything
#: less than an hour could re-plan the very window that already failed to explain the call.
RETRY_WIDENING = HOUR


def call_window(
    call: PendingCall, margin: timedelta = WINDOW_MARGIN, widening: timedelta = RETRY_WIDENING
) -> tuple[datetime, datetime]:
    """The hour-aligned window that covers ``call``'s whole life, start to end, plus its margin.

    The margin grows by ``widening`` per failed attempt (``retry_count``), so a retried call gets a wider
    window than the one that failed it. OCP's 2-day limit caps it: margin is given up (end side first)
    before any of the call's life; a call longer than 2 days (never seen) keeps its start's 2 days.
    """
    end = call.end if call.end is not None and call.end > call.start else call.start
    core = floor_hour(call.start), floor_hour(end) + HOUR  # half-open: an end on the hour needs that hour
    if core[1] - core[0] >= wire.MAX_WINDOW:
        return core[0], core[0] + wire.MAX_WINDOW
    widen = margin + widening * max(0, call.retry_count)
    lo, hi = floor_hour(call.start - widen), floor_hour(end + widen) + HOUR
    while hi - lo > wire.MAX_WINDOW:
        if hi > core[1]:
            hi -= HOUR
        if hi - lo > wire.MAX_WINDOW and lo < core[0]:
            lo += HOUR
    return lo, hi


@dataclass(frozen=True)
class ExportPlan:
    """One export to request: an OCP group, an hour-aligned window, and the pending calls it should return."""

    ocp_group: str
    start: datetime
    end: datetime
    dialog_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        start, end = wire.align_window(self.start, self.end)  # OCP's rule, checked where plans are made
        if (start, end) != (self.start, self.end):
            raise ValueError(f"export window must be hour-aligned, got {self.start} .. {self.end}")

    @property
    def label(self) -> str:
        """For the UI (map_index_template) and logs: ``grp-a 2026-11-24T09Z..2026-11-24T12Z (37 calls)``."""
        fmt = "%Y-%m-%dT%HZ"
        n = len(self.dialog_ids)
        return f"{self.ocp_group} {self.start:{fmt}}..{self.end:{fmt}} ({n} call{'s' if n != 1 else ''})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ocp_group": self.ocp_group,
            "start": iso_seconds(self.start),
            "end": iso_seconds(self.end),
            "dialog_ids": list(self.dialog_ids),
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, data: ExportPlan | Mapping[str, Any]) -> ExportPlan:
        """The one place a plan dict (an XCom, the pod's ``--plan-json``) becomes a plan again."""
        if isinstance(data, ExportPlan):
            return data
        start, end = parse_when(data["start"]), parse_when(data["end"])
        assert start is not None and end is not None
        return cls(str(data["ocp_group"]), start, end, tuple(data.get("dialog_ids") or ()))


@dataclass
class PlanningResult:
    """A run's plans, oldest first, and what they left for later runs."""

    plans: list[ExportPlan]
    #: pending calls left for later runs, per OCP group
    carried: dict[str, int] = field(default_factory=dict)


def plan_exports(
    pending: Iterable[PendingCall],
    *,
    max_plans_per_group: int = 1,
    max_calls: int = 3000,
    window: tuple[datetime, datetime] | None = None,
    ocp_groups: Iterable[str] = (),
    margin: timedelta = WINDOW_MARGIN,
) -> PlanningResult:
    """Group pending calls into export plans: per OCP group, hour-aligned windows of 1 h .. 2 days.

    Every call needs its :func:`call_window` (its whole life plus a margin that grows with its failed
    attempts). Each plan starts where its group's earliest-needed window starts and takes, in that order,
    every call whose window fits in 2 days from there, up to ``max_calls``; it ends where the last of
    their windows ends. Hours with nothing pending in between are bridged, not split: an export costs
    mostly its fixed preparation time, and only the planned calls' files are downloaded. Plans come out
    oldest first.

    With ``window`` (a backfill) every group in ``ocp_groups`` (plus those with pending calls) gets plans
    that cover the window itself, in 2-day pieces, so the manifest diff sees the whole window even where
    the ledger knows no pending call.
    """
    if max_plans_per_group < 1 or max_calls < 1:
        raise ValueError("max_plans_per_group and max_calls must be at least 1")
    by_group: dict[str, list[PendingCall]] = defaultdict(list)
    for call in pending:
        by_group[call.ocp_group].append(call)
    for group in ocp_groups:
        by_group.setdefault(group, [])
    plans: list[ExportPlan] = []
    carried: dict[str, int] = {}
    for group, calls in by_group.items():
        calls.sort(key=lambda c: (c.start, c.dialog_id))
        if window is not None:
            group_plans, rest = _plan_window(group, calls, window, max_plans_per_group, max_calls)
        else:
            group_plans, rest = _plan_pending(group, calls, max_plans_per_group, max_calls, margin)
        plans += group_plans
        if rest:
            carried[group] = rest
    plans.sort(key=lambda p: (p.start, p.ocp_group))
    return PlanningResult(plans, carried)


def _plan_pending(
    group: str, calls: list[PendingCall], max_plans: int, max_calls: int, margin: timedelta
) -> tuple[list[ExportPlan], int]:
    needed = sorted(((call_window(c, margin), c) for c in calls), key=lambda w: (w[0][0], w[1].start))
    plans: list[ExportPlan] = []
    while needed and len(plans) < max_plans:
        start = needed[0][0][0]
        limit = start + wire.MAX_WINDOW
        taken = [w for w in needed if w[0][1] <= limit][:max_calls]
        end = max(w[0][1] for w in taken)
        plans.append(ExportPlan(group, start, end, tuple(c.dialog_id for _, c in taken)))
        chosen = {id(w) for w in taken}
        needed = [w for w in needed if id(w) not in chosen]  # a call that did not fit waits its turn
    return plans, len(needed)


def _plan_window(
    group: str,
    calls: list[PendingCall],
    window: tuple[datetime, datetime],
    max_plans: int,
    max_calls: int,
) -> tuple[list[ExportPlan], int]:
    start, end = floor_hour(window[0]), ceil_hour(window[1])
    end = max(end, start + HOUR)
    plans: list[ExportPlan] = []
    taken = 0
    piece = start
    while piece < end and len(plans) < max_plans:
        piece_end = min(end, piece + wire.MAX_WINDOW)
        ids = tuple(c.dialog_id for c in calls if piece <= c.start < piece_end)[:max_calls]
        plans.append(ExportPlan(group, piece, piece_end, ids))
        taken += len(ids)
        piece = piece_end
    return plans, len(calls) - taken
