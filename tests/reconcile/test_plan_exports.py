"""plan_exports: OCP's rules (per group, hour-aligned, 1 h .. 2 days), one plan per group, oldest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ocp_ingest.reconcile.detect import PendingCall
from ocp_ingest.reconcile.plan import ExportPlan, plan_exports
from ocp_ingest.reconcile.sweep import plan_sweeps

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def call(n: int, group: str, at: datetime) -> PendingCall:
    return PendingCall(f"{n:032X}", group, at)


def test_adjacent_hours_merge_into_one_hour_aligned_window() -> None:
    calls = [call(i, "grp-a", T0 + timedelta(minutes=25 * i)) for i in range(7)]  # 09:00 .. 11:30
    result = plan_exports(calls)
    assert [(p.ocp_group, p.start, p.end) for p in result.plans] == [("grp-a", T0, T0 + timedelta(hours=3))]
    assert result.plans[0].dialog_ids == tuple(c.dialog_id for c in calls)
    assert result.plans[0].label == "grp-a 2026-11-24T09Z..2026-11-24T12Z (7 calls)"
    assert result.carried == {}


def test_a_single_call_gets_the_one_hour_minimum() -> None:
    (only,) = plan_exports([call(1, "grp-a", T0 + timedelta(minutes=59, seconds=59))]).plans
    assert (only.start, only.end) == (T0, T0 + timedelta(hours=1))


def test_spans_longer_than_two_days_are_split_and_the_rest_carried() -> None:
    calls = [call(i, "grp-a", T0 + timedelta(hours=6 * i)) for i in range(12)]  # 66 hours
    result = plan_exports(calls)
    (first,) = result.plans
    assert first.end - first.start == timedelta(hours=43)  # last call inside 48 h starts at +42 h
    assert len(first.dialog_ids) == 8 and result.carried == {"grp-a": 4}
    two = plan_exports(calls, max_plans_per_group=2).plans
    assert [p.start for p in two] == [T0, T0 + timedelta(hours=48)]
    assert all(timedelta(hours=1) <= p.end - p.start <= timedelta(days=2) for p in two)
    assert sum(len(p.dialog_ids) for p in two) == 12


def test_one_plan_per_group_oldest_first_and_capped() -> None:
    calls = [
        call(1, "grp-b", T0 + timedelta(hours=5)),
        call(2, "grp-a", T0 + timedelta(hours=7)),
        call(3, "grp-a", T0 + timedelta(hours=1)),
        *[call(10 + i, "grp-c", T0 + timedelta(minutes=i)) for i in range(5)],
    ]
    result = plan_exports(calls, max_calls=3)
    assert [p.ocp_group for p in result.plans] == ["grp-c", "grp-a", "grp-b"]  # oldest window first
    assert [len(p.dialog_ids) for p in result.plans] == [3, 2, 1]
    assert result.plans[0].dialog_ids == tuple(f"{10 + i:032X}" for i in range(3))  # oldest calls first
    assert result.carried == {"grp-c": 2}


def test_backfill_window_covers_every_requested_group_even_without_pending_calls() -> None:
    window = (T0 + timedelta(minutes=10), T0 + timedelta(hours=3, minutes=5))
    result = plan_exports([call(1, "grp-a", T0 + timedelta(hours=1))], window=window, ocp_groups=["grp-z"])
    assert {(p.ocp_group, p.start, p.end, len(p.dialog_ids)) for p in result.plans} == {
        ("grp-a", T0, T0 + timedelta(hours=4), 1),
        ("grp-z", T0, T0 + timedelta(hours=4), 0),
    }


def test_plans_round_trip_as_json_and_refuse_unaligned_windows() -> None:
    plan = ExportPlan("grp-a", T0, T0 + timedelta(hours=2), ("A" * 32,))
    assert ExportPlan.from_dict(plan.to_dict()) == plan
    with pytest.raises(ValueError):
        ExportPlan("grp-a", T0 + timedelta(minutes=5), T0 + timedelta(hours=2), ())
    with pytest.raises(ValueError):
        ExportPlan("grp-a", T0, T0 + timedelta(days=3), ())


def test_sweeps_cover_each_groups_oldest_unswept_settled_hours_once() -> None:
    now = T0 + timedelta(days=3, minutes=20)  # 2026-11-27 09:20
    hour = timedelta(hours=1)
    kwargs = {"now": now, "lookback": timedelta(hours=48), "settle": timedelta(hours=4)}
    first, end = T0 + timedelta(days=1), T0 + timedelta(days=2, hours=20)  # 11-25 09:00 .. 11-27 05:00
    swept = {
        "grp-a": {first + hour * i for i in range(3)},  # the oldest 3 hours are done
        "grp-b": {first + hour * i for i in range(44)},  # everything settled is done
    }
    plans = plan_sweeps(["grp-a", "grp-b", "grp-c", "grp-d"], swept, busy=["grp-d"], **kwargs)
    assert [(p.ocp_group, p.start, p.end, p.dialog_ids) for p in plans] == [
        ("grp-a", first + 3 * hour, end, ()),
        ("grp-c", first, end, ()),  # never swept: from the lookback on, at most 2 days
    ]
    assert all(p.end - p.start <= timedelta(days=2) for p in plans)
    # Nothing settled yet (the last closed hour ended less than `settle` ago): no sweep.
    assert plan_sweeps(["grp-a"], {}, now=first + hour, lookback=hour, settle=timedelta(hours=4)) == []
