"""Resource exhaustion against a real uvicorn server on loopback, with real sockets.

Held-open uploads, slow uploads, slowloris request heads, huge and numerous headers: each is bounded
(431, 408, 503 with Retry-After) while ``/healthz`` and ``/v1/events`` keep answering fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import select
import socket
import time
from collections.abc import Iterator

import pytest

from ocp_ingest.ocp import wire
from ocp_ingest.receiver import auth as signing
from ocp_ingest.receiver.guard import ReceiverLimits
from ocp_ingest_dev.simulator import audio
from tests.receiver.conftest import SECRET, Receiver

FAST_S = 1.0  # what "answering fast" means on a loaded 2-core machine


@pytest.fixture
def limits() -> ReceiverLimits:
    # Production sizes and slots; shorter clocks so the test does not wait for the production timeouts.
    return ReceiverLimits(head_timeout_s=1.5, body_idle_timeout_s=3.0, upload_grace_s=2.0)


@pytest.fixture(autouse=True)
def _warm(receiver: Receiver, calls) -> None:
    """One push first: the first audit flush of a process imports its Parquet writer, a one-time cost."""
    assert receiver.post_events(calls[5].events()).status_code == 200


def _address(receiver: Receiver) -> tuple[str, int]:
    host, port = receiver.url.removeprefix("http://").split(":")
    return host, int(port)


def _upload_head(receiver: Receiver, call, wav: bytes) -> bytes:
    headers = signing.audio_headers(SECRET, call.recording_filename, hashlib.sha256(wav).hexdigest())
    host, _ = _address(receiver)
    return (
        f"PUT {wire.push_recording_path(call.recording_filename)} HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Length: {len(wav)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    ).encode()


def _status(sock: socket.socket, timeout: float) -> int | None:
    """The status of the answer on ``sock`` (None if the server closed without one)."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    match = re.match(rb"HTTP/1\.1 (\d{3})", data)
    return int(match.group(1)) if match else None


def _answer(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


@contextlib.contextmanager
def _sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def _assert_still_answering(receiver: Receiver, call) -> None:
    started = time.monotonic()
    health = receiver.client.get(f"{receiver.url}/healthz", timeout=5)
    assert health.status_code == 200 and time.monotonic() - started < FAST_S
    started = time.monotonic()
    events = receiver.post_events(call.events())
    assert events.status_code == 200, events.text
    assert time.monotonic() - started < FAST_S


def _in_flight(receiver: Receiver) -> float:
    text = receiver.client.get(f"{receiver.url}/metrics").text
    found = re.search(r"^ocp_receiver_uploads_in_flight (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_held_open_uploads_take_only_their_slots(receiver: Receiver, calls, limits: ReceiverLimits) -> None:
    """45 uploads held open (the issue's case): the slots fill, the rest get 503, health and events answer."""
    call = calls[0]
    wav = audio.wav_bytes(call.dialog_id, 60_000)
    head = _upload_head(receiver, call, wav)
    with _sockets() as held:
        for _ in range(45):
            sock = socket.create_connection(_address(receiver))
            sock.sendall(head + wav[:4096])  # a real audio start, then silence
            held.append(sock)
        deadline = time.monotonic() + 10
        while _in_flight(receiver) < limits.max_uploads and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _in_flight(receiver) == limits.max_uploads
        refused = [_answer(sock, 2) for sock in held[limits.max_uploads :]]
        assert all(a.startswith(b"HTTP/1.1 503") for a in refused), refused[:1]
        assert all(b"retry-after: 5" in a.lower() for a in refused)
        _assert_still_answering(receiver, calls[1])
        # One more upload while the slots are full: refused at once, before its body is read.
        extra = receiver.put_audio(calls[2])
        assert extra.status_code == 503 and extra.headers["retry-after"] == "5"
        # The held uploads are cut when they stay silent; nothing of them is kept.
        cut = [_status(sock, limits.body_idle_timeout_s + 5) for sock in held[: limits.max_uploads]]
        assert set(cut) == {408}, cut
    assert receiver.landing_files() == []
    assert receiver.put_audio(calls[2]).json()["status"] == "received"


def test_an_upload_slower_than_the_minimum_rate_is_cut(receiver: Receiver, calls, limits) -> None:
    call = calls[0]
    wav = audio.wav_bytes(call.dialog_id, 60_000)
    with _sockets() as opened:
        sock = socket.create_connection(_address(receiver))
        opened.append(sock)
        sock.sendall(_upload_head(receiver, call, wav) + wav[:64])
        started, sent, status = time.monotonic(), 64, None
        sock.setblocking(False)
        while time.monotonic() - started < limits.upload_grace_s + 6:
            with contextlib.suppress(BlockingIOError):  # a trickle, always inside the idle timeout
                sock.send(wav[sent : sent + 100])
                sent += 100
            with contextlib.suppress(BlockingIOError):
                if data := sock.recv(4096):
                    status = int(data[9:12])
                    break
            time.sleep(0.2)
        assert status == 408
        assert time.monotonic() - started < limits.upload_grace_s + 3
    assert receiver.landing_files() == [] and receiver.ledger.get(call.dialog_id) is None


def test_slowloris_request_heads_are_closed_and_do_not_starve(
    receiver: Receiver, calls, limits: ReceiverLimits
) -> None:
    with _sockets() as opened:
        for index in range(100):
            sock = socket.create_connection(_address(receiver))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" if index % 2 else b"")
            opened.append(sock)
        _assert_still_answering(receiver, calls[0])
        trickler = opened[1]
        for _ in range(5):  # bytes keep coming, but the head is never complete
            trickler.sendall(b"X-A: b\r\n")
            time.sleep(0.25)
        statuses = [_status(sock, limits.head_timeout_s + 3) for sock in opened]
        assert all(s == 408 for s in statuses[1::2]), statuses[1::2]  # a partial head: 408, closed
        assert all(s is None for s in statuses[0::2])  # an idle connection: closed quietly
        for sock in opened:  # and every one of them is closed by the server
            assert sock.recv(1) == b""


def test_a_slow_second_head_on_a_kept_alive_connection_is_408(receiver: Receiver, limits) -> None:
    with socket.create_connection(_address(receiver)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        first = b""
        while not first.endswith(b"}"):
            first += sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        with contextlib.suppress(OSError):
            for _ in range(int(limits.head_timeout_s / 0.25) + 8):
                if select.select([sock], [], [], 0)[0]:
                    break  # the answer came: stop sending, so no reset can overtake it
                sock.sendall(b"X-A: b\r\n")
                time.sleep(0.25)
        assert _status(sock, 3) == 408
        assert time.monotonic() - started < limits.head_timeout_s + 3


@pytest.mark.parametrize("size", [100 * 1024, 16 * 1024 * 1024])
def test_huge_request_heads_are_431_and_not_buffered(receiver: Receiver, calls, size: int) -> None:
    def rss_mib() -> float:
        with open("/proc/self/status") as status:  # the server runs in this process
            return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1)) / 1024

    before = rss_mib()
    with _sockets() as opened:
        sock = socket.create_connection(_address(receiver))
        opened.append(sock)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent, filler = 0, b"a" * 65536
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < size:
                sent += sock.send(filler)
        status = _status(sock, 5)
        # A small head is read whole before the answer; a huge one may have its answer overtaken by
        # the reset of the bytes still in flight. Either way the server stopped reading at the bound.
        assert status == 431 or (size > 1024 * 1024 and status is None)
    assert rss_mib() - before < 50
    _assert_still_answering(receiver, calls[0])


def test_too_many_headers_are_431(receiver: Receiver, calls) -> None:
    many = {f"x-h{i}": "v" for i in range(150)}
    response = receiver.client.get(f"{receiver.url}/healthz", headers=many)
    assert response.status_code == 431 and "headers" in response.json()["error"]
    body = calls[0].dialog_start().to_json()
    signed = {**signing.event_headers(SECRET, body), **many}
    assert receiver.client.post(f"{receiver.url}/v1/events", content=body, headers=signed).status_code == 431
    assert receiver.ledger.get(calls[0].dialog_id) is None
    assert receiver.client.get(f"{receiver.url}/healthz", headers={"x-one": "1"}).status_code == 200
