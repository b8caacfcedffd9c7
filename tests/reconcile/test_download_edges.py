"""The download step against the simulator on loopback (no Airflow): OCP's legal oddities (issue #17)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ocp_ingest.ocp import OcpClient, PatAuth
from ocp_ingest.reconcile.download import download_export
from ocp_ingest.reconcile.exports import EXPORT_DATA_TYPES
from ocp_ingest.reconcile.plan import ExportPlan
from ocp_ingest.storage import StorageLayout
from tests.airflow.conftest import PAT, Tenant, sim_config, tenant_factory  # noqa: F401 (fixture)

HOUR = timedelta(hours=1)


def _window(tenant: Tenant) -> tuple[datetime, datetime]:
    start = tenant.sim.config.window_start.astimezone(UTC)
    return start, start + 2 * HOUR


def _completed_export(tenant: Tenant, client: OcpClient, plan: ExportPlan) -> str:
    export = client.create_export(plan.ocp_group, plan.start, plan.end, EXPORT_DATA_TYPES)
    return client.wait_for_export(export.export_id, poll_interval_s=0.05, timeout_s=20).export_id


def test_an_opaque_export_id_keeps_its_metadata_record_and_recovers_the_calls(tenant_factory) -> None:  # noqa: F811
    config = sim_config(calls=8)
    config.exports.opaque_ids = True  # ids like exp.20261202.0001.<tail>, longer than 64 characters
    tenant: Tenant = tenant_factory(config)
    tenant.receive_events(tenant.calls)
    group = tenant.calls[0].ocp_group
    mine = [c for c in tenant.calls if c.ocp_group == group]
    plan = ExportPlan(group, *_window(tenant), tuple(c.dialog_id for c in mine))
    with OcpClient(tenant.running.url, PatAuth(PAT), timeout=10) as client:
        export_id = _completed_export(tenant, client, plan)
        assert "." in export_id and len(export_id) > 64
        summary = download_export(plan, export_id, tenant.settings, client, run_id="manual__2026-12-02T00:00")
    assert {str(o) for o in summary.outcomes.values()} == {"stored"}, summary.to_dict()
    record_path = StorageLayout.from_settings(tenant.settings).reconciliation_record_path(
        "exports", export_id
    )
    assert record_path.exists()
    assert len(record_path.name) <= 80 and ".." not in record_path.name and "/" not in record_path.name
    kept = json.loads(record_path.read_bytes())
    assert kept["export"]["export_id"] == export_id  # the id itself is kept, as OCP gave it
    assert set(kept["planned_recordings"]) == {c.dialog_id for c in mine}
    assert all(tenant.record(c.dialog_id).export_id == export_id for c in mine)
