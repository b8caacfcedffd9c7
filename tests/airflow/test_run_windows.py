"""Which calls a run works on: a backfill run's data interval, else the params' window, else the pending
list; and the report's day from the logical date."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest

from ocp_ingest.airflow.tasks.reconcile import query_for_run
from ocp_ingest.airflow.tasks.report import report_day
from ocp_ingest.config import Settings

T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def context(run_type: str, params: dict | None = None, interval: timedelta = timedelta(minutes=30)) -> dict:
    from airflow.utils.types import DagRunType

    return {
        "dag_run": SimpleNamespace(run_type=DagRunType(run_type)),
        "run_id": f"{run_type}__x",
        "params": params or {},
        "data_interval_start": T0,
        "data_interval_end": T0 + interval,
    }


@pytest.fixture
def settings(ingest_home) -> Settings:
    return Settings.from_env()


def test_a_backfill_run_reconciles_its_data_interval(settings: Settings) -> None:
    query = query_for_run(context("backfill", {"lobs": ["cards"]}), settings)
    assert query.window == (T0, T0 + timedelta(minutes=30)) and query.lobs == ("cards",)


@pytest.mark.parametrize("run_type", ["scheduled", "manual", "asset_triggered"])
def test_scheduled_and_manual_runs_keep_the_pending_list(settings: Settings, run_type: str) -> None:
    assert query_for_run(context(run_type), settings).window is None


def test_the_params_window_wins_over_the_data_interval(settings: Settings) -> None:
    params = {"window_start": "2026-11-01T00:00:00Z", "window_end": "2026-11-01T02:00:00Z"}
    for run_type in ("backfill", "manual"):
        query = query_for_run(context(run_type, params), settings)
        assert query.window == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 1, 2, tzinfo=UTC))


def test_a_zero_length_interval_falls_back_to_the_pending_list(settings: Settings) -> None:
    # a trigger timetable's run is a point in time: there is no window to reconcile
    assert query_for_run(context("backfill", interval=timedelta(0)), settings).window is None


def test_the_dag_schedule_gives_runs_real_data_intervals() -> None:
    from tests.conftest import load_dag

    dag = load_dag("ocp_reconciliation")
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.description


def test_the_report_day_is_the_day_before_the_logical_date() -> None:
    assert report_day({}, datetime(2026, 11, 21, 2, tzinfo=UTC)) == date(2026, 11, 20)
    assert report_day({"date": "2026-11-02"}, datetime(2026, 11, 21, 2, tzinfo=UTC)) == date(2026, 11, 2)
    assert report_day({"date": None}, datetime(2026, 11, 1, 0, tzinfo=UTC)) == date(2026, 10, 31)
