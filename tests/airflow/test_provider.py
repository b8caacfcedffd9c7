"""The package as an Airflow provider: Airflow lists the ``ocp`` connection type, offers its form, and a
connection made through the REST API resolves to an OCP client with its secret masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocp_ingest.airflow.provider import CONN_FIELDS, get_provider_info

AIRFLOW = Path(sys.executable).with_name("airflow")


def test_provider_info_is_valid_for_airflow() -> None:
    import jsonschema
    from airflow.providers_manager import ProvidersManager

    info = get_provider_info()
    ProvidersManager()._provider_schema_validator.validate(info)  # the schema Airflow validates with
    jsonschema.Draft7Validator.check_schema(CONN_FIELDS["timeout"]["schema"])


def test_airflow_lists_the_ocp_hook() -> None:
    done = subprocess.run(
        [str(AIRFLOW), "providers", "hooks", "--output", "json"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=True,
    )
    hooks = {h["connection_type"]: h for h in json.loads(done.stdout)}
    assert hooks["ocp"]["class"] == "ocp_ingest.airflow.hooks.OcpHook"
    assert hooks["ocp"]["package_name"] == "ocp-ingest"


@pytest.mark.usefixtures("airflow_db")
def test_connection_form_and_a_connection_made_through_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    from airflow.api_fastapi.app import create_app
    from airflow.models import Connection
    from fastapi.testclient import TestClient

    from ocp_ingest.airflow.hooks import settings_from_connection
    from ocp_ingest.ocp import PatAuth

    client = TestClient(create_app("all"))
    meta = {h["connection_type"]: h for h in client.get("/ui/connections/hook_meta").json()}
    ocp = meta["ocp"]
    assert ocp["hook_name"] == "Omilia OCP"
    assert {"personal_access_token", "realm", "token_url"} <= set(ocp["extra_fields"])
    assert ocp["standard_fields"]["host"]["title"] == "OCP API base URL"

    created = client.post(
        "/api/v2/connections",
        json={
            "connection_id": "ocp_api_made",
            "conn_type": "ocp",
            "host": "https://eu.ocp.ai",
            "extra": json.dumps({"personal_access_token": "pat-secret-1", "timeout": 5}),
        },
    )
    assert created.status_code == 201, created.text
    assert "pat-secret-1" not in created.text  # masked by Airflow: the field's name says it is a token
    # Outside a task the SDK hook has no supervisor to ask; read the stored row the way the API server does.
    settings = settings_from_connection(Connection.get_connection_from_secrets("ocp_api_made"))
    assert isinstance(settings.auth, PatAuth) and settings.base_url == "https://eu.ocp.ai"
    assert settings.timeout == 5 and "pat-secret-1" not in repr(settings)
