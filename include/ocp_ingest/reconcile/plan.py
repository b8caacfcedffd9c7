"""Plan: group a run's pending calls into OCP exports, the way OCP allows them.

Per OCP group, hour-aligned export windows of 1 h .. 2 days. At most ``max_plans_per_group`` plans per
group per run; the rest is carried to the next run, oldest calls first. A group's plans form a chain
(:func:`chain_links`): link ``n`` of every group is requested only once link ``n - 1`` of every group has
finished waiting, so a group's exports are strictly one at a time within a run, and across runs because the
DAG runs one run at a time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ocp_ingest.ocp import wire
from ocp_ingest.reconcile.detect import PendingCall
from ocp_ingest.reconcile.manifests import is_reference, needs_manifest, read_manifest, write_manifest
from ocp_ingest.reconcile.windows import HOUR, ceil_hour, floor_hour, iso_seconds, parse_when
from ocp_ingest.storage import StorageLayout

#: Added before a call's start and after its end when its window is planned: OCP's docs do not say by
#: which time it selects CDR lines (the call's start, or each line's own event time).
WINDOW_MARGIN = timedelta(minutes=10)
#: Added to the margin per attempt the call has already failed. Windows are hour-aligned, so anything
#: less than an hour could re-plan the very window that already failed to explain the call.
RETRY_WIDENING = HOUR
#: How long after its start an open call (a dialog_start, no dialog_end: lost) ended at the latest. The
#: DAG passes ``OCP_INGEST_OPEN_CALL_TIMEOUT_S`` (this is its default): a call still without a dialog_end
#: that long after its start is taken for one whose dialog_end was lost, so it ended before then.
OPEN_CALL_LIFE = timedelta(hours=4)


def call_window(
    call: PendingCall,
    margin: timedelta = WINDOW_MARGIN,
    widening: timedelta = RETRY_WIDENING,
    open_call_life: timedelta = OPEN_CALL_LIFE,
) -> tuple[datetime, datetime]:
    """The hour-aligned window that covers ``call``'s whole life, start to end, plus its margin: the one
    place that says which export window a call needs (pending, open or backfilled alike).

    An open call (end unknown) lived at most ``open_call_life``. An end before the start (clock skew)
    still counts: OCP may file the dialog_end under its own time. The margin grows by ``widening`` per
    failed attempt (``retry_count``), so a retried call gets a wider window than the one that failed it.
    OCP's 2-day limit caps it: margin is given up (end side first) before any of the call's life; a call
    longer than 2 days (never seen) keeps its first 2 days.
    """
    end = call.end if call.end is not None else call.start + open_call_life
    first, last = min(call.start, end), max(call.start, end)
    core = floor_hour(first), floor_hour(last) + HOUR  # half-open: an end on the hour needs that hour
    if core[1] - core[0] >= wire.MAX_WINDOW:
        return core[0], core[0] + wire.MAX_WINDOW
    widen = margin + widening * max(0, call.retry_count)
    lo, hi = floor_hour(first - widen), floor_hour(last + widen) + HOUR
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

    def to_reference(self, layout: StorageLayout | None) -> dict[str, Any]:
        """The plan as it travels (XCom, the pod's ``--plan-json``): a long call list in a manifest object
        (whatever its length), the label and window beside it; short ones, or without ``layout`` (a dry
        run writes nothing), inline."""
        if not needs_manifest(len(self.dialog_ids), layout):
            return self.to_dict()
        assert layout is not None
        small = {k: v for k, v in self.to_dict().items() if k != "dialog_ids"}
        return {**small, **write_manifest(layout, list(self.dialog_ids))}

    @classmethod
    def from_dict(cls, data: ExportPlan | Mapping[str, Any]) -> ExportPlan:
        """The one place a plan dict (an XCom, the pod's ``--plan-json``) becomes a plan again; a
        reference's call list is read from its manifest."""
        if isinstance(data, ExportPlan):
            return data
        start, end = parse_when(data["start"]), parse_when(data["end"])
        assert start is not None and end is not None
        ids = read_manifest(data) if is_reference(data) else data.get("dialog_ids")
        return cls(str(data["ocp_group"]), start, end, tuple(ids or ()))


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
    max_calls: int | None = None,
    window: tuple[datetime, datetime] | None = None,
    ocp_groups: Iterable[str] = (),
    margin: timedelta = WINDOW_MARGIN,
    open_call_life: timedelta = OPEN_CALL_LIFE,
) -> PlanningResult:
    """Group pending calls into export plans: per OCP group, hour-aligned windows of 1 h .. 2 days.

    Every call needs its :func:`call_window` (its whole life plus a margin that grows with its failed
    attempts; an open call's life ends ``open_call_life`` after its start). Each plan starts where its
    group's earliest-needed window starts and takes, in that order, every call whose life fits in 2 days
    from there, up to ``max_calls`` (None: no cap); it ends where the last of their windows ends, or at 2
    days. Margins give way to OCP's limit, lives never do: when the group's remaining lives fit in 2 days
    the plan starts as late as holding them all needs, and a call in a plan's last hours may lose the end
    of its margin, rather than every 2-day backlog costing a second export (its preparation). If such a
    call is not in the export, the close does not count that against it (:func:`margin_cut`) and the next
    run asks for it with its whole window. Hours with nothing pending in between are bridged, not split:
    an export costs mostly its fixed preparation time, and only the planned calls' files are downloaded.
    A call whose life fits no plan of this run is carried (counted in ``carried``), never cut. Plans come
    out oldest first.

    With ``window`` (a backfill) every group in ``ocp_groups`` (plus those with pending calls) gets plans
    that also cover the window itself, in pieces of at most 2 days, so the manifest diff sees the whole
    window even where the ledger knows no pending call. A piece is stretched (within 2 days) to hold the
    whole needed window of each call it takes, exactly as above.
    """
    if max_plans_per_group < 1 or (max_calls is not None and max_calls < 1):
        raise ValueError("max_plans_per_group and max_calls must be at least 1")
    by_group: dict[str, list[PendingCall]] = defaultdict(list)
    for call in pending:
        by_group[call.ocp_group].append(call)
    for group in ocp_groups:
        by_group.setdefault(group, [])
    cover = None
    if window is not None:
        start = floor_hour(window[0])
        cover = start, max(ceil_hour(window[1]), start + HOUR)
    plans: list[ExportPlan] = []
    carried: dict[str, int] = {}
    for group, calls in by_group.items():
        needed = [
            (call_window(c, margin, open_call_life=open_call_life), life_window(c, open_call_life), c)
            for c in calls
        ]
        group_plans, rest = _plan_group(group, needed, cover, max_plans_per_group, max_calls)
        plans += group_plans
        if rest:
            carried[group] = rest
    plans.sort(key=lambda p: (p.start, p.ocp_group))
    return PlanningResult(plans, carried)


def chain_links(plans: Iterable[ExportPlan], links: int) -> list[list[ExportPlan]]:
    """The plans as ``links`` rounds: round ``n`` holds the ``n``-th plan of each group (oldest first), so
    each round has at most one plan per group and a group's plans are requested in order, one per round.

    Plans past ``links`` of a group would break that rule: refused (plan at most ``links`` per group).
    """
    if links < 1:
        raise ValueError("links must be at least 1")
    rounds: list[list[ExportPlan]] = [[] for _ in range(links)]
    position: dict[str, int] = defaultdict(int)
    for plan in sorted(plans, key=lambda p: (p.start, p.end, p.ocp_group)):
        n = position[plan.ocp_group]
        if n >= links:
            raise ValueError(f"group {plan.ocp_group} has more than {links} plans: plan at most {links}")
        rounds[n].append(plan)
        position[plan.ocp_group] = n + 1
    return rounds


def margin_cut(plan: ExportPlan, call: PendingCall, open_call_life: timedelta = OPEN_CALL_LIFE) -> bool:
    """Whether planning cut ``call``'s margin to OCP's 2-day limit: the plan holds the call's life but
    not its whole :func:`call_window`. Then the call's absence from the export proves nothing against it."""
    lo, hi = call_window(call, open_call_life=open_call_life)
    life = life_window(call, open_call_life)
    spans_limit = plan.end - plan.start >= wire.MAX_WINDOW
    holds_life = plan.start <= life[0] and life[1] <= plan.end
    return spans_limit and holds_life and not (plan.start <= lo and hi <= plan.end)


def life_window(call: PendingCall, open_call_life: timedelta = OPEN_CALL_LIFE) -> tuple[datetime, datetime]:
    """The hour-aligned window of ``call``'s life alone, no margin: what a plan must hold to take it."""
    return call_window(call, timedelta(0), timedelta(0), open_call_life)


#: A call's needed window, the window of its life alone, the call
_Needed = tuple[tuple[datetime, datetime], tuple[datetime, datetime], PendingCall]


def _start_holding_all(needed: list[_Needed], start: datetime) -> datetime:
    """``start``, moved later within the first calls' margins when that lets one plan hold every call's
    life: the start side of those margins gives way to OCP's limit rather than a second export."""
    first = min(life[0] for _, life, _ in needed)
    last = max(life[1] for _, life, _ in needed)
    if last - first > wire.MAX_WINDOW:
        return start
    return max(start, last - wire.MAX_WINDOW)


def _plan_group(
    group: str,
    needed: list[_Needed],
    cover: tuple[datetime, datetime] | None,
    max_plans: int,
    max_calls: int | None,
) -> tuple[list[ExportPlan], int]:
    """One group's plans: its calls' needed windows packed into 2-day exports, oldest first, and (for a
    backfill) ``cover`` covered too. Returns the plans and how many calls fit none of them."""
    needed = sorted(needed, key=lambda w: (w[0][0], w[2].start, w[2].dialog_id))
    cursor = cover[0] if cover else None  # the backfill window is covered up to here
    plans: list[ExportPlan] = []
    while len(plans) < max_plans:
        uncovered = cover is not None and cursor is not None and cursor < cover[1]
        if not needed and not uncovered:
            break
        # From the earliest window still needed: a call's margin may reach before the uncovered part.
        start = needed[0][0][0] if needed else cursor
        if uncovered and cursor is not None and (start is None or cursor < start):
            start = cursor
        elif not uncovered and start is not None and (max_calls is None or len(needed) <= max_calls):
            start = _start_holding_all(needed, start)
        assert start is not None
        limit = start + wire.MAX_WINDOW
        taken = [w for w in needed if start <= w[1][0] and w[1][1] <= limit][:max_calls]
        ends = [min(w[0][1], limit) for w in taken]  # a margin gives way to the limit, never a life
        if uncovered and cover is not None:
            ends.append(min(cover[1], limit))
        end = max(ends)
        plans.append(ExportPlan(group, start, end, tuple(c.dialog_id for *_, c in taken)))
        chosen = {id(w) for w in taken}
        needed = [w for w in needed if id(w) not in chosen]  # a call that did not fit waits its turn
        if uncovered:
            cursor = max(cursor, end) if cursor is not None else end
    return plans, len(needed)
