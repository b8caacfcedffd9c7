"""The receiver's logs: every line one JSON object (uvicorn's own lines and tracebacks too), nothing echoed
unbounded."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ocp_ingest.receiver import auth as signing
from ocp_ingest.receiver.server import configure_logging

LONG = "A" * 20_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _send_raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
        return answer


def test_the_receiver_process_logs_only_json_lines(ingest_home: Path, tmp_path: Path) -> None:
    port = _free_port()
    secret = signing.new_secret()
    env = {**os.environ, "OCP_INGEST_HOME": str(ingest_home), "OCP_INGEST_RECEIVER_SECRET": secret}
    stderr_path = tmp_path / "receiver.log"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ocp_ingest.cli", "receiver", "--port", str(port)],
            env=env,
            stdout=stderr,
            stderr=stderr,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, stderr_path.read_text()[-2000:]
            time.sleep(0.2)
        assert _send_raw(port, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")
        big_head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000
        assert _send_raw(port, big_head).startswith(b"HTTP/1.1 431")
        assert httpx.get(f"{url}/{LONG}").status_code == 404
        assert httpx.put(f"{url}/v1/recordings/{LONG}.wav", content=b"RIFF").status_code == 400
        assert httpx.post(f"{url}/v1/events", content=b"[]", headers={"webhook-id": LONG}).status_code == 401
    finally:
        proc.terminate()  # the process this test started, by its handle
        proc.wait(timeout=30)
    lines = [line for line in stderr_path.read_text().splitlines() if line.strip()]
    assert lines
    for line in lines:
        entry = json.loads(line)  # every line, uvicorn's start/stop and warnings included
        assert {"ts", "level", "logger", "message"} <= set(entry)
        assert LONG not in line and len(line) < 5000
    messages = " ".join(json.loads(line)["message"] for line in lines)
    assert "Invalid HTTP request received." in messages and "request head larger than" in messages


@pytest.fixture
def json_stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """configure_logging() writing to a buffer; the process's logging and hooks restored afterwards."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    uvicorn_error = logging.getLogger("uvicorn.error")
    monkeypatch.setattr(uvicorn_error, "handlers", [logging.StreamHandler(stream)])  # uvicorn's plain text
    configure_logging("INFO")
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.captureWarnings(False)


def test_uvicorn_tracebacks_and_thread_crashes_are_json(json_stderr: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    thread = threading.Thread(target=lambda: 1 / 0, name="crashing")
    thread.start()
    thread.join()
    logging.getLogger("ocp_ingest.receiver").warning("long: %s", LONG)
    lines = [json.loads(line) for line in json_stderr.getvalue().splitlines()]
    asgi, crash, long = lines
    assert asgi["logger"] == "uvicorn.error" and "ValueError: boom" in asgi["exc"]
    assert crash["level"] == "error" and "crashing" in crash["message"]
    assert "ZeroDivisionError" in crash["exc"]
    assert len(long["message"]) < 2100
