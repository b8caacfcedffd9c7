"""PAT and password-grant auth: expiry, refresh before expiry, re-login, bad credentials, no secret leaks."""

from __future__ import annotations

import asyncio

import pytest
from ocp_test_support import FAST_RETRY, PASSWORD, PAT, password_client, small_config

from ocp_ingest.ocp import AsyncOcpClient, AuthError, OcpClient, PasswordAuth, PatAuth, token_url_for
from ocp_ingest_dev.simulator import AuthSettings


class FakeClock:
    """The client's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pat_accepted_and_wrong_pat_is_a_typed_error_without_the_secret(running) -> None:
    with OcpClient(running.url, PatAuth(PAT), retry=FAST_RETRY) as c:
        assert c.list_exports() == []
    wrong = "wrong-pat-do-not-leak-42"
    auth = PatAuth(wrong)
    with OcpClient(running.url, auth, retry=FAST_RETRY) as c, pytest.raises(AuthError) as info:
        c.list_exports()
    assert info.value.status_code == 401
    assert wrong not in str(info.value) and wrong not in repr(auth) and wrong not in repr(c)


def test_wrong_password_is_a_typed_error_without_the_secret(running) -> None:
    secret = "hunter2-do-not-leak"
    with password_client(running.url, password=secret) as c, pytest.raises(AuthError) as info:
        c.list_exports()
    assert secret not in str(info.value) and secret not in repr(c._http.auth)
    assert "password" in str(info.value) and info.value.status_code == 401


def test_unknown_realm_is_an_auth_error(running) -> None:
    auth = PasswordAuth(token_url_for(running.url, "nope"), "sim-user", PASSWORD)
    with OcpClient(running.url, auth, retry=FAST_RETRY) as c, pytest.raises(AuthError):
        c.list_exports()


def test_token_refreshed_before_expiry_and_relogin_when_refresh_expired(make_sim) -> None:
    running = make_sim(small_config(auth=AuthSettings(access_lifetime_s=5, refresh_lifetime_s=20)))
    sim, clock = running.sim, FakeClock()
    with password_client(running.url, clock=clock) as c:
        c.list_exports()
        assert sim.tokens.grants == {"password": 1}
        # 4.5 s later the 5 s token is inside its renewal margin: refreshed *before* the server refuses it.
        clock.now += 4.5
        sim.clock.advance(4.5)
        c.list_exports()
        assert sim.tokens.grants == {"password": 1, "refresh_token": 1}
        assert sim.tokens.rejected["bearer"] == 0
        # 30 s later even the refresh token is gone: the client logs in again.
        clock.now += 30
        sim.clock.advance(30)
        c.list_exports()
        assert sim.tokens.grants == {"password": 2, "refresh_token": 1}
        assert sim.tokens.rejected["refresh_token"] == 0


def test_server_side_expiry_and_rejected_refresh_recover(make_sim) -> None:
    running = make_sim(small_config(auth=AuthSettings(access_lifetime_s=5, refresh_lifetime_s=20)))
    sim = running.sim
    with password_client(running.url) as c:
        c.list_exports()
        sim.clock.advance(6)  # the server's clock says the access token expired; the client's does not
        c.list_exports()  # 401 -> refresh -> replay
        assert sim.tokens.rejected["bearer"] == 1 and sim.tokens.grants["refresh_token"] == 1
        sim.tokens.revoke_all()  # refresh token rejected too -> full login
        c.list_exports()
        assert sim.tokens.rejected["refresh_token"] == 1 and sim.tokens.grants["password"] == 2


def test_async_client_with_password_grant(running) -> None:
    async def scenario() -> int:
        auth = PasswordAuth(token_url_for(running.url), "sim-user", PASSWORD)
        async with AsyncOcpClient(running.url, auth, retry=FAST_RETRY) as c:
            await c.list_exports()
            running.sim.tokens.revoke_all()
            return len(await c.list_exports())

    assert asyncio.run(scenario()) == 0
    assert running.sim.tokens.grants["password"] == 2
