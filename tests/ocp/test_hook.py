"""OcpHook: clients built from the ``ocp_default`` Connection; secrets never in reprs or messages."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from ocp_test_support import PASSWORD, PAT, USER

from ocp_ingest.airflow.hooks import OcpHook, settings_from_connection
from ocp_ingest.ocp import AuthError, PasswordAuth, PatAuth


def _conn(**fields: object) -> SimpleNamespace:
    base = {
        "conn_id": "ocp_default",
        "host": None,
        "login": None,
        "password": None,
        "schema": None,
        "port": None,
    }
    return SimpleNamespace(**{**base, **fields})


def test_settings_from_connection_variants() -> None:
    s = settings_from_connection(_conn(host="eu.ocp.ai", password="p4t", extra_dejson={}))
    assert s.base_url == "https://eu.ocp.ai" and isinstance(s.auth, PatAuth) and "p4t" not in repr(s)
    s = settings_from_connection(
        _conn(host="http://127.0.0.1:1", login="u", password="pw-secret", extra_dejson={"realm": "master"})
    )
    assert isinstance(s.auth, PasswordAuth) and s.auth.token_url.endswith(
        "/auth/realms/master/protocol/openid-connect/token"
    )
    assert "pw-secret" not in repr(s)
    s = settings_from_connection(
        _conn(host="x", extra_dejson={"pat": "extra-pat", "base_url": "https://h/", "timeout": 5})
    )
    assert s.base_url == "https://h" and s.timeout == 5
    with pytest.raises(ValueError, match="PAT"):
        settings_from_connection(_conn(host="x", login="u", extra_dejson={}))


def test_hook_builds_working_clients_from_the_airflow_connection(running, monkeypatch) -> None:
    conn = {
        "conn_type": "ocp",
        "host": running.url,
        "login": USER,
        "password": PASSWORD,
        "extra": {"realm": "ocp"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_OCP_DEFAULT", json.dumps(conn))
    hook = OcpHook()
    with hook.get_client() as client:
        assert client.list_exports() == []
    assert running.sim.tokens.grants["password"] == 1

    async def via_async() -> int:
        async with await hook.get_async_client() as c:
            return len(await c.list_exports())

    assert asyncio.run(via_async()) == 0
    monkeypatch.setenv(
        "AIRFLOW_CONN_OCP_PAT", json.dumps({"conn_type": "ocp", "host": running.url, "password": PAT})
    )
    with OcpHook("ocp_pat").get_client() as client:
        assert client.list_exports() == []
    monkeypatch.setenv(
        "AIRFLOW_CONN_OCP_BAD", json.dumps({"conn_type": "ocp", "host": running.url, "password": "nope-xyz"})
    )
    with OcpHook("ocp_bad").get_client() as client, pytest.raises(AuthError) as info:
        client.list_exports()
    assert "nope-xyz" not in str(info.value) and "nope-xyz" not in repr(OcpHook("ocp_bad"))


def test_retry_policy_extras_reach_both_clients_settings() -> None:
    extra = {"max_retry_after_s": "7.5", "max_listing_lag_s": 3, "max_attempts": 2, "max_total_s": 9}
    s = settings_from_connection(_conn(host="x", password="p", extra_dejson=extra))
    assert (s.retry.max_retry_after_s, s.retry.max_listing_lag_s) == (7.5, 3.0)
    assert (s.retry.max_attempts, s.retry.max_total_s) == (2, 9.0)
    # form fields may come prefixed, and empty ones mean "not set"
    prefixed = {"extra__ocp__max_retry_after_s": 1, "extra__ocp__max_listing_lag_s": ""}
    s = settings_from_connection(_conn(host="x", password="p", extra_dejson=prefixed))
    assert s.retry.max_retry_after_s == 1.0 and s.retry.max_listing_lag_s == 60.0
