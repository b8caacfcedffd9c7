"""Sweep: export every settled hour of the swept OCP groups once, to find calls the ledger never heard of.

A call whose every event was lost is unknown to the ledger, so no pending or open call puts its window in
a plan. Every closed hour of every swept group is therefore diffed once against OCP's dialog_end CDRs (the
download's manifest diff); :func:`ocp_ingest.reconcile.close.close_run` remembers the hours diffed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from ocp_ingest.ledger import Ledger
from ocp_ingest.ocp import wire
from ocp_ingest.reconcile.plan import ExportPlan
from ocp_ingest.reconcile.windows import HOUR, floor_hour


def plan_sweeps(
    ocp_groups: Iterable[str],
    swept: Mapping[str, set[datetime]],
    *,
    now: datetime,
    lookback: timedelta,
    settle: timedelta,
    busy: Iterable[str] = (),
) -> list[ExportPlan]:
    """Sweep exports: per OCP group without a plan this run, its oldest hours never yet diffed.

    Hours already covered by any completed export (``swept``) are skipped; an hour is swept once it ended
    ``settle`` ago (calls started in it have ended by then) and not earlier than ``lookback``. One window
    of 1 h .. 2 days per group, from its oldest unswept hour (swept hours inside are bridged). The plan
    names no call: its download recovers what the manifest diff finds.
    """
    first = floor_hour(now - lookback)
    end = floor_hour(now - settle)  # hour H is closed and settled iff H + 1 h <= now - settle
    taken = set(busy)
    plans = []
    for group in sorted(set(ocp_groups) - taken):
        done = swept.get(group, set())
        hour = first
        while hour < end and hour in done:
            hour += HOUR
        if hour < end:
            plans.append(ExportPlan(group, hour, min(end, hour + wire.MAX_WINDOW), ()))
    return plans


def due_sweeps(
    ledger: Ledger,
    ocp_groups: Iterable[str],
    *,
    now: datetime,
    lookback: timedelta,
    settle: timedelta,
    busy: Iterable[str] = (),
) -> list[ExportPlan]:
    """:func:`plan_sweeps` over the hours the ledger remembers as swept, for the groups not ``busy``."""
    groups, taken = list(ocp_groups), set(busy)
    first = floor_hour(now - lookback)
    swept = {g: ledger.swept_hours(g, first, now) for g in groups if g not in taken}
    return plan_sweeps(groups, swept, now=now, lookback=lookback, settle=settle, busy=taken)
