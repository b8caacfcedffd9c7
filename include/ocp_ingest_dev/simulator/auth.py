"""OCP-like authentication: PATs and a Keycloak-style password grant with short-lived tokens."""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field

from ocp_ingest_dev.simulator.clock import SimClock

#: The simulator's own PAT (a credential of the test double, not of any real system); the local stack,
#: the demo, the benchmarks and the tests reach the simulator with it.
SIMULATOR_PAT = "sim-pat-0123456789"


@dataclass
class AuthSettings:
    pats: tuple[str, ...] = (SIMULATOR_PAT,)
    users: dict[str, str] = field(default_factory=lambda: {"sim-user": "sim-password"})
    realms: tuple[str, ...] = ("master", "ocp")
    access_lifetime_s: float = 300.0
    refresh_lifetime_s: float = 1800.0
    required: bool = True


class TokenIssuer:
    """Issues and checks tokens by the simulator clock; counts grants so tests can see refreshes."""

    def __init__(self, settings: AuthSettings, clock: SimClock) -> None:
        self.settings = settings
        self.clock = clock
        self._access: dict[str, float] = {}
        self._refresh: dict[str, float] = {}
        self._lock = threading.Lock()
        self.grants: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()

    def _issue(self) -> dict[str, object]:
        now = self.clock.now()
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self._access[access] = now + self.settings.access_lifetime_s
        self._refresh[refresh] = now + self.settings.refresh_lifetime_s
        return {
            "access_token": access,
            "expires_in": self.settings.access_lifetime_s,
            "refresh_token": refresh,
            "refresh_expires_in": self.settings.refresh_lifetime_s,
            "token_type": "Bearer",
        }

    def grant(self, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        """Answer a token request: (HTTP status, JSON body) the way Keycloak does."""
        with self._lock:
            grant_type = form.get("grant_type", "")
            if form.get("client_id") != "ocp":
                return 401, {"error": "invalid_client", "error_description": "Invalid client credentials"}
            if grant_type == "password":
                user, password = form.get("username", ""), form.get("password", "")
                expected = self.settings.users.get(user)
                if expected is None or not secrets.compare_digest(expected.encode(), password.encode()):
                    self.rejected["password"] += 1
                    return 401, {"error": "invalid_grant", "error_description": "Invalid user credentials"}
                self.grants["password"] += 1
                return 200, self._issue()
            if grant_type == "refresh_token":
                token = form.get("refresh_token", "")
                until = self._refresh.pop(token, None)
                if until is None or self.clock.now() >= until:
                    self.rejected["refresh_token"] += 1
                    return 400, {"error": "invalid_grant", "error_description": "Token is not active"}
                self.grants["refresh_token"] += 1
                return 200, self._issue()
            return 400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant type"}

    def check(self, pat: str | None, authorization: str | None) -> bool:
        """True if the request carries a valid PAT or an unexpired bearer token."""
        if not self.settings.required:
            return True
        if pat:
            return any(secrets.compare_digest(pat.encode(), p.encode()) for p in self.settings.pats)
        if authorization and authorization.startswith("Bearer "):
            until = self._access.get(authorization.removeprefix("Bearer "))
            ok = until is not None and self.clock.now() < until
            if not ok:
                self.rejected["bearer"] += 1
            return ok
        return False

    def revoke_all(self) -> None:
        """Forget every token (as a restarted Keycloak would)."""
        with self._lock:
            self._access.clear()
            self._refresh.clear()
