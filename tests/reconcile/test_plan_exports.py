"""plan_exports: OCP's rules (per group, hour-aligned, 1 h .. 2 days), one plan per group, oldest first."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from ocp_ingest.ocp import wire
from ocp_ingest.reconcile.detect import PendingCall
from ocp_ingest.reconcile.plan import ExportPlan, call_window, chain_links, margin_cut, plan_exports
from ocp_ingest.reconcile.sweep import plan_sweeps

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
#: The packing tests look at how calls share windows; the margin has tests of its own below.
NO_MARGIN = timedelta(0)


def call(n: int, group: str, at: datetime) -> PendingCall:
    """A call of no length (the packing tests); open calls and lengths have tests of their own below."""
    return PendingCall(f"{n:032X}", group, at, at)


def test_adjacent_hours_merge_into_one_hour_aligned_window() -> None:
    calls = [call(i, "grp-a", T0 + timedelta(minutes=25 * i)) for i in range(7)]  # 09:00 .. 11:30
    result = plan_exports(calls, margin=NO_MARGIN)
    assert [(p.ocp_group, p.start, p.end) for p in result.plans] == [("grp-a", T0, T0 + timedelta(hours=3))]
    assert result.plans[0].dialog_ids == tuple(c.dialog_id for c in calls)
    assert result.plans[0].label == "grp-a 2026-11-24T09Z..2026-11-24T12Z (7 calls)"
    assert result.carried == {}


def test_a_single_call_gets_the_one_hour_minimum() -> None:
    (only,) = plan_exports([call(1, "grp-a", T0 + timedelta(minutes=59, seconds=59))], margin=NO_MARGIN).plans
    assert (only.start, only.end) == (T0, T0 + timedelta(hours=1))


def test_spans_longer_than_two_days_are_split_and_the_rest_carried() -> None:
    calls = [call(i, "grp-a", T0 + timedelta(hours=6 * i)) for i in range(12)]  # 66 hours
    result = plan_exports(calls, margin=NO_MARGIN)
    (first,) = result.plans
    assert first.end - first.start == timedelta(hours=43)  # last call inside 48 h starts at +42 h
    assert len(first.dialog_ids) == 8 and result.carried == {"grp-a": 4}
    two = plan_exports(calls, max_plans_per_group=2, margin=NO_MARGIN).plans
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


# ------------------------------------------------------------------ a call's whole life (issue #17, 3)
def lived(
    n: int, start: datetime, end: datetime | None, retries: int = 0, group: str = "grp-a"
) -> PendingCall:
    return PendingCall(f"{n:032X}", group, start, end, retries)


def covers(window: tuple[datetime, datetime], moment: datetime) -> bool:
    return window[0] <= moment < window[1]  # OCP's windows are half-open


def test_a_call_starting_in_the_last_hour_and_ending_after_it_has_its_end_covered() -> None:
    early = lived(1, T0 + timedelta(minutes=20), T0 + timedelta(minutes=25))
    crossing = lived(2, T0 + timedelta(hours=1, minutes=50), T0 + timedelta(hours=2, minutes=10))
    (plan,) = plan_exports([early, crossing]).plans
    window = (plan.start, plan.end)
    for c in (early, crossing):
        assert c.end is not None and covers(window, c.start) and covers(window, c.end)
    # whichever time OCP selects by, with the margin on both sides
    assert covers(window, crossing.end + timedelta(minutes=10))
    assert covers(window, early.start - timedelta(minutes=10))


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (T0 + timedelta(minutes=30), T0 + timedelta(minutes=40), (T0, T0 + HOUR)),
        (T0 + timedelta(minutes=30), T0 + HOUR, (T0, T0 + 2 * HOUR)),  # an end on the hour needs that hour
        (T0 + timedelta(minutes=5), T0 + timedelta(minutes=6), (T0 - HOUR, T0 + HOUR)),  # margin before
        (T0 + timedelta(minutes=30), T0 + timedelta(minutes=55), (T0, T0 + 2 * HOUR)),  # margin after
        (T0 + timedelta(minutes=30), None, (T0, T0 + 5 * HOUR)),  # end unknown: up to start + 4 h
        # an end before the start (clock skew): OCP may file the dialog_end under its own, earlier time
        (T0 + timedelta(minutes=30), T0 - HOUR, (T0 - 2 * HOUR, T0 + HOUR)),
    ],
)
def test_call_window_is_hour_aligned_and_covers_start_to_end_plus_margin(
    start: datetime, end: datetime | None, expected: tuple[datetime, datetime]
) -> None:
    assert call_window(lived(1, start, end)) == expected


@pytest.mark.parametrize("minute", [0, 1, 9, 10, 11, 30, 49, 50, 51, 59])
@pytest.mark.parametrize("length_min", [0, 1, 9, 59, 60, 61, 179, 600])
def test_each_retry_plans_a_strictly_wider_window_than_the_one_that_failed(
    minute: int, length_min: int
) -> None:
    start = T0 + timedelta(minutes=minute, seconds=17)
    end = start + timedelta(minutes=length_min)
    windows = [call_window(lived(1, start, end, retries)) for retries in range(8)]
    for before, after in itertools.pairwise(windows):
        assert after != before
        assert after[0] < before[0] and after[1] > before[1]  # wider on both sides: never the same window
    for lo, hi in windows:
        assert lo == lo.replace(minute=0, second=0, microsecond=0) and hi - lo <= wire.MAX_WINDOW
        assert covers((lo, hi), start) and covers((lo, hi), end)


def test_widening_stops_at_ocps_two_day_limit_and_keeps_the_whole_life() -> None:
    start, end = T0 + timedelta(minutes=30), T0 + timedelta(hours=20, minutes=30)
    for retries in (20, 21, 500):
        lo, hi = call_window(lived(1, start, end, retries))
        assert hi - lo == wire.MAX_WINDOW and covers((lo, hi), start) and covers((lo, hi), end)
    # A call longer than OCP's window (never seen) keeps its start's two days rather than failing.
    lo, hi = call_window(lived(1, start, start + timedelta(days=3)))
    assert (lo, hi) == (T0, T0 + wire.MAX_WINDOW)


def test_a_retried_call_widens_its_plan_and_its_neighbours_ride_along() -> None:
    fresh = lived(1, T0 + timedelta(minutes=30), T0 + timedelta(minutes=35))
    retried = lived(2, T0 + timedelta(minutes=31), T0 + timedelta(minutes=36), retries=2)
    (plan,) = plan_exports([fresh, retried]).plans
    assert (plan.start, plan.end) == (T0 - 2 * HOUR, T0 + 3 * HOUR)
    assert set(plan.dialog_ids) == {fresh.dialog_id, retried.dialog_id}
    (alone,) = plan_exports([fresh]).plans
    assert (alone.start, alone.end) == (T0, T0 + HOUR)


def test_calls_whose_lives_do_not_fit_the_first_window_are_carried_not_cut() -> None:
    first = lived(1, T0 + timedelta(minutes=30), T0 + timedelta(minutes=31))
    # starts inside the first call's two days, ends after them
    late = lived(2, T0 + timedelta(hours=47, minutes=30), T0 + timedelta(hours=48, minutes=30))
    inside = lived(3, T0 + timedelta(hours=40), T0 + timedelta(hours=40, minutes=5))
    result = plan_exports([first, late, inside])
    (plan,) = result.plans
    assert plan.dialog_ids == (first.dialog_id, inside.dialog_id) and result.carried == {"grp-a": 1}
    assert plan.end - plan.start <= wire.MAX_WINDOW
    both = plan_exports([first, late, inside], max_plans_per_group=2).plans
    assert [p.dialog_ids for p in both] == [(first.dialog_id, inside.dialog_id), (late.dialog_id,)]
    assert covers((both[1].start, both[1].end), late.end)  # type: ignore[arg-type]


# ------------------------------------------------- backfill pieces and open calls (issue #17, gaps)
def _covered_by_their_plans(result, calls: list[PendingCall], **need: timedelta) -> None:
    """Every call is in at most one plan, whose window holds its whole needed window, or at least its
    life where OCP's 2-day limit cut its margin (and the close knows it: ``margin_cut``); the rest
    carried."""
    by_id = {c.dialog_id: c for c in calls}
    seen = [d for p in result.plans for d in p.dialog_ids]
    assert len(seen) == len(set(seen))
    for plan in result.plans:
        assert HOUR <= plan.end - plan.start <= wire.MAX_WINDOW
        for dialog_id in plan.dialog_ids:
            lo, hi = call_window(by_id[dialog_id], **need)
            held = plan.start <= lo and hi <= plan.end
            assert held or margin_cut(plan, by_id[dialog_id], **need), (plan.label, dialog_id)
    assert len(seen) + sum(result.carried.values()) == len(calls)  # never silently dropped


def test_a_backfill_piece_holds_the_whole_life_of_a_call_crossing_its_end() -> None:
    window = (T0, T0 + timedelta(days=4))
    first = lived(1, T0 + timedelta(minutes=5), T0 + timedelta(minutes=8))  # margin reaches before T0
    crossing = lived(2, T0 + timedelta(days=2, minutes=-15), T0 + timedelta(days=2, minutes=20))
    late = lived(3, T0 + timedelta(days=4, minutes=-20), T0 + timedelta(days=4, minutes=30))  # ends after
    calls = [first, crossing, late]
    result = plan_exports(calls, window=window, max_plans_per_group=5)
    _covered_by_their_plans(result, calls)
    assert result.carried == {}
    # The plans still cover the backfill window itself, hour by hour, for the manifest diff.
    hours = {T0 + HOUR * i for i in range(96)}
    assert all(any(p.start <= h < p.end for p in result.plans) for h in hours)
    # One plan per run (the DAG's rule): the crossing call does not fit the first piece and is carried.
    one = plan_exports(calls, window=window)
    _covered_by_their_plans(one, calls)
    assert one.plans[0].dialog_ids == (first.dialog_id,) and one.carried == {"grp-a": 2}


def test_a_backfill_call_in_the_windows_last_hour_gets_its_end_and_margin() -> None:
    window = (T0, T0 + 3 * HOUR)
    tail = lived(1, T0 + timedelta(hours=2, minutes=50), T0 + timedelta(hours=3, minutes=20))
    (plan,) = plan_exports([tail], window=window).plans
    assert (plan.start, plan.end) == (T0, T0 + 4 * HOUR)
    assert covers((plan.start, plan.end), tail.end + timedelta(minutes=10))  # type: ignore[operator]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("max_plans", [1, 2, 4])
def test_backfill_plans_cover_every_taken_calls_life_whatever_the_calls(seed: int, max_plans: int) -> None:
    import random

    rng = random.Random(seed)
    start = T0 + timedelta(minutes=rng.randrange(60))
    window = (start, start + timedelta(hours=rng.randrange(1, 130)))
    span = (window[1] - window[0]).total_seconds()
    calls = []
    for n in range(rng.randrange(1, 40)):
        begin = window[0] + timedelta(seconds=rng.uniform(0, span))
        end = None if rng.random() < 0.2 else begin + timedelta(minutes=rng.choice([1, 30, 90, 600]))
        calls.append(lived(n, begin, end, retries=rng.randrange(4)))
    life = timedelta(hours=rng.choice([1, 4, 30]))
    result = plan_exports(
        calls,
        window=window,
        max_plans_per_group=max_plans,
        max_calls=rng.choice([3, 3000]),
        open_call_life=life,
    )
    _covered_by_their_plans(result, calls, open_call_life=life)


@pytest.mark.parametrize("window", [None, (T0, T0 + timedelta(days=3))])
def test_an_open_call_is_planned_up_to_the_latest_end_it_can_have(window) -> None:
    """No dialog_end (lost): it ended at most the open-call timeout after its start; the window covers it."""
    opened = lived(1, T0 + timedelta(minutes=30), None)
    assert call_window(opened, open_call_life=4 * HOUR) == (T0, T0 + 5 * HOUR)
    assert call_window(opened, open_call_life=2 * HOUR) == (T0, T0 + 3 * HOUR)
    # OCP's two days cap it; the start is kept
    assert call_window(opened, open_call_life=timedelta(days=3)) == (T0, T0 + wire.MAX_WINDOW)
    (plan,) = plan_exports([opened], window=window, open_call_life=4 * HOUR).plans[:1]
    assert plan.start <= T0 and plan.end >= T0 + 5 * HOUR
    # a retried open call still gets a strictly wider window each time
    widths = [call_window(lived(1, opened.start, None, r), open_call_life=4 * HOUR) for r in range(4)]
    assert all(b[0] < a[0] and b[1] > a[1] for a, b in itertools.pairwise(widths))


def test_the_planning_default_for_open_calls_is_the_settings_default() -> None:
    from ocp_ingest.config import Settings
    from ocp_ingest.reconcile.plan import OPEN_CALL_LIFE

    assert Settings.model_fields["open_call_timeout_s"].default == OPEN_CALL_LIFE.total_seconds()


def test_chain_links_put_each_groups_plans_in_successive_links_oldest_first() -> None:
    days = [call(i, "grp-a", T0 + timedelta(days=i)) for i in range(5)]  # five days: three 2-day plans
    other = [call(10, "grp-b", T0 + timedelta(days=3))]
    plans = plan_exports(days + other, max_plans_per_group=4, margin=NO_MARGIN).plans
    links = chain_links(plans, 4)
    assert [[(p.ocp_group, p.start) for p in link] for link in links] == [
        [("grp-a", T0), ("grp-b", T0 + timedelta(days=3))],
        [("grp-a", T0 + timedelta(days=2))],
        [("grp-a", T0 + timedelta(days=4))],
        [],
    ]
    for link in links:  # at most one plan per group per link: OCP's one export at a time
        assert len({p.ocp_group for p in link}) == len(link)
    # the order given does not matter: a group's older window is always the earlier link
    assert chain_links(list(reversed(plans)), 4) == links


def test_chain_links_refuse_more_plans_than_links() -> None:
    plans = plan_exports(
        [call(i, "grp-a", T0 + timedelta(days=3 * i)) for i in range(3)], max_plans_per_group=3
    ).plans
    with pytest.raises(ValueError, match="more than 2 plans"):
        chain_links(plans, 2)
    with pytest.raises(ValueError, match="at least 1"):
        chain_links(plans, 0)


# ------------------------------------------- margins give way to OCP's 2-day limit, lives never do
def test_a_two_day_backlog_is_one_export_its_edge_calls_margins_cut_not_their_lives() -> None:
    # Calls from just after T0 to just before T0 + 48 h: their lives fit OCP's 2 days, their margins do
    # not (the first call's reaches into the hour before T0, the last one's past T0 + 48 h).
    calls = [
        lived(i, T0 + timedelta(minutes=1 + 48 * 60 * i / 40), T0 + timedelta(minutes=3 + 48 * 60 * i / 40))
        for i in range(40)
    ]
    calls.append(lived(40, T0 + timedelta(hours=47, minutes=55), T0 + timedelta(hours=47, minutes=58)))
    result = plan_exports(calls, max_plans_per_group=3)
    (only,) = result.plans
    assert (only.start, only.end) == (T0, T0 + wire.MAX_WINDOW) and result.carried == {}
    _covered_by_their_plans(result, calls)
    cut = {c.dialog_id for c in calls if margin_cut(only, c)}
    assert cut == {calls[0].dialog_id, calls[-1].dialog_id}  # only the edges' margins; the rest keep theirs
    # The next run asks for an edge call alone with its whole window.
    (again,) = plan_exports([calls[-1]]).plans
    assert not margin_cut(again, calls[-1]) and call_window(calls[-1]) == (again.start, again.end)


def test_a_backlog_longer_than_two_days_keeps_the_first_calls_margin() -> None:
    calls = [
        lived(i, T0 + timedelta(minutes=5 + 60 * i), T0 + timedelta(minutes=6 + 60 * i)) for i in range(60)
    ]
    result = plan_exports(calls, max_plans_per_group=2)
    first, second = result.plans
    assert first.start == T0 - HOUR and first.end - first.start == wire.MAX_WINDOW
    assert not margin_cut(first, calls[0])  # moving the start later would not save the second export
    assert len(first.dialog_ids) + len(second.dialog_ids) == 60
    _covered_by_their_plans(result, calls)


def test_a_plan_shorter_than_two_days_never_cuts_a_margin() -> None:
    calls = [
        lived(i, T0 + timedelta(minutes=5 + 37 * i), T0 + timedelta(minutes=9 + 37 * i)) for i in range(30)
    ]
    for max_calls in (None, 4):
        for plan in plan_exports(calls, max_plans_per_group=20, max_calls=max_calls).plans:
            assert plan.end - plan.start < wire.MAX_WINDOW
            assert all(call_window(c)[0] >= plan.start for c in calls if c.dialog_id in plan.dialog_ids)
            assert all(call_window(c)[1] <= plan.end for c in calls if c.dialog_id in plan.dialog_ids)
