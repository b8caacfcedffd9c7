"""The few calls of Airflow's public REST API (v2) the local stack needs.

A JWT from the simple auth manager, trigger a DAG run with a conf, read its state, wait for it.
"""

from __future__ import annotations

import contextlib
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

#: How long a call that writes Airflow's metadata may take: on SQLite each statement may wait out the
#: 30 s busy timeout the standalone stack sets.
SLOW_WRITE_TIMEOUT_S = 120.0


class AirflowApi:
    """Airflow's public REST API (v2) with a token from the simple auth manager."""

    def __init__(self, base_url: str, username: str, password: str, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)
        self._token: str | None = None

    @classmethod
    def for_standalone(cls, base_url: str, airflow_home: Path) -> AirflowApi:
        """The admin user ``airflow standalone`` generated (its password file in AIRFLOW_HOME)."""
        passwords = json.loads((airflow_home / "simple_auth_manager_passwords.json.generated").read_text())
        username = "admin" if "admin" in passwords else next(iter(passwords))
        return cls(base_url, username, passwords[username])

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            response = self._http.post("/auth/token", json=self._credentials)
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        response = self._http.post(
            f"/api/v2/dags/{dag_id}/dagRuns",
            json={"logical_date": None, "conf": conf},
            headers=self._headers(),
        )
        response.raise_for_status()
        return str(response.json()["dag_run_id"])

    def create_backfill(
        self,
        dag_id: str,
        from_date: str,
        to_date: str,
        conf: dict[str, Any],
        max_active_runs: int = 1,
        attempts: int = 5,
    ) -> dict[str, Any]:
        """Airflow's own Backfill of ``dag_id`` over [from_date, to_date]; the backfill's record.

        On SQLite the api-server can answer 5xx when the metadata DB is locked, sometimes after the backfill
        was committed, or take longer than the client waits (each statement may wait out the 30 s busy
        timeout). After a 5xx, a 409 or no answer, an active backfill over the same dates is the one asked
        for; else ask again.
        """
        body = {
            "dag_id": dag_id,
            "from_date": from_date,
            "to_date": to_date,
            "dag_run_conf": conf,
            "max_active_runs": max_active_runs,
        }
        for attempt in range(1, attempts + 1):
            response: httpx.Response | None = None
            with contextlib.suppress(httpx.TimeoutException):  # no answer: the outcome is unknown
                response = self._http.post(
                    "/api/v2/backfills", json=body, headers=self._headers(), timeout=SLOW_WRITE_TIMEOUT_S
                )
            if response is None or response.status_code >= 500 or response.status_code == 409:
                made = self._active_backfill(dag_id, from_date, to_date)
                if made is not None:
                    return made
                if attempt < attempts:
                    time.sleep(2.0 * attempt)
                    continue
                if response is None:
                    raise TimeoutError(f"POST /api/v2/backfills: no answer in {SLOW_WRITE_TIMEOUT_S:.0f} s")
            response.raise_for_status()
            return dict(response.json())
        raise ValueError("attempts must be at least 1")

    def _active_backfill(self, dag_id: str, from_date: str, to_date: str) -> dict[str, Any] | None:
        try:
            response = self._http.get(
                "/api/v2/backfills",
                params={"dag_id": dag_id},
                headers=self._headers(),
                timeout=SLOW_WRITE_TIMEOUT_S,
            )
        except httpx.TimeoutException:
            return None
        response.raise_for_status()
        wanted = (datetime.fromisoformat(from_date), datetime.fromisoformat(to_date))
        for backfill in response.json()["backfills"]:
            dates = tuple(datetime.fromisoformat(backfill[k]) for k in ("from_date", "to_date"))
            if backfill["completed_at"] is None and dates == wanted:
                return dict(backfill)
        return None

    def run_state(self, dag_id: str, run_id: str) -> str:
        response = self._http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", headers=self._headers())
        response.raise_for_status()
        return str(response.json()["state"])

    def wait(self, dag_id: str, run_id: str, timeout_s: float = 600.0, poll_s: float = 2.0) -> str:
        deadline = time.monotonic() + timeout_s
        state = self.run_state(dag_id, run_id)
        while state not in ("success", "failed") and time.monotonic() < deadline:
            time.sleep(poll_s)
            state = self.run_state(dag_id, run_id)
        return state

    def dag_runs(self, dag_id: str, page: int = 100) -> list[dict[str, Any]]:
        """Every run of ``dag_id``, page by page."""
        found: list[dict[str, Any]] = []
        while True:
            response = self._http.get(
                f"/api/v2/dags/{dag_id}/dagRuns",
                params={"limit": page, "offset": len(found)},
                headers=self._headers(),
            )
            response.raise_for_status()
            body = response.json()
            found += body["dag_runs"]
            if not body["dag_runs"] or len(found) >= body["total_entries"]:
                return found

    def task_instances(self, dag_id: str = "~", page: int = 100) -> list[dict[str, Any]]:
        """Every task instance of ``dag_id`` (``~``: of every DAG), across all runs, page by page."""
        found: list[dict[str, Any]] = []
        while True:
            response = self._http.get(
                f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances",
                params={"limit": page, "offset": len(found)},
                headers=self._headers(),
            )
            response.raise_for_status()
            body = response.json()
            found += body["task_instances"]
            if not body["task_instances"] or len(found) >= body["total_entries"]:
                return found

    def return_value(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """A (non-mapped) task's return value in one run, as stored; None when it returned none."""
        response = self._http.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            headers=self._headers(),
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()["value"]

    def run_url(self, dag_id: str, run_id: str) -> str:
        return f"{self.base_url}/dags/{dag_id}/runs/{run_id}"

    def close(self) -> None:
        self._http.close()
