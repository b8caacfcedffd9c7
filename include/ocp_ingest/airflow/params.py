"""The trigger forms of the DAGs: Params with titles, descriptions and JSON-schema formats.

Airflow validates a run's conf against these schemas (``jsonschema`` with its ``FormatChecker``) when the
run is created, in the UI's trigger dialog and in ``POST /api/v2/dags/{dag_id}/dagRuns`` alike, so a bad
date ("yesterday") is refused with HTTP 400 before any run exists. The UI draws a date-time picker for
``format: date-time``, a date picker for ``format: date``, and a multi-select for an array with
``examples``; it marks a field required unless its ``type`` includes ``"null"``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ocp_ingest.config import Settings
from ocp_ingest.routing import LobRouter


def lob_choices(settings: Settings) -> list[str]:
    """The LOBs of the routing file (the configured one, else the packaged default); [] if unreadable.

    Read when the DAG file is parsed: a local file read, no network and no writes. A missing or broken
    file must not break the DAG's import (the tasks report it), so the form then offers free text.
    """
    try:
        return sorted(LobRouter.load(settings.lob_routing_file).lobs)
    except (OSError, ValueError):
        return []


def group_choices(settings: Settings) -> list[str]:
    """The OCP groups known without other I/O: the routing rules' groups and the sweep groups."""
    groups = set(settings.sweep_groups)
    with contextlib.suppress(OSError, ValueError):
        groups |= {r.ocp_group for r in LobRouter.load(settings.lob_routing_file).rules if r.ocp_group}
    return sorted(groups)


def _names_param(title: str, description: str, choices: list[str]) -> Any:
    """An optional list of names: null (cleared in the form) or [] mean all; ``choices``: a multi-select."""
    from airflow.sdk import Param

    schema: dict[str, Any] = {
        "type": ["array", "null"],
        "items": {"type": "string", "minLength": 1},
        "title": title,
    }
    if choices:
        schema["examples"] = choices  # the UI's multi-select; the API still accepts other names
    return Param([], description=description, schema=schema)


def reconciliation_params(settings: Settings) -> dict[str, Any]:
    """The params of ``ocp_reconciliation`` as ``{name: Param}``."""
    from airflow.sdk import Param

    lobs = lob_choices(settings)
    groups = group_choices(settings)
    window = (
        "Reconcile the calls that started in [window start, window end) instead of the pending list "
        "(a backfill of one window in one run). Give both or neither; OCP exports are widened to whole hours."
    )
    return {
        "window_start": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="Window start (UTC)",
            description=window,
        ),
        "window_end": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="Window end (UTC)",
            description="End of the backfill window (exclusive); after Window start.",
        ),
        # Free text, not a multi-select: the UI's multi-select offers only its choices, and the groups
        # known here (routing rules, sweep groups) need not be all of the tenant's.
        "ocp_groups": _names_param(
            "OCP groups",
            "Only these OCP groups (one per line); empty means all."
            + (f" Known: {', '.join(groups)}." if groups else ""),
            [],
        ),
        "lobs": _names_param(
            "Lines of business",
            "Only calls of these lines of business (from the LOB routing file); empty means all.",
            lobs,
        ),
        "grace_s": Param(
            None,
            type=["null", "number"],
            minimum=0,
            title="Grace period (s)",
            description=(
                f"Seconds after a call's end before it counts as pending; empty: "
                f"OCP_INGEST_PENDING_GRACE_S ({settings.pending_grace_s:g} s)."
            ),
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Plan and report only: nothing is asked of OCP and nothing is written.",
        ),
    }


def report_params() -> dict[str, Any]:
    """The params of ``ocp_completeness_report`` as ``{name: Param}``."""
    from airflow.sdk import Param

    return {
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Day to report (UTC)",
            description="Report this day (YYYY-MM-DD); empty: the day before the run's logical date.",
        )
    }


def reconciliation_schedule(expression: str) -> Any:
    """``OCP_INGEST_RECONCILIATION_SCHEDULE`` as the DAG's schedule: a cron gets real data intervals.

    Airflow 3 turns a bare cron string into a ``CronTriggerTimetable``, whose runs have a zero-length data
    interval; a Backfill would then have nothing to reconcile. ``CronDataIntervalTimetable`` gives each run
    the interval since the previous tick (30 min by default), which a backfill run reconciles. Scheduled
    runs still start at every tick and work on the pending list. ``@once``/``@continuous``/``none`` pass.
    """
    from airflow.sdk import CronDataIntervalTimetable

    text = (expression or "").strip()
    if text.lower() in ("", "none"):
        return None
    if text in ("@once", "@continuous"):
        return text
    return CronDataIntervalTimetable(text, timezone="UTC")
