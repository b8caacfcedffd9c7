"""Who changed the ledger, for the audit trail: the running task instance as ``dag_id/run_id/task_id``."""

from __future__ import annotations


def task_actor(default: str | None = None) -> str | None:
    """``dag_id/run_id/task_id[map_index]`` of the running task, or ``default`` outside a task."""
    try:
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
    except Exception:  # not inside a task (CLI, tests calling the callables directly)
        return default
    index = getattr(ti, "map_index", -1)
    suffix = f"[{index}]" if index is not None and index >= 0 else ""
    return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}{suffix}"
