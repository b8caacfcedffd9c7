"""The package as an Airflow provider: the ``ocp`` connection type with its form, the hook and the triggers.

Registered through the ``apache_airflow_provider`` entry point (pyproject.toml), so
``airflow providers hooks`` lists "Omilia OCP" and the Connections page offers its fields without importing
the hook. The form is declarative (``conn-fields`` / ``ui-field-behaviour``), as Airflow 3.2+ expects.
"""

from __future__ import annotations

from typing import Any

#: Extras of an ``ocp`` connection, shown as form fields; the hook's ``settings_from_connection`` reads them
#: by these names.
CONN_FIELDS: dict[str, dict[str, Any]] = {
    # the name contains "token", so Airflow masks the value in the API, the UI and task logs
    "personal_access_token": {
        "label": "Personal Access Token",
        "description": "OCP PAT (or put it in Password with an empty Login)",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "realm": {
        "label": "Realm",
        "description": "Keycloak realm of the password grant (default ocp)",
        "schema": {"type": ["string", "null"]},
    },
    "auth_host": {
        "label": "Auth host",
        "description": "Base URL of the token service, if not the API host",
        "schema": {"type": ["string", "null"]},
    },
    "token_url": {
        "label": "Token URL",
        "description": "Full token endpoint; overrides realm and auth host",
        "schema": {"type": ["string", "null"]},
    },
    "client_id": {
        "label": "Client id",
        "description": "OAuth client of the password grant (default ocp)",
        "schema": {"type": ["string", "null"]},
    },
    "timeout": {
        "label": "Timeout (s)",
        "description": "Per-request timeout in seconds (default 60)",
        "schema": {"type": ["number", "null"]},
    },
}


def get_provider_info() -> dict[str, Any]:
    """What ``ProvidersManager`` reads (validated against Airflow's provider_info schema)."""
    return {
        "package-name": "ocp-ingest",
        "name": "Omilia OCP ingestion",
        "description": "OCP call-recording ingestion: the ocp connection type, its hook and triggers.",
        "connection-types": [
            {
                "connection-type": "ocp",
                "hook-class-name": "ocp_ingest.airflow.hooks.OcpHook",
                "hook-name": "Omilia OCP",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "OCP API base URL",
                        "login": "Username (password grant; empty for a PAT)",
                        "password": "Password or Personal Access Token",
                    },
                    "placeholders": {"host": "https://eu.ocp.ai", "realm": "ocp", "timeout": "60"},
                },
            }
        ],
        "hooks": [{"integration-name": "Omilia OCP", "python-modules": ["ocp_ingest.airflow.hooks"]}],
        "triggers": [{"integration-name": "Omilia OCP", "python-modules": ["ocp_ingest.airflow.triggers"]}],
        "integrations": [{"integration-name": "Omilia OCP", "external-doc-url": "https://docs.ocp.ai/"}],
    }
