"""The alert notifiers: they fire only with something to say, keep their record, and forward the alert's
text to other notifiers (Slack, SNS, ...) through the context."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import BaseNotifier

from ocp_ingest.airflow.notifiers import ALERT_CONTEXT_KEY, EscalationNotifier, SlaBreachNotifier
from ocp_ingest.report.completeness import CompletenessSlaBreached

pytestmark = pytest.mark.usefixtures("ingest_home")


class Recorder(BaseNotifier):
    """A stand-in for SlackNotifier/SnsNotifier: a templated text, rendered from the context."""

    template_fields = ("text",)

    def __init__(self, text: str, sent: list[str], fail: bool = False) -> None:
        super().__init__()
        self.text, self.sent, self.fail = text, sent, fail

    def notify(self, context: Any) -> None:
        if self.fail:
            raise RuntimeError("channel down")
        self.sent.append(self.text)


class FakeTi:
    task_id, map_index = "close_and_escalate", -1

    def __init__(self, summary: dict | None) -> None:
        self.summary = summary

    def xcom_pull(self, task_ids: str, map_indexes: int) -> dict | None:
        assert (task_ids, map_indexes) == (self.task_id, self.map_index)
        return self.summary


SUMMARY = {
    "escalated": 2,
    "escalations": [
        {"dialog_id": "a" * 32, "state": "UNRECOVERABLE_MAX_ATTEMPTS"},
        {"dialog_id": "b" * 32, "state": "UNRECOVERABLE_RETENTION"},
    ],
}


def test_escalations_are_logged_recorded_and_forwarded(ingest_home: Path, caplog) -> None:
    sent: list[str] = []
    notifier = EscalationNotifier(
        forward_to=[Recorder("x", [], fail=True), Recorder("OCP: {{ ocp_alert }}", sent)]
    )
    context = {"ti": FakeTi(SUMMARY), "run_id": "scheduled__2026-11-20T09:30:00+00:00"}
    with caplog.at_level(logging.ERROR):
        notifier(context)
    assert "ALERT reconciliation run scheduled__2026-11-20T09:30:00+00:00 escalated 2 call(s)" in caplog.text
    assert "alert notifier Recorder failed" in caplog.text  # and the next one still got it
    assert sent == [f"OCP: {context[ALERT_CONTEXT_KEY]}"] and "a" * 32 in sent[0]
    (record,) = (ingest_home / "audit" / "reconciliation" / "alerts").glob("*.json")
    body = json.loads(record.read_text())
    assert body == {"run_id": context["run_id"], "anomalies": [], **SUMMARY}
    notifier(context)  # a second call (the failure callback after a retry) keeps the one record
    assert len(list(record.parent.glob("*.json"))) == 1


@pytest.mark.parametrize("summary", [None, {"escalated": 0, "escalations": []}])
def test_no_escalation_no_alert(ingest_home: Path, summary: dict | None) -> None:
    sent: list[str] = []
    EscalationNotifier(forward_to=[Recorder("{{ ocp_alert }}", sent)])({"ti": FakeTi(summary), "run_id": "r"})
    assert sent == [] and not (ingest_home / "audit" / "reconciliation" / "alerts").exists()


def test_an_sla_breach_is_recorded_and_forwarded_other_failures_are_not(ingest_home: Path) -> None:
    sent: list[str] = []
    notifier = SlaBreachNotifier(forward_to=[Recorder("{{ ocp_alert }}", sent)])
    notifier({"exception": RuntimeError("disk full"), "run_id": "r1"})
    assert sent == [] and not (ingest_home / "audit" / "reports" / "alerts").exists()
    notifier(
        {"exception": CompletenessSlaBreached("completeness SLA breached for 2026-11-20"), "run_id": "r2"}
    )
    assert sent == ["completeness SLA breached for 2026-11-20"]
    (record,) = (ingest_home / "audit" / "reports" / "alerts").glob("sla-*.json")
    assert json.loads(record.read_text()) == {"run_id": "r2", "message": sent[0]}


def test_the_amazon_providers_sns_notifier_plugs_in() -> None:
    from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

    sns = SnsNotifier(target_arn="arn:aws:sns:eu-west-1:123456789012:ocp-alerts", message="{{ ocp_alert }}")
    notifier = EscalationNotifier(forward_to=[sns])
    assert isinstance(sns, BaseNotifier) and notifier.forward_to == (sns,)


def test_an_anomaly_alone_is_alerted_and_recorded(ingest_home: Path, caplog) -> None:
    anomaly = "export exp-1 lists 3 recording(s) but none of its 2 planned call(s)"
    summary = {"escalated": 0, "escalations": [], "anomalies": [anomaly]}
    with caplog.at_level(logging.ERROR):
        EscalationNotifier()({"ti": FakeTi(summary), "run_id": "r1"})
    assert f"ALERT reconciliation run r1 anomaly: {anomaly}" in caplog.text
    (record,) = (ingest_home / "audit" / "reconciliation" / "alerts").glob("*.json")
    assert json.loads(record.read_text())["anomalies"] == [anomaly]
