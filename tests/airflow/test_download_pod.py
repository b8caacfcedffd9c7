"""The production download pod, checked without a cluster (build_pod_request_obj), and its entrypoint.

The rendered pod is validated against the Kubernetes JSON schema of the version the pinned ``kubernetes``
client speaks (``kubernetes-validate`` ships the schemas; strict: an unknown or misspelled field fails too).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from typing import Any

import kubernetes
import kubernetes_validate
import pytest
from kubernetes.client import ApiClient

from ocp_ingest.airflow.download_pod import AIRFLOW_UID, build_download_pod
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


def rendered_pod(settings: Settings) -> Any:
    operator = build_download_pod(
        task_id="download_and_store", wait_task_id="export_chain.request_and_wait", settings=settings
    )
    return operator.build_pod_request_obj(dry_run=True)


def test_pod_runs_locked_down_with_scratch_on_an_empty_dir_and_a_deadline(monkeypatch, ingest_home) -> None:
    monkeypatch.setenv("OCP_INGEST_DOWNLOAD_TIMEOUT_S", "5400.5")
    pod = rendered_pod(Settings.from_env())
    spec = pod.spec
    assert spec.active_deadline_seconds == math.ceil(5400.5)
    pod_context = spec.security_context
    assert pod_context.run_as_non_root and pod_context.run_as_group == 0
    assert pod_context.run_as_user == AIRFLOW_UID == 50000
    assert pod_context.seccomp_profile.type == "RuntimeDefault"
    assert [c.name for c in spec.containers] == ["base", "airflow-xcom-sidecar"]
    volumes = {v.name: v for v in spec.volumes}
    for container in spec.containers:  # the sidecar too: Pod Security Standards "restricted" and more
        context = container.security_context
        assert context is not None, container.name
        assert context.run_as_non_root and context.run_as_user == AIRFLOW_UID != 0, container.name
        assert context.run_as_group == 0, container.name
        assert context.allow_privilege_escalation is False and context.privileged is False, container.name
        assert context.capabilities.drop == ["ALL"] and not context.capabilities.add, container.name
        assert context.read_only_root_filesystem is True, container.name
        assert context.seccomp_profile.type == "RuntimeDefault", container.name
        # With the root read-only, whatever a container may write is an emptyDir, nothing on the node.
        for mount in container.volume_mounts:
            assert volumes[mount.name].empty_dir is not None, (container.name, mount.name)
    (base,) = [c for c in spec.containers if c.name == "base"]
    mounts = {m.mount_path: m.name for m in base.volume_mounts}
    assert {"/tmp", "/airflow/xcom"} <= set(mounts), mounts
    assert volumes[mounts["/tmp"]].empty_dir.size_limit
    env = {e.name: e.value for e in base.env}
    assert env["TMPDIR"] == "/tmp"
    assert env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"].startswith("/tmp/")
    # The container runs the package's console script, never the image's entrypoint (which may write).
    assert base.command == ["ocp-ingest"]


def k8s_version() -> str:
    """The Kubernetes minor version the pinned client is generated for (client 36.x speaks 1.36)."""
    return f"1.{int(kubernetes.__version__.split('.')[0])}"


def as_manifest(pod: Any) -> dict[str, Any]:
    """The pod as the API server receives it (camelCase, no None): what the provider sends."""
    manifest: dict[str, Any] = ApiClient().sanitize_for_serialization(pod)
    return manifest


def test_the_rendered_pod_is_a_valid_kubernetes_pod(monkeypatch, ingest_home) -> None:
    monkeypatch.setenv("OCP_INGEST_IMAGE", "registry.example/ocp-ingest:1.2.3")
    manifest = as_manifest(rendered_pod(Settings.from_env()))
    assert (manifest["apiVersion"], manifest["kind"]) == ("v1", "Pod")
    assert kubernetes_validate.validate(manifest, k8s_version(), strict=True) == k8s_version()
    assert manifest["spec"]["activeDeadlineSeconds"] == 6 * 3600
    assert manifest["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def _base(manifest: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = manifest["spec"]["containers"][0]
    return container


BREAKAGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "user as a name": lambda m: _base(m)["securityContext"].update(runAsUser="airflow"),
    "misspelled field": lambda m: _base(m)["securityContext"].update(readOnlyRootFileSystem=True),
    "deadline as text": lambda m: m["spec"].update(activeDeadlineSeconds="6h"),
    "capabilities not a list": lambda m: _base(m)["securityContext"]["capabilities"].update(drop="ALL"),
    "container without a name": lambda m: _base(m).pop("name"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_the_schema_check_fails_on_a_broken_copy_of_the_pod(breakage: str, ingest_home) -> None:
    manifest = as_manifest(rendered_pod(Settings.from_env()))
    broken = copy.deepcopy(manifest)
    BREAKAGES[breakage](broken)
    assert broken != manifest
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, k8s_version(), strict=True)
