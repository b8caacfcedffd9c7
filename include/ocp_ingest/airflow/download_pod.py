"""The production download: ``ocp-ingest download-export`` in the project's image, as a KubernetesPodOperator.

The pod makes the same domain call as the in-process task (:mod:`ocp_ingest.reconcile.download`, through
:mod:`ocp_ingest.cli.download`). Its
configuration comes by reference only: ``envFrom`` the ConfigMap (``OCP_INGEST_*`` settings) and single
variables from the Secret (the OCP connection as ``AIRFLOW_CONN_OCP_DEFAULT``, AWS credentials if the
service account has no IAM role). No secret value is ever in the pod spec, the DAG or the XCom. The
result comes back through ``/airflow/xcom/return.json`` (``do_xcom_push=True``); it waits deferred
(``deferrable=True``), so no worker slot is held while the pod runs.

It runs locked down (Pod Security Standards "restricted" and more): as the image's ``airflow`` user (uid
50000, group 0 as the official image expects), no privilege escalation, every capability dropped, the
runtime's default seccomp profile, a read-only root filesystem (the container's command is ``ocp-ingest``
itself, not the image's entrypoint, so nothing writes to the image: Python's and the libraries' temporary
files go to an emptyDir at ``/tmp``, Airflow's log folder there too; the result goes to the sidecar's
``/airflow/xcom`` emptyDir). The XCom sidecar gets the same container context. Kubernetes ends the pod
after ``OCP_INGEST_DOWNLOAD_TIMEOUT_S`` (``activeDeadlineSeconds``), the same bound as the in-process task's.
"""

from __future__ import annotations

import math
from typing import Any

from ocp_ingest.config import Settings

#: Secret keys passed to the pod as environment variables (by reference, never by value).
SECRET_ENV_KEYS: tuple[str, ...] = ("AIRFLOW_CONN_OCP_DEFAULT",)
#: The official Airflow image's ``airflow`` user, and group 0, which owns what the image's user may write.
AIRFLOW_UID = 50000
AIRFLOW_GID = 0
#: The only writable place besides the XCom volume: temporary files (Python, botocore, PyAV) and Airflow's
#: log folder (the hook imports Airflow, which creates it). Downloads stream to landing storage, not here.
SCRATCH_PATH = "/tmp"
SCRATCH_SIZE_LIMIT = "1Gi"
_WAIT_XCOM = "ti.xcom_pull(task_ids='{task}', map_indexes=ti.map_index)"


def download_arguments(wait_task_id: str) -> list[str]:
    """The pod's arguments, rendered per mapped instance from the wait step's result."""
    wait = _WAIT_XCOM.format(task=wait_task_id)
    return [
        "download-export",
        "--plan-json",
        "{{ " + wait + "['plan'] | tojson }}",
        "--export-id",
        "{{ " + wait + "['export_id'] or '' }}",
        "--export-status",
        "{{ " + wait + "['export_status'] }}",
        "--export-message",
        "{{ " + wait + "['message'] or '' }}",
        "--run-id",
        "{{ run_id }}",
    ]


def pod_security_context() -> Any:
    """The pod's: non-root as the image's user, group 0, seccomp RuntimeDefault."""
    from kubernetes.client import models as k8s

    return k8s.V1PodSecurityContext(
        run_as_non_root=True,
        run_as_user=AIRFLOW_UID,
        run_as_group=AIRFLOW_GID,
        fs_group=AIRFLOW_GID,
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def container_security_context() -> Any:
    """Each container's (the download and the XCom sidecar): nothing to escalate to, nothing to write."""
    from kubernetes.client import models as k8s

    return k8s.V1SecurityContext(
        run_as_non_root=True,
        run_as_user=AIRFLOW_UID,
        run_as_group=AIRFLOW_GID,
        allow_privilege_escalation=False,
        privileged=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        read_only_root_filesystem=True,
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def build_download_pod(
    *, task_id: str, wait_task_id: str, settings: Settings | None = None, **kwargs: Any
) -> Any:
    """A deferrable KubernetesPodOperator running ``ocp-ingest download-export`` for one plan."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.cncf.kubernetes.secret import Secret
    from kubernetes.client import models as k8s

    s = settings or Settings.from_env()
    resources = k8s.V1ResourceRequirements(
        requests={"cpu": s.download_pod_cpu, "memory": s.download_pod_memory},
        limits={"memory": s.download_pod_memory},  # no CPU limit: throttling slows checksums
    )
    secrets = [Secret("env", key, s.k8s_secret, key) for key in SECRET_ENV_KEYS]
    env_from = [k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=s.k8s_configmap))]
    scratch = k8s.V1Volume(
        name="scratch", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=SCRATCH_SIZE_LIMIT)
    )
    kwargs.setdefault(
        "map_index_template",
        "{{ " + _WAIT_XCOM.format(task=wait_task_id) + "['plan']['label'] }}",
    )
    return KubernetesPodOperator(
        task_id=task_id,
        name="ocp-download-export",
        namespace=s.k8s_namespace,
        image=s.image,
        cmds=["ocp-ingest"],
        arguments=download_arguments(wait_task_id),
        env_from=env_from,
        secrets=secrets,
        env_vars={
            "OCP_INGEST_DOWNLOAD_MODE": "kubernetes",
            "TMPDIR": SCRATCH_PATH,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": f"{SCRATCH_PATH}/airflow-logs",
        },
        service_account_name=s.k8s_service_account,
        container_resources=resources,
        security_context=pod_security_context(),
        container_security_context=container_security_context(),
        xcom_sidecar_container_security_context=container_security_context(),
        volumes=[scratch],
        volume_mounts=[k8s.V1VolumeMount(name="scratch", mount_path=SCRATCH_PATH)],
        # Kubernetes ends the pod (DeadlineExceeded) however the operator waits; the attempt fails, retries.
        active_deadline_seconds=math.ceil(s.download_timeout_s),
        labels={"app.kubernetes.io/name": "ocp-ingest", "app.kubernetes.io/component": "download-export"},
        do_xcom_push=True,
        deferrable=True,
        get_logs=True,
        on_finish_action="delete_succeeded_pod",
        **kwargs,
    )
