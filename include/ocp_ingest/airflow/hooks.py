"""``OcpHook``: the OCP clients built from an Airflow Connection (the only module here importing Airflow).

Connection ``ocp_default`` (conn_type ``ocp``):

* ``host``: the tenant API base, e.g. ``https://eu.ocp.ai`` (scheme from ``schema`` if the host has none,
  default https; ``port`` honoured). Extra ``base_url`` overrides all of it.
* PAT: extra ``personal_access_token`` (the form's field; ``pat`` also read), or ``password`` with an
  empty ``login``.
* Password grant: ``login`` + ``password``; extras ``realm`` (default ``ocp``), ``auth_host`` (default the
  API host) or a full ``token_url``; ``client_id`` (default ``ocp``).
* Optional extras: ``timeout`` (seconds), ``verify`` (bool or CA bundle path), and the client's
  :class:`RetryPolicy`: ``max_attempts``, ``max_total_s``, ``max_retry_after_s`` (longest ``Retry-After``
  waited inside one request; a longer one goes to the task, which defers) and ``max_listing_lag_s`` (how
  long a COMPLETED export's listing may still answer "not ready").

The connection type and its form are declared in :mod:`ocp_ingest.airflow.provider`.

Secrets stay inside the auth objects (masked reprs); nothing here logs or returns them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from airflow.sdk import BaseHook

from ocp_ingest.ocp import wire
from ocp_ingest.ocp.auth import PasswordAuth, PatAuth, token_url_for
from ocp_ingest.ocp.client import AsyncOcpClient, OcpClient, RetryPolicy


@dataclass(frozen=True)
class OcpConnectionSettings:
    """What a Connection resolves to; ``auth`` masks its secret in repr."""

    base_url: str
    auth: httpx.Auth
    timeout: float = 60.0
    verify: bool | str = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def _base_url(host: str, schema: str | None, port: int | None) -> str:
    if "://" in host:
        return host.rstrip("/")
    scheme = schema if schema in ("http", "https") else "https"
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def settings_from_connection(conn: Any) -> OcpConnectionSettings:
    """Resolve a Connection (host, login, password, schema, port, extra_dejson) to client settings."""
    raw: dict[str, Any] = dict(getattr(conn, "extra_dejson", None) or {})
    # Form fields may arrive prefixed (``extra__ocp__pat``) or plain; empty form fields mean "not set".
    prefix = f"extra__{OcpHook.conn_type}__"
    extra = {k.removeprefix(prefix): v for k, v in raw.items() if v not in ("", None)}
    if extra.get("base_url"):
        base_url = str(extra["base_url"]).rstrip("/")
    elif conn.host:
        base_url = _base_url(conn.host, conn.schema, conn.port)
    else:
        raise ValueError(f"connection {conn.conn_id!r}: set host (the OCP API base URL) or extra base_url")
    pat = extra.get("personal_access_token") or extra.get("pat")
    pat = pat or (conn.password if not conn.login else None)
    auth: httpx.Auth
    if pat:
        auth = PatAuth(pat)
    elif conn.login and conn.password:
        token_url = extra.get("token_url") or token_url_for(
            extra.get("auth_host") or base_url, extra.get("realm") or wire.DEFAULT_REALM
        )
        auth = PasswordAuth(
            token_url, conn.login, conn.password, client_id=extra.get("client_id") or wire.DEFAULT_CLIENT_ID
        )
    else:
        raise ValueError(
            f"connection {conn.conn_id!r}: give a PAT (password without login, or extra 'pat') "
            "or login + password for the password grant"
        )
    verify = extra.get("verify", True)
    defaults = RetryPolicy()
    retry = RetryPolicy(
        max_attempts=int(extra.get("max_attempts", defaults.max_attempts)),
        max_total_s=float(extra.get("max_total_s", defaults.max_total_s)),
        max_retry_after_s=float(extra.get("max_retry_after_s", defaults.max_retry_after_s)),
        max_listing_lag_s=float(extra.get("max_listing_lag_s", defaults.max_listing_lag_s)),
    )
    return OcpConnectionSettings(base_url, auth, float(extra.get("timeout", 60.0)), verify, retry)


class OcpHook(BaseHook):
    """Builds :class:`OcpClient` / :class:`AsyncOcpClient` from an Airflow Connection."""

    conn_name_attr = "ocp_conn_id"
    default_conn_name = "ocp_default"
    conn_type = "ocp"
    hook_name = "Omilia OCP"

    def __init__(self, ocp_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.ocp_conn_id = ocp_conn_id

    def __repr__(self) -> str:
        return f"OcpHook(ocp_conn_id={self.ocp_conn_id!r})"

    def get_settings(self) -> OcpConnectionSettings:
        return settings_from_connection(self.get_connection(self.ocp_conn_id))

    def get_conn(self) -> OcpClient:
        return self.get_client()

    def get_client(self) -> OcpClient:
        """Sync client for tasks (close it, or use it as a context manager)."""
        s = self.get_settings()
        return OcpClient(s.base_url, s.auth, retry=s.retry, timeout=s.timeout, verify=s.verify)

    async def get_async_client(self) -> AsyncOcpClient:
        """Async client for triggers; the Connection is fetched without blocking the event loop."""
        s = settings_from_connection(await self.aget_connection(self.ocp_conn_id))
        return AsyncOcpClient(s.base_url, s.auth, retry=s.retry, timeout=s.timeout, verify=s.verify)
