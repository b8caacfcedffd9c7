"""The receiver process SIGKILLed with uploads in flight (not a graceful stop), then restarted.

Several uploads are half-sent when ``kill -9`` hits the real ``ocp-ingest receiver`` process. Afterwards:
landing holds only whole recordings, each with its sidecar, and only for pushes that were acknowledged; the
ledger has FILE_RECEIVED only for those. OCP redelivers what it got no answer for to the restarted receiver,
and the realtime batch stores every call once with its bytes.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ocp_ingest.config import Settings
from ocp_ingest.ledger import CallStatus, open_ledger
from ocp_ingest.ocp import wire
from ocp_ingest.realtime import RealtimeProcessor, list_arrivals
from ocp_ingest.receiver import auth as signing
from ocp_ingest.storage import StorageLayout
from ocp_ingest_dev.simulator import audio
from ocp_ingest_dev.simulator.calls import SimCall
from tests.receiver.conftest import SECRET


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ReceiverProcess:
    """``ocp-ingest receiver`` as its own process (the production entry point) on a fixed port."""

    def __init__(self, port: int, *args: str) -> None:
        self.port = port
        self.args = args
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "ocp_ingest.cli", "receiver", "--port", str(self.port), *self.args]

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "OCP_INGEST_RECEIVER_SECRET": SECRET}

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 180  # imports take seconds, far more on a loaded machine
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the receiver exited while starting"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("the receiver did not become healthy")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)


@pytest.fixture
def receiver_process(ingest_home: Path) -> Iterator[ReceiverProcess]:
    process = ReceiverProcess(_free_port())
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _push_audio(client: httpx.Client, url: str, call: SimCall, body: bytes) -> int:
    headers = signing.audio_headers(SECRET, call.recording_filename, hashlib.sha256(body).hexdigest())
    return client.put(
        f"{url}/v1/recordings/{call.recording_filename}", content=body, headers=headers
    ).status_code


def _push_events(client: httpx.Client, url: str, call: SimCall) -> None:
    body = wire.event_body(call.events())
    answer = client.post(f"{url}/v1/events", content=body, headers=signing.event_headers(SECRET, body))
    assert answer.status_code == 200, answer.text


def test_a_receiver_killed_mid_upload_keeps_only_acknowledged_whole_recordings(
    receiver_process: ReceiverProcess, calls: list[SimCall]
) -> None:
    with_audio = [c for c in calls if c.has_recording]
    assert len(with_audio) >= 4
    bodies = {c.dialog_id: audio.wav_bytes(c.dialog_id, max(c.duration_ms, 3000)) for c in with_audio}
    done, in_flight = with_audio[:2], with_audio[2:]
    acknowledged: set[str] = set()
    with httpx.Client(timeout=30) as client:
        for call in calls:
            _push_events(client, receiver_process.url, call)
        for call in done:
            assert _push_audio(client, receiver_process.url, call, bodies[call.dialog_id]) == 200
            acknowledged.add(call.dialog_id)

    half_sent = threading.Barrier(len(in_flight) + 1)
    outcomes: dict[str, str] = {}

    def slow_upload(call: SimCall) -> None:
        body = bodies[call.dialog_id]

        def halves() -> Iterator[bytes]:
            yield body[: len(body) // 2]
            half_sent.wait(timeout=30)
            time.sleep(5)  # killed meanwhile: the rest never reaches this receiver
            yield body[len(body) // 2 :]

        headers = signing.audio_headers(SECRET, call.recording_filename, hashlib.sha256(body).hexdigest())
        try:
            with httpx.Client(timeout=30) as client:
                answer = client.put(
                    f"{receiver_process.url}/v1/recordings/{call.recording_filename}",
                    content=halves(),
                    headers=headers,
                )
            outcomes[call.dialog_id] = str(answer.status_code)
        except httpx.HTTPError as exc:
            outcomes[call.dialog_id] = type(exc).__name__

    threads = [threading.Thread(target=slow_upload, args=(c,), daemon=True) for c in in_flight]
    for thread in threads:
        thread.start()
    half_sent.wait(timeout=30)
    time.sleep(0.5)  # the halves are in the receiver's hands
    receiver_process.kill()
    for thread in threads:
        thread.join(timeout=30)
    assert all(not o.startswith("2") for o in outcomes.values()), outcomes  # none was acknowledged

    settings = Settings.from_env()
    layout = StorageLayout.from_settings(settings)
    landed = {a.dialog_id for a in list_arrivals(layout, 100)}
    assert landed == acknowledged  # only whole, acknowledged recordings have a sidecar
    audio_files = [
        p for p in (Path(settings.landing_url.removeprefix("file://")) / "audio").rglob("*") if p.is_file()
    ]
    assert len([p for p in audio_files if not p.name.endswith(".json")]) == len(acknowledged), audio_files
    with open_ledger(settings) as ledger:
        for call in in_flight:
            record = ledger.get(call.dialog_id)
            assert record is not None and not record.file_received, call.dialog_id

    # OCP redelivers what it had no answer for; the restarted receiver takes it.
    receiver_process.start()
    with httpx.Client(timeout=30) as client:
        for call in in_flight:
            assert _push_audio(client, receiver_process.url, call, bodies[call.dialog_id]) == 200
    with open_ledger(settings) as ledger:
        summary = RealtimeProcessor(settings, ledger, layout).process(list_arrivals(layout, 100))
        assert summary.stored == len(with_audio), summary
        for call in with_audio:
            record = ledger.get(call.dialog_id)
            assert record is not None and record.call_status is CallStatus.COMPLETED
            assert record.sha256 == hashlib.sha256(bodies[call.dialog_id]).hexdigest()
