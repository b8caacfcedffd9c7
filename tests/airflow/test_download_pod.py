"""The production download pod, checked without a cluster (build_pod_request_obj), and its entrypoint.

The rendered pod is validated against the Kubernetes JSON schema of the version the pinned ``kubernetes``
client speaks (``kubernetes-validate`` ships the schemas; strict: an unknown or misspelled field fails too).
That its read-only root holds is shown by a real download through the pod's entrypoint with the root
filesystem read-only except the temporary directory (a mount namespace; needs root, else skipped).
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import kubernetes
import kubernetes_validate
import pytest
from kubernetes.client import ApiClient

from ocp_ingest.airflow.download_pod import AIRFLOW_UID, build_download_pod
from ocp_ingest.cli import main
from ocp_ingest.config import Settings
from ocp_ingest.ocp import OcpClient, PatAuth
from ocp_ingest.reconcile.exports import EXPORT_DATA_TYPES
from ocp_ingest.reconcile.plan import ExportPlan
from ocp_ingest.reconcile.windows import parse_when
from tests.airflow.conftest import PAT, Tenant, sim_config


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


#: Runs a command the way the pod's filesystem is: the root read-only, the temporary directory writable
#: (the pod's /tmp emptyDir; the XCom file and the test's stand-in storage live there too).
_READ_ONLY_ROOT = 'mount --bind "$1" "$1" && mount -o remount,bind,ro / && shift && exec "$@"'


def _read_only_root_available() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = ["unshare", "-m", "--propagation", "private", "sh", "-c", _READ_ONLY_ROOT, "sh", "/tmp", "true"]
    return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0


@pytest.mark.slow  # a second Python process importing the Airflow SDK and the download
def test_the_entrypoint_downloads_with_a_read_only_root_writing_only_to_tmp(
    tenant_factory, tmp_path, monkeypatch
) -> None:
    """``readOnlyRootFilesystem`` holds: a real download, run with the root read-only except the temp dir."""
    if not _read_only_root_available():
        pytest.skip("needs root and mount namespaces (unshare -m) to make the root read-only")
    scratch = Path(tempfile.gettempdir())
    assert tmp_path.is_relative_to(scratch)
    pod = rendered_pod(Settings.from_env())
    (base,) = [c for c in pod.spec.containers if c.name == "base"]
    pod_env = {e.name: e.value for e in base.env if e.value is not None}
    assert pod_env["TMPDIR"] == "/tmp"
    # Airflow's home as in the image's /opt/airflow: there, read-only, without an airflow.cfg.
    airflow_home = Path(sys.prefix)
    assert not (airflow_home / "airflow.cfg").exists() and not airflow_home.is_relative_to(scratch)
    monkeypatch.setenv("AIRFLOW_HOME", str(airflow_home))
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", pod_env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"])

    tenant: Tenant = tenant_factory(sim_config(calls=6))
    tenant.receive_events(tenant.calls)
    group = tenant.calls[0].ocp_group
    mine = [c for c in tenant.calls if c.ocp_group == group and c.has_recording]
    start = tenant.sim.config.window_start.astimezone(UTC)
    plan = ExportPlan(group, start, start + timedelta(hours=2), tuple(c.dialog_id for c in mine))
    with OcpClient(tenant.running.url, PatAuth(PAT), timeout=10) as client:
        export = client.create_export(plan.ocp_group, plan.start, plan.end, EXPORT_DATA_TYPES)
        export_id = client.wait_for_export(export.export_id, poll_interval_s=0.05, timeout_s=20).export_id
    xcom = tmp_path / "xcom" / "return.json"
    xcom.parent.mkdir()
    entrypoint = "import sys; from ocp_ingest.cli import main; sys.exit(main(sys.argv[1:]))"
    args = [*pod_args(plan, export_id), "--xcom-path", str(xcom)]
    sandbox = ["unshare", "-m", "--propagation", "private", "sh", "-c", _READ_ONLY_ROOT, "sh", str(scratch)]
    done = subprocess.run(
        [*sandbox, sys.executable, "-c", entrypoint, *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    result = json.loads(xcom.read_text())
    assert result["status"] == "done", result
    assert set(result["outcomes"].values()) == {"stored"} and len(result["outcomes"]) == len(mine), result
    assert all(tenant.record(c.dialog_id).s3_stored for c in mine)
    # The sandbox is real: outside the temp dir nothing can be written.
    probe = airflow_home / "ocp-ingest-read-only-probe"
    try:
        denied = subprocess.run([*sandbox, "touch", str(probe)], capture_output=True, text=True, timeout=30)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr, denied.stderr
    finally:
        probe.unlink(missing_ok=True)


def pod_args(plan: ExportPlan, export_id: str) -> list[str]:
    """The arguments the pod gets once Airflow has rendered its templates for this plan and export."""
    return [
        "download-export",
        "--plan-json",
        json.dumps(plan.to_dict()),
        "--export-id",
        export_id,
        "--export-status",
        "COMPLETED",
        "--run-id",
        "manual__2026-12-03T00:00",
    ]
