"""The close task's alert path, called directly (no dag.test): anomalies fail the run and are alerted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from ocp_ingest.airflow.notifiers import EscalationNotifier
from ocp_ingest.airflow.tasks import reconcile as tasks
from ocp_ingest.config import Settings
from ocp_ingest.reconcile.detect import Detection, PendingCall
from ocp_ingest.reconcile.plan import ExportPlan
from ocp_ingest.storage import StorageLayout

T0 = datetime(2026, 11, 24, 9, tzinfo=UTC)
RUN = "scheduled__2026-11-24T10:00:00+00:00"


class FakeTi:
    """What the task and its callback use of a task instance: one XCom slot."""

    task_id = "close_and_escalate"
    map_index = -1

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, **_: Any) -> Any:
        return self.pushed.get("return_value")


def _inputs(anomaly: str) -> tuple[dict, list[list[dict]], list[list[dict]]]:
    """close's inputs: the detection, the plans as chain links (one link here), each link's downloads."""
    call = PendingCall("A" * 32, "grp-a", T0 + timedelta(minutes=5))
    plan = ExportPlan("grp-a", T0, T0 + timedelta(hours=1), (call.dialog_id,))
    download = {
        "export_id": "exp.20261124.0001",
        "plan_label": plan.label,
        "export_status": "COMPLETED",
        "status": "done",
        "outcomes": {call.dialog_id: "not_in_export"},
        "anomaly": anomaly,
    }
    return Detection((call,)).to_dict(), [[plan.to_dict()]], [[download]]


def _alerts(settings: Settings) -> list[Path]:
    folder = StorageLayout.from_settings(settings).reconciliation_record_path("alerts", "x").parent
    root = Path(folder.path if folder.path.startswith("/") else "/" + folder.path)
    return sorted(root.glob("*.json")) if root.exists() else []


def test_an_anomaly_fails_the_run_with_its_summary_and_is_alerted(ingest_home: Path) -> None:
    ti = FakeTi()
    detected, plans, downloads = _inputs("export exp.20261124.0001 lists 12 recording(s) but none of ...")
    with pytest.raises(AirflowFailException, match="anomaly"):
        tasks.close(detected, plans, downloads, RUN, ti)
    summary = ti.pushed["return_value"]  # pushed before failing: the callback and the UI read it
    assert summary["anomalies"] and "lists 12 recording(s)" in summary["anomalies"][0]
    assert summary["failed_chains"] == []
    EscalationNotifier().notify({"ti": ti, "run_id": RUN})
    (alert,) = _alerts(Settings.from_env())
    body = json.loads(alert.read_text())
    assert body["run_id"] == RUN and body["anomalies"] == summary["anomalies"]


def test_a_run_without_anomaly_succeeds_and_writes_no_alert(ingest_home: Path) -> None:
    ti = FakeTi()
    summary = tasks.close(*_inputs(""), RUN, ti)
    assert summary["anomalies"] == []
    EscalationNotifier().notify({"ti": FakeTi(), "run_id": RUN})
    assert _alerts(Settings.from_env()) == []
