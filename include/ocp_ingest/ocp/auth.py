"""OCP authentication as httpx auth flows, one implementation for the sync and the async client.

* :class:`PatAuth`: a Personal Access Token in ``X-OCP-PERSONAL-ACCESS-TOKEN``.
* :class:`PasswordAuth`: Keycloak password grant; the access token is refreshed shortly before it expires,
  and the flow logs in again when the refresh token is expired or rejected. A 401 on an API call (token
  revoked, clocks apart) triggers one new token and one replay of the request.

Secrets are kept out of reprs, logs and exception messages.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Generator

import httpx

from ocp_ingest.ocp import wire
from ocp_ingest.ocp.client import parse_retry_after
from ocp_ingest.ocp.errors import AuthError, RateLimited, ServiceUnavailable


class PatAuth(httpx.Auth):
    """Personal Access Token authentication."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("an OCP personal access token is required")
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[wire.PAT_HEADER] = self._token
        yield request

    def __repr__(self) -> str:
        return "PatAuth(token=***)"


class PasswordAuth(httpx.Auth):
    """Keycloak password grant with refresh before expiry and re-login when the refresh token is gone."""

    def __init__(
        self,
        token_url: str,
        username: str,
        password: str,
        *,
        client_id: str = wire.DEFAULT_CLIENT_ID,
        refresh_margin_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (token_url and username and password):
            raise ValueError("token_url, username and password are required for the OCP password grant")
        self.token_url = token_url
        self.username = username
        self._password = password
        self._client_id = client_id
        self._margin = refresh_margin_s
        self._clock = clock
        self._access: str | None = None
        self._access_until = 0.0
        self._refresh: str | None = None
        self._refresh_until = 0.0
        # Observable for tests and metrics: how tokens were obtained.
        self.logins = 0
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"PasswordAuth(token_url={self.token_url!r}, username={self.username!r}, password=***)"

    # -- token bookkeeping (no I/O) --------------------------------------------------------------
    def _deadline(self, lifetime: float) -> float:
        # Renew a little before expiry; a fifth of the lifetime for short-lived test tokens.
        return self._clock() + lifetime - min(self._margin, lifetime / 5)

    def _store(self, response: httpx.Response) -> None:
        token = wire.TokenResponse.model_validate_json(response.content)
        self._access = token.access_token
        self._access_until = self._deadline(token.expires_in)
        if token.refresh_token:
            self._refresh = token.refresh_token
            self._refresh_until = self._deadline(token.refresh_expires_in or token.expires_in)

    def _token_request(self, form: dict[str, str]) -> httpx.Request:
        return httpx.Request("POST", self.token_url, data=form, headers={"Accept": "application/json"})

    def _is_token_request(self, request: httpx.Request) -> bool:
        return request.method == "POST" and str(request.url) == str(httpx.URL(self.token_url))

    @staticmethod
    def _raise_for_token_status(response: httpx.Response, grant: str) -> None:
        status = response.status_code
        # OCP's asked-for wait travels with the error: the client's retry loop honours it like any other.
        retry_after_s = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            raise RateLimited(
                f"OCP token endpoint rate-limited the {grant} grant (HTTP 429)",
                status_code=status,
                retry_after_s=retry_after_s,
            )
        if status >= 500:
            raise ServiceUnavailable(
                f"OCP token endpoint failed the {grant} grant (HTTP {status})",
                status_code=status,
                retry_after_s=retry_after_s,
            )
        raise AuthError(f"OCP token endpoint rejected the {grant} grant (HTTP {status})", status_code=status)

    def invalidate(self) -> None:
        """Forget the access token (the next request obtains a new one)."""
        self._access = None

    # -- the flow ---------------------------------------------------------------------------------
    def _obtain(self) -> Generator[httpx.Request, httpx.Response, None]:
        if self._refresh and self._clock() < self._refresh_until:
            response = yield self._token_request(wire.refresh_grant_form(self._refresh, self._client_id))
            if response.status_code == 200:
                self.refreshes += 1
                self._store(response)
                return
            if response.status_code not in (400, 401):
                self._raise_for_token_status(response, "refresh_token")
            # Refresh token rejected (expired or revoked server-side): fall back to a full login.
        self._refresh = None
        response = yield self._token_request(
            wire.password_grant_form(self.username, self._password, self._client_id)
        )
        if response.status_code != 200:
            self._raise_for_token_status(response, "password")
        self.logins += 1
        self._store(response)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._access is None or self._clock() >= self._access_until:
            yield from self._obtain()
        request.headers["Authorization"] = f"Bearer {self._access}"
        response = yield request
        if response.status_code == 401:
            self._access = None
            yield from self._obtain()
            request.headers["Authorization"] = f"Bearer {self._access}"
            yield request

    # Token responses must be read inside the flow; API responses must not be (downloads stream 1 GB).
    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            if self._is_token_request(outgoing):
                response.read()
            try:
                outgoing = flow.send(response)
            except StopIteration:
                break

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            if self._is_token_request(outgoing):
                await response.aread()
            try:
                outgoing = flow.send(response)
            except StopIteration:
                break


def token_url_for(auth_host: str, realm: str = wire.DEFAULT_REALM) -> str:
    """Token endpoint URL on ``auth_host`` (e.g. ``https://eu.ocp.ai``) for ``realm``."""
    return auth_host.rstrip("/") + wire.token_path(realm)
