"""``ocp-ingest download-export``: the download pod's entrypoint (a KubernetesPodOperator in production).

Thin: the arguments (built by :func:`ocp_ingest.airflow.download_pod.download_arguments`) in, the domain
download (:func:`ocp_ingest.reconcile.download.download_plan`), the result out as small JSON on stdout
and in ``/airflow/xcom/return.json``, which the pod's XCom sidecar reads (a long download's per-call
results are a manifest object it points to: ``DownloadSummary.to_reference``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

XCOM_RETURN_PATH = Path("/airflow/xcom/return.json")


def _cmd_download(args: argparse.Namespace) -> int:
    from ocp_ingest.airflow.hooks import OcpHook
    from ocp_ingest.config import Settings
    from ocp_ingest.reconcile.download import download_plan
    from ocp_ingest.reconcile.plan import ExportPlan
    from ocp_ingest.storage import StorageLayout

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings.from_env()
    summary = download_plan(
        ExportPlan.from_dict(json.loads(args.plan_json)),
        args.export_id or None,
        args.export_status,
        settings,
        OcpHook(args.ocp_conn_id).get_client,
        message=args.export_message,
        run_id=args.run_id,
    )
    # a long download's per-call results go to a manifest: what the sidecar reads stays small
    text = json.dumps(summary.to_reference(StorageLayout.from_settings(settings)), sort_keys=True)
    xcom = Path(args.xcom_path) if args.xcom_path else XCOM_RETURN_PATH
    if args.xcom_path or xcom.parent.is_dir():  # inside a KubernetesPodOperator pod with do_xcom_push
        xcom.write_text(text)
    print(text)
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download-export", help="store the planned calls' recordings from a completed OCP export"
    )
    parser.add_argument("--plan-json", required=True, help="the export plan (ExportPlan.to_dict JSON)")
    parser.add_argument("--export-id", required=True)
    parser.add_argument("--export-status", default="COMPLETED", help="skip unless COMPLETED")
    parser.add_argument("--export-message", default="", help="the wait's message, passed on in the result")
    parser.add_argument("--run-id", default=None, help="the DAG run (for logs)")
    parser.add_argument("--ocp-conn-id", default="ocp_default")
    parser.add_argument(
        "--xcom-path", default=None, help=f"result file (default {XCOM_RETURN_PATH} if present)"
    )
    parser.add_argument("--label", default=None, help="ignored; shows the plan in process listings")
    parser.set_defaults(func=_cmd_download)
