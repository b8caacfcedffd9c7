"""The production download: ``ocp-ingest download-export`` in the project's image, as a KubernetesPodOperator.

The pod makes the same domain call as the in-process task (:mod:`ocp_ingest.reconcile.download`, through
:mod:`ocp_ingest.cli.download`). Its
configuration comes by reference only: ``envFrom`` the ConfigMap (``OCP_INGEST_*`` settings) and single
variables from the Secret (the OCP connection as ``AIRFLOW_CONN_OCP_DEFAULT``, AWS credentials if the
service account has no IAM role). No secret value is ever in the pod spec, the DAG or the XCom. The
result comes back through ``/airflow/xcom/return.json`` (``do_xcom_push=True``); it waits deferred
(``deferrable=True``), so no worker slot is held while the pod runs.
"""

from __future__ import annotations

from typing import Any

from ocp_ingest.config import Settings

#: Secret keys passed to the pod as environment variables (by reference, never by value).
SECRET_ENV_KEYS: tuple[str, ...] = ("AIRFLOW_CONN_OCP_DEFAULT",)
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
        env_vars={"OCP_INGEST_DOWNLOAD_MODE": "kubernetes"},
        service_account_name=s.k8s_service_account,
        container_resources=resources,
        labels={"app.kubernetes.io/name": "ocp-ingest", "app.kubernetes.io/component": "download-export"},
        do_xcom_push=True,
        deferrable=True,
        get_logs=True,
        on_finish_action="delete_succeeded_pod",
        **kwargs,
    )
