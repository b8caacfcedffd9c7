"""The dev stack's REST client against a real HTTP server on loopback that answers as a busy SQLite-backed
api-server can: slowly, with a 5xx or a 409, sometimes after the backfill was committed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ocp_ingest_dev.stack import airflow_api
from ocp_ingest_dev.stack.airflow_api import AirflowApi

FROM, TO = "2026-11-20T09:00:00+00:00", "2026-11-20T10:00:00+00:00"


class FakeAirflow(BaseHTTPRequestHandler):
    """``script``: what each POST /api/v2/backfills does, in order: (answer, whether it commits first);
    answers: "ok", "slow" (200 after the client gave up), "500", "409"."""

    script: list[tuple[str, bool]] = []
    backfills: list[dict] = []
    posts = 0

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        if self.path == "/auth/token":
            return self._answer(201, {"access_token": "t"})
        cls = type(self)
        action, commit = cls.script[cls.posts]
        cls.posts += 1
        made = {"id": len(cls.backfills) + 1, "from_date": FROM, "to_date": TO, "completed_at": None}
        if commit:
            cls.backfills.append(made)
        if action == "slow":
            threading.Event().wait(1.0)  # longer than the client waits (time.sleep is patched out)
        status = {"ok": 200, "slow": 200, "500": 500, "409": 409}[action]
        return self._answer(status, made if status == 200 else {"detail": action})

    def do_GET(self) -> None:
        assert self.path.startswith("/api/v2/backfills")
        return self._answer(
            200, {"backfills": type(self).backfills, "total_entries": len(type(self).backfills)}
        )


@pytest.fixture
def airflow(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeAirflow]]:
    monkeypatch.setattr(airflow_api, "SLOW_WRITE_TIMEOUT_S", 0.3)
    monkeypatch.setattr(airflow_api.time, "sleep", lambda s: None)  # no pause between attempts
    handler = type("Handler", (FakeAirflow,), {"script": [], "backfills": [], "posts": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()


@pytest.mark.parametrize("first", ["slow", "500", "409"])
def test_a_backfill_committed_before_a_bad_answer_is_adopted_not_asked_again(airflow, first: str) -> None:
    airflow.script = [(first, True)]
    api = AirflowApi(airflow.url, "admin", "pw")  # type: ignore[attr-defined]
    made = api.create_backfill("dag", FROM, TO, {})
    assert made["id"] == 1 and airflow.posts == 1 and len(airflow.backfills) == 1


def test_a_backfill_not_committed_is_asked_again(airflow) -> None:
    airflow.script = [("500", False), ("slow", False), ("ok", True)]
    api = AirflowApi(airflow.url, "admin", "pw")  # type: ignore[attr-defined]
    assert api.create_backfill("dag", FROM, TO, {})["id"] == 1
    assert airflow.posts == 3 and len(airflow.backfills) == 1


def test_no_answer_on_every_attempt_is_an_error_not_a_backfill(airflow) -> None:
    airflow.script = [("slow", False)] * 3
    api = AirflowApi(airflow.url, "admin", "pw")  # type: ignore[attr-defined]
    with pytest.raises(TimeoutError, match="no answer"):
        api.create_backfill("dag", FROM, TO, {}, attempts=3)
    assert airflow.posts == 3 and airflow.backfills == []
