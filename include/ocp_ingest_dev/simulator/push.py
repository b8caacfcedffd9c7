"""Pushing calls to the receiver the way OCP's streaming export would, with configurable faults.

Fault decisions are drawn from the seed before anything is sent, so the ground truth knows the plan; the
outcome of each HTTP push (status or error) is recorded next to it. A receiver that is not there simply
makes pushes fail, which is counted, not raised.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import httpx

from ocp_ingest.ocp import wire
from ocp_ingest.receiver import auth as signing
from ocp_ingest_dev.simulator import audio
from ocp_ingest_dev.simulator.calls import SimCall

log = logging.getLogger(__name__)


@dataclass
class PushFaults:
    """Shares (0..1) of calls affected by each fault."""

    audio_drop_share: float = 0.10
    duplicate_share: float = 0.02
    out_of_order_share: float = 0.02
    delay_share: float = 0.02
    delay_s: float = 5.0
    truncate_share: float = 0.01
    corrupt_share: float = 0.01
    lost_dialog_end_share: float = 0.01
    reset_share: float = 0.01  # connection reset mid-upload (the audio never arrives whole)

    @classmethod
    def none(cls) -> PushFaults:
        return cls(0, 0, 0, 0, 0, 0, 0, 0, 0)


@dataclass
class PushPlan:
    """What will happen to one call's pushes (decided up front) and what did happen."""

    dialog_id: str
    audio: str  # pushed | dropped | corrupted | truncated | reset | none (no recording)
    duplicated: bool = False
    out_of_order: bool = False
    delayed_s: float = 0.0
    dialog_end_lost: bool = False
    events_status: list[int | str] = field(default_factory=list)
    audio_status: list[int | str] = field(default_factory=list)
    pushed_sha256: str | None = None  # SHA-256 of the bytes actually sent (differs if corrupted/truncated)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def plan_pushes(calls: list[SimCall], faults: PushFaults, seed: int) -> dict[str, PushPlan]:
    """Draw every fault for every call from the seed (same seed, same plan)."""
    rng = random.Random(seed ^ 0x9054)
    plans = {}
    for call in calls:
        roll = rng.random()
        outcome = "none"
        if call.has_recording:
            outcome = "pushed"
            edges = [
                ("dropped", faults.audio_drop_share),
                ("truncated", faults.truncate_share),
                ("corrupted", faults.corrupt_share),
                ("reset", faults.reset_share),
            ]
            acc = 0.0
            for name, share in edges:
                acc += share
                if roll < acc:
                    outcome = name
                    break
        plans[call.dialog_id] = PushPlan(
            dialog_id=call.dialog_id,
            audio=outcome,
            duplicated=rng.random() < faults.duplicate_share,
            out_of_order=rng.random() < faults.out_of_order_share,
            delayed_s=faults.delay_s if rng.random() < faults.delay_share else 0.0,
            dialog_end_lost=rng.random() < faults.lost_dialog_end_share,
        )
    return plans


def _audio_body(call: SimCall, outcome: str) -> Iterator[bytes]:
    chunks = audio.iter_wav(call.dialog_id, call.duration_ms)
    if outcome == "corrupted":
        first = next(chunks)
        # A mangled RIFF header: the checksum matches what was sent, but the audio cannot be decoded.
        yield b"\0" * 12 + first[12:]
        yield from chunks
    elif outcome == "truncated":
        limit = max(64, call.recording_size // 2)
        sent = 0
        for chunk in chunks:
            piece = chunk[: limit - sent]
            sent += len(piece)
            yield piece
            if sent >= limit:
                return
    else:
        yield from chunks


class _ResetMidUpload(ConnectionResetError):
    pass


def _resetting(body: Iterator[bytes], after: int) -> Iterator[bytes]:
    sent = 0
    for chunk in body:
        if sent + len(chunk) >= after:
            yield chunk[: max(0, after - sent)]
            raise _ResetMidUpload("simulated connection reset mid-upload")
        sent += len(chunk)
        yield chunk


@dataclass
class Pusher:
    """Sends events and audio to ``push_url`` signed with ``signing_secret`` (or a shared secret)."""

    push_url: str
    signing_secret: str | None = None
    shared_secret: str | None = None
    timeout_s: float = 60.0
    concurrency: int = 4

    def __post_init__(self) -> None:
        self._http = httpx.Client(
            base_url=self.push_url.rstrip("/"),
            timeout=self.timeout_s,
            limits=httpx.Limits(max_connections=self.concurrency * 2),
        )

    def close(self) -> None:
        self._http.close()

    def _auth(
        self,
        headers: dict[str, str],
        *,
        body: bytes | None = None,
        sha256hex: str | None = None,
        filename: str = "",
    ) -> None:
        if self.signing_secret:
            if sha256hex is not None:
                headers.update(signing.audio_headers(self.signing_secret, filename, sha256hex))
            else:
                headers.update(signing.event_headers(self.signing_secret, body or b""))
        if self.shared_secret:
            headers[signing.SHARED_SECRET_HEADER] = self.shared_secret

    def push_events(self, events: list[wire.CdrEvent]) -> int | str:
        body = wire.event_body(events)
        headers = {"content-type": "application/json"}
        self._auth(headers, body=body)
        try:
            return self._http.post(wire.PUSH_EVENTS_PATH, content=body, headers=headers).status_code
        except httpx.HTTPError as exc:
            return type(exc).__name__

    def push_audio(self, call: SimCall, outcome: str) -> tuple[int | str, str]:
        digest, size = hashlib.sha256(), 0
        for chunk in _audio_body(call, outcome):
            digest.update(chunk)
            size += len(chunk)
        sha = digest.hexdigest()
        headers = {"content-type": wire.AUDIO_CONTENT_TYPE, "content-length": str(size)}
        self._auth(headers, sha256hex=sha, filename=call.recording_filename)
        body = _audio_body(call, outcome)
        if outcome == "reset":
            body = _resetting(body, size // 2)
        try:
            response = self._http.put(
                wire.push_recording_path(call.recording_filename), content=body, headers=headers
            )
            return response.status_code, sha
        except (httpx.HTTPError, _ResetMidUpload) as exc:
            return type(exc).__name__, sha

    def push_call(self, call: SimCall, plan: PushPlan) -> None:
        """Events first (possibly reordered, duplicated, without dialog_end), then the audio."""
        events = [
            e
            for e in call.events()
            if not (plan.dialog_end_lost and e.message_type is wire.MessageType.DIALOG_END)
        ]
        # Out of order: one push per event, newest first; otherwise one batch in order.
        batches = [[e] for e in reversed(events)] if plan.out_of_order else [events]
        rounds = 2 if plan.duplicated else 1
        for _ in range(rounds):
            for batch in batches:
                plan.events_status.append(self.push_events(batch))
        if plan.audio in ("none", "dropped"):
            return
        if plan.delayed_s:
            time.sleep(plan.delayed_s)
        for _ in range(rounds):
            status, plan.pushed_sha256 = self.push_audio(call, plan.audio)
            plan.audio_status.append(status)


def push_calls(
    calls: list[SimCall],
    plans: dict[str, PushPlan],
    pusher: Pusher,
    *,
    rate_per_s: float | None = None,
    stop: threading.Event | None = None,
) -> dict[str, PushPlan]:
    """Push every call (paced at ``rate_per_s`` calls/s if given) with ``pusher.concurrency`` workers."""
    stop = stop or threading.Event()
    queue: list[tuple[float, int]] = []
    started = time.monotonic()
    for index, _call in enumerate(calls):
        heapq.heappush(queue, (started + (index / rate_per_s if rate_per_s else 0.0), index))

    def one(index: int) -> None:
        call = calls[index]
        try:
            pusher.push_call(call, plans[call.dialog_id])
        except Exception:  # one bad push must not stop the others; the plan shows what was sent
            log.exception("push of call %s failed", call.dialog_id)

    with ThreadPoolExecutor(max_workers=pusher.concurrency, thread_name_prefix="ocp-push") as pool:
        while queue and not stop.is_set():
            due, index = heapq.heappop(queue)
            wait = due - time.monotonic()
            if wait > 0 and stop.wait(wait):
                break
            pool.submit(one, index)
    return plans
