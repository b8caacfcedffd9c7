"""``ocp-ingest demo --topology distributed``: the whole flow on the production topology, unattended.

The distributed stack (:mod:`ocp_ingest_dev.stack.distributed`) runs every part as its own process:
Postgres, Redis, moto (S3, DynamoDB, KMS), Airflow with the CeleryExecutor and two workers, two receivers
behind haproxy, the simulator pushing to haproxy. Both DAGs run on their own schedule (the local cadence,
reconciliation every minute). Once every call is settled the completeness report runs through the REST
API; then the same verdict as the in-process demo (:func:`ocp_ingest_dev.demo.verdict.judge`) is given on
what is in DynamoDB and S3, plus the topology's facts: executor, metadata DB, ledger, storage, tasks run per
worker, pushes answered per receiver.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ocp_ingest_dev.demo.config import FlowConfig

#: The local cadence with reconciliation every minute (a demo of a few dozen calls settles in minutes) and
#: realtime shards of a few recordings, so a small demo's realtime runs fan out over both workers.
DEMO_DISTRIBUTED_CADENCE = {
    "OCP_INGEST_RECONCILIATION_SCHEDULE": "* * * * *",
    "OCP_INGEST_REALTIME_SHARD_SIZE": "8",
}


#: How often the demo looks whether every call is settled (``settled_s`` is this precise), whatever the
#: progress interval (``--no-progress``: no line until settled).
SETTLE_CHECK_S = 2.0


def simulator_args(config: FlowConfig) -> list[str]:
    """The in-process demo's calls and faults as the simulator's options, so both topologies play the same
    scenario (a delayed push only slows a demo: none, as in :meth:`Flow.push_faults`)."""
    c = config
    options = {
        "--min-duration-s": c.min_duration_s,
        "--max-duration-s": c.max_duration_s,
        "--no-recording-share": c.no_recording_share,
        "--duplicate-share": c.duplicate_share,
        "--out-of-order-share": c.out_of_order_share,
        "--delay-share": 0.0,
        "--truncate-share": c.truncate_share,
        "--corrupt-share": c.corrupt_share,
        "--lost-end-share": c.lost_end_share,
        "--reset-share": c.reset_share,
        "--push-concurrency": c.push_concurrency,
        "--prep-s": c.export_prep_s,
        "--ttl-s": c.export_ttl_s,
    }
    return [str(item) for pair in options.items() for item in pair]


class StoredSnapshots:
    """What each call looked like when first seen stored (sha256, object, time): none may change later."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[Any, ...]] = {}

    def __call__(self, ledger: Any, truth: dict[str, Any]) -> None:
        records = ledger.get_many([c["dialog_id"] for c in truth["calls"]])
        for dialog_id, r in records.items():
            if r.s3_stored:
                self.first.setdefault(dialog_id, (r.sha256, r.object_url, r.s3_stored_at))


def run_distributed_demo(
    config: FlowConfig,
    home: Path,
    *,
    console: Any,
    progress_interval_s: float = 10.0,
    faults: str | None = None,
) -> dict[str, Any]:
    """Start the topology under ``home``, play ``config``'s calls, settle, report, judge, stop.

    With ``faults`` (a schedule of :mod:`ocp_ingest_dev.stack.faults`, e.g. ``process``) its faults strike
    the real processes during the run; the run ends once every call is settled and every fault recovered,
    and the summary's ``faults`` says when each struck and recovered (one that did not is a violation)."""
    from ocp_ingest_dev.stack import LOCAL_CADENCE
    from ocp_ingest_dev.stack.distributed import DistributedStack
    from ocp_ingest_dev.stack.faults import FAULT_EXPORT_PREP_S, FaultSchedule, schedule_faults
    from ocp_ingest_dev.stack.watch import report_settled, watch_calls

    fault_list = schedule_faults(faults) if faults else []
    if fault_list:  # exports slow enough to be caught waiting in the triggerer
        config = replace(config, export_prep_s=max(config.export_prep_s, FAULT_EXPORT_PREP_S))

    stack = DistributedStack(
        home=home,
        calls=config.calls,
        seed=config.seed,
        push_loss=config.push_loss,
        window_hours=config.window_hours,
        mean_duration_s=config.mean_duration_s,
        push_rate=config.push_rate or 20.0,
        api_error_share=config.error_share,
        broken_download_share=config.broken_download_share,
        settings_env={**LOCAL_CADENCE, **DEMO_DISTRIBUTED_CADENCE},
        progress=console,
        simulator_args=simulator_args(config),
    )
    started = time.monotonic()
    snapshots = StoredSnapshots()
    schedule = None
    try:
        stack.start()
        stack.use_topology_here()
        settled_at = None
        if fault_list:
            schedule = FaultSchedule(stack, fault_list, started, console=console)
            schedule.start()
        remaining = max(1.0, config.timeout_s - (time.monotonic() - started))
        done = watch_calls(
            stack.truth_path,
            schedule.alive if schedule else stack.alive,
            started,
            progress_interval_s,
            console,
            remaining,
            on_tick=snapshots,
            settle_check_s=SETTLE_CHECK_S,
            until=schedule.finished if schedule else None,
        )
        if schedule is not None:
            schedule.stop()
        reports: list[Any] = []
        if done is not None:
            settled_at = time.monotonic() - started
            reports = report_settled(*done, settled_at, console, stack.api(), stack.ui_url)
        dead = stack.processes.dead()
        summary = summarize_run(stack, snapshots, config)
        summary["settled_s"] = round(settled_at, 1) if settled_at is not None else None
        summary["reports"] = [
            {"day": r.day.isoformat(), "state": r.state, "total": r.total, "html": r.html} for r in reports
        ]
        report_ok = bool(reports) and all(
            r.state == "success" and r.total and r.total.get("completeness_pct") == 100.0 for r in reports
        )
        if done is not None and not report_ok:
            summary["violations"].append("the completeness report did not read 100%")
        sse = summary["topology"]["sse_kms"]
        if sse["objects"] != sse["with_the_key"]:
            summary["violations"].append(f"recordings without SSE-KMS with the key: {sse}")
        if dead is not None:
            summary["violations"].append(f"{dead.name} exited during the run ({dead.where()})")
        if schedule is not None:
            summary["faults"] = schedule.summary()
            summary["violations"] += schedule.violations()
        summary["timed_out"] = done is None and dead is None
        summary["ok"] = not summary["violations"] and done is not None
        summary["elapsed_s"] = round(time.monotonic() - started, 1)
        return summary
    finally:
        if schedule is not None:
            schedule.stop()
        stack.stop()


def summarize_run(stack: Any, snapshots: StoredSnapshots, config: FlowConfig) -> dict[str, Any]:
    """The verdict on what the topology stored (DynamoDB, S3) against the simulator's ground truth."""
    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger
    from ocp_ingest_dev.demo.verdict import Evidence, audit_disagreements, judge, stored_objects
    from ocp_ingest_dev.stack.tally import load_truth

    truth = load_truth(stack.truth_path) or {"calls": [], "push_complete": False}
    calls = truth["calls"]
    settings = Settings.from_env()
    with open_ledger(settings) as ledger:
        records = ledger.get_many([c["dialog_id"] for c in calls])
        audit_checked, audit = 0, dict[str, list[str]]()
        if calls:
            starts = [datetime.fromtimestamp(c["start"] / 1000, UTC) for c in calls]
            hours = (max(starts) - min(starts)).total_seconds() / 3600
            audit_checked, audit = audit_disagreements(ledger, settings, min(starts), hours)
    verdict = judge(
        Evidence(
            call_ids=[c["dialog_id"] for c in calls],
            records=records,
            truth_sha256={c["dialog_id"]: c["recording_sha256"] for c in calls if c.get("recording_sha256")},
            objects=stored_objects(settings.recordings_url, stack.lobs()),
            stored_before=snapshots.first,
            audit_checked=audit_checked,
            audit=audit,
        )
    )
    plans = [c["push"] for c in calls if c.get("push")]
    simulator = _simulator_health(stack)
    runs = _dag_runs(stack)
    violations = verdict.pop("violations")
    ok = verdict.pop("ok")
    return {
        **verdict,
        "dialog_end_lost_in_push": sum(1 for p in plans if p.get("dialog_end_lost")),
        "push_outcomes": dict(Counter(p.get("audio") for p in plans)),
        "ocp_faults_injected": simulator.get("faults_injected"),
        "exports_created": simulator.get("exports_created"),
        "realtime_runs": runs["realtime"],
        "reconciliation_runs": runs["reconciliation"],
        "backfill_runs": 0,
        "task_retries": runs["task_retries"],
        "failed_dag_runs": runs["failed"],
        "violations": violations,
        "ok": ok,
        "config": asdict(config),
        "topology": topology_facts(stack, settings),
    }


def _simulator_health(stack: Any) -> dict[str, Any]:
    try:
        response = httpx.get(f"http://127.0.0.1:{stack.ports['simulator']}/health", timeout=5.0)
        return dict(response.json())
    except (httpx.HTTPError, ValueError, KeyError):
        return {}


def _dag_runs(stack: Any) -> dict[str, Any]:
    """DAG runs and retried task instances, from the REST API."""
    api = stack.api()
    try:
        realtime = api.dag_runs("ocp_realtime_ingest")
        reconciliation = api.dag_runs("ocp_reconciliation")
        retried = sum(1 for ti in api.task_instances() if (ti.get("try_number") or 0) > 1)
    except (httpx.HTTPError, ValueError):
        return {"realtime": None, "reconciliation": None, "task_retries": None, "failed": []}
    finally:
        api.close()
    failed = [
        f"{r['dag_id']} {r['dag_run_id']}: failed"
        for r in realtime + reconciliation
        if r["state"] == "failed"
    ]
    return {
        "realtime": len(realtime),
        "reconciliation": len(reconciliation),
        "task_retries": retried,
        "failed": failed,
    }


def topology_facts(stack: Any, settings: Any) -> dict[str, Any]:
    """What ran where: executor, metadata DB, ledger, storage, tasks per worker, pushes per receiver."""
    from ocp_ingest_dev.stack.distributed import recordings_sse

    scheme = {
        u.split("://", 1)[0] for u in (settings.recordings_url, settings.landing_url, settings.audit_url)
    }
    return {
        "executor": stack.airflow_env()["AIRFLOW__CORE__EXECUTOR"],
        "metadata_db": f"postgresql {stack.postgres_version}",
        "ledger_backend": settings.ledger_backend,
        "storage_scheme": ",".join(sorted(scheme)),
        "recordings_buckets": [u.split("@", 1)[-1] for u in _roots(settings, stack)],
        "sse_kms": recordings_sse(stack, settings),
        "workers": stack.worker_names(),
        "tasks_per_worker": stack.tasks_per_worker(),
        "realtime_stores_per_worker": stack.realtime_stores_per_worker(),
        "receivers": stack.receiver_names(),
        "pushes_per_receiver": stack.pushes_per_receiver(),
        "ports": dict(stack.ports),
        "run_dir": str(stack.run_dir),
    }


def _roots(settings: Any, stack: Any) -> list[str]:
    from ocp_ingest_dev.demo.verdict import recordings_roots

    return recordings_roots(settings.recordings_url, stack.lobs())
