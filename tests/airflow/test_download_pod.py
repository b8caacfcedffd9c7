"""The production download pod, checked without a cluster (build_pod_request_obj), and its entrypoint."""

from __future__ import annotations

import json

from ocp_ingest.airflow.download_pod import build_download_pod
from ocp_ingest.cli import main
from ocp_ingest.config import Settings
from ocp_ingest.reconcile.plan import ExportPlan
from ocp_ingest.reconcile.windows import parse_when


def test_pod_runs_the_entrypoint_in_the_project_image_with_config_by_reference(
    monkeypatch, ingest_home
) -> None:
    monkeypatch.setenv("OCP_INGEST_IMAGE", "registry.example/ocp-ingest:1.2.3")
    monkeypatch.setenv("OCP_INGEST_K8S_NAMESPACE", "recordings")
    monkeypatch.setenv("OCP_INGEST_DOWNLOAD_POD_MEMORY", "2Gi")
    monkeypatch.setenv("AIRFLOW_CONN_OCP_DEFAULT", '{"conn_type": "ocp", "password": "s3cr3t-pat-value"}')
    settings = Settings.from_env()
    operator = build_download_pod(
        task_id="download_and_store", wait_task_id="export_chain.request_and_wait", settings=settings
    )
    assert operator.deferrable and operator.do_xcom_push
    pod = operator.build_pod_request_obj(dry_run=True)
    assert pod.metadata.namespace == "recordings"
    assert pod.spec.service_account_name == "ocp-ingest-downloader"
    (container,) = [c for c in pod.spec.containers if c.name == "base"]
    assert container.image == "registry.example/ocp-ingest:1.2.3"
    assert container.command == ["ocp-ingest"]
    assert container.args[0] == "download-export"
    for flag in ("--plan-json", "--export-id", "--export-status", "--run-id"):
        assert flag in container.args
    assert "export_chain.request_and_wait" in container.args[container.args.index("--plan-json") + 1]
    assert container.resources.requests == {"cpu": "1", "memory": "2Gi"}
    assert container.resources.limits == {"memory": "2Gi"}
    # Settings from the ConfigMap and the OCP connection from the Secret, both by reference only.
    assert [e.config_map_ref.name for e in container.env_from] == ["ocp-ingest-config"]
    env = {e.name: e for e in container.env}
    ref = env["AIRFLOW_CONN_OCP_DEFAULT"].value_from.secret_key_ref
    assert (ref.name, ref.key) == ("ocp-ingest-secrets", "AIRFLOW_CONN_OCP_DEFAULT")
    assert env["AIRFLOW_CONN_OCP_DEFAULT"].value is None
    assert "s3cr3t-pat-value" not in str(pod.to_dict())
    # The result comes back through the XCom sidecar.
    assert any(c.name == "airflow-xcom-sidecar" for c in pod.spec.containers)


def test_the_pods_entrypoint_passes_the_waits_result_on_when_there_is_nothing_to_download(
    ingest_home, tmp_path, capsys
) -> None:
    """The export did not complete: nothing is asked of OCP, and the result says why for the close step."""
    start, end = parse_when("2026-11-24T09:00:00Z"), parse_when("2026-11-24T10:00:00Z")
    assert start is not None and end is not None
    plan = ExportPlan("grp-a", start, end, ("A" * 32,))
    xcom = tmp_path / "return.json"
    argv = ["download-export", "--plan-json", json.dumps(plan.to_dict()), "--export-id", "exp-1"]
    argv += ["--export-status", "FAILED", "--export-message", "OCP: no", "--xcom-path", str(xcom)]
    assert main(argv) == 0
    result = json.loads(xcom.read_text())
    assert json.loads(capsys.readouterr().out) == result
    assert (result["plan_label"], result["status"], result["counts"]) == (plan.label, "skipped", {})
    assert (result["export_id"], result["export_status"], result["message"]) == ("exp-1", "FAILED", "OCP: no")
