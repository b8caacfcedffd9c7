"""Simulator essentials: WAV audio, pushes signed the receiver's way with faults, ground truth, CLI."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import threading
import time
import wave
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ocp_ingest.ocp import wire
from ocp_ingest.receiver import auth as signing
from ocp_ingest_dev.simulator import Simulator, SimulatorConfig, audio, ground_truth
from ocp_ingest_dev.simulator.cli import add_cli, config_from_args
from ocp_ingest_dev.simulator.push import Pusher, PushFaults, plan_pushes, push_calls
from ocp_ingest_dev.simulator.server import start_asgi
from tests.sim_support import small_sim_config

SECRET = "push-secret"


def test_wav_is_real_pcm_and_differs_per_call() -> None:
    a, b = "A" * 32, "B" * 32
    data = audio.wav_bytes(a, 2500)
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 8000, 20000)
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert samples.std() > 1000  # not silence
    assert len(data) == audio.wav_size(a, 2500)
    assert audio.wav_bytes(b, 2500)[200:] != data[200:]
    assert b"".join(audio.iter_wav(a, 2500, start=1000, end=30001, chunk_size=4096)) == data[1000:30001]
    assert audio.wav_size(a, 60_000) / 1e6 == pytest_approx(0.96)


def pytest_approx(value: float) -> object:
    import pytest

    return pytest.approx(value, rel=0.01)


class Receiver:
    """A minimal receiver that verifies signatures the way issue 4's receiver must."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.audio: dict[str, str] = {}
        self.rejected = 0
        self.lock = threading.Lock()

    def app(self) -> Starlette:
        async def events(request: Request) -> JSONResponse:
            body = await request.body()
            try:
                signing.verify_body(SECRET, request.headers, body)
            except signing.SignatureError:
                self.rejected += 1
                return JSONResponse({"error": "bad signature"}, 401)
            with self.lock:
                self.events += wire.parse_event_body(body)
            return JSONResponse({"accepted": True}, 202)

        async def recording(request: Request) -> JSONResponse:
            try:
                _, claimed = signing.verify_digest(SECRET, request.headers, request.path_params["name"])
            except signing.SignatureError:
                self.rejected += 1
                return JSONResponse({"error": "bad signature"}, 401)
            digest = hashlib.sha256()
            async for chunk in request.stream():
                digest.update(chunk)
            if digest.hexdigest() != claimed:
                return JSONResponse({"error": "checksum"}, 400)
            with self.lock:
                self.audio[request.path_params["name"]] = claimed
            return JSONResponse({"stored": True}, 201)

        return Starlette(
            routes=[
                Route(wire.PUSH_EVENTS_PATH, events, methods=["POST"]),
                Route(wire.PUSH_RECORDINGS_PREFIX + "{name}", recording, methods=["PUT"]),
            ]
        )


def test_push_with_faults_matches_ground_truth(tmp_path: Path) -> None:
    config = small_sim_config(seed=7, calls=40, max_duration_s=4.0, no_recording_share=0.1, prep_s=0.2)
    sim = Simulator(config)
    receiver = Receiver()
    server = start_asgi(receiver.app())
    try:
        faults = PushFaults(
            audio_drop_share=0.2,
            duplicate_share=0.2,
            out_of_order_share=0.2,
            delay_share=0.05,
            delay_s=0.2,
            truncate_share=0.1,
            corrupt_share=0.1,
            lost_dialog_end_share=0.2,
            reset_share=0.1,
        )
        plans = plan_pushes(sim.calls, faults, seed=sim.config.seed)
        pusher = Pusher(server.url, signing_secret=SECRET, concurrency=4)
        push_calls(sim.calls, plans, pusher)
        pusher.close()
    finally:
        server.stop()
    assert receiver.rejected == 0
    truth = ground_truth.build(sim.calls, sim.exports, plans, seed=sim.config.seed)
    path = ground_truth.write(tmp_path / "truth.json", truth)
    records = {r["dialog_id"]: r for r in ground_truth.load(path)["calls"]}
    outcomes = {r["push"]["audio"] for r in records.values()}
    assert {"pushed", "dropped", "none"} <= outcomes
    for dialog_id, record in records.items():
        plan = record["push"]
        name = record["recording_filename"]
        if plan["audio"] in ("pushed", "corrupted", "truncated"):
            assert receiver.audio[name] == plan["pushed_sha256"]
            assert (plan["pushed_sha256"] == record["recording_sha256"]) == (plan["audio"] == "pushed")
        else:
            assert name not in receiver.audio  # dropped, reset mid-upload, or no recording at all
        ends = [e for e in receiver.events if e["id"] == dialog_id and e["message_type"] == "dialog_end"]
        assert len(ends) == (0 if plan["dialog_end_lost"] else 2 if plan["duplicated"] else 1)
    assert any(r["push"]["out_of_order"] for r in records.values())


def test_push_to_a_missing_receiver_is_counted_not_raised() -> None:
    sim = Simulator(SimulatorConfig(calls=3, max_duration_s=2, mean_duration_s=1, min_duration_s=1))
    plans = plan_pushes(sim.calls, PushFaults.none(), seed=1)
    pusher = Pusher("http://127.0.0.1:9", signing_secret=SECRET, timeout_s=2)
    push_calls(sim.calls, plans, pusher)
    assert all(isinstance(s, str) for p in plans.values() for s in p.events_status)


def test_cli_registers_the_simulator_subcommand(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_cli(sub)
    args = parser.parse_args(
        [
            "simulator",
            "--port",
            "0",
            "--calls",
            "5",
            "--seed",
            "9",
            "--window-start",
            "2025-01-01T10:00:00Z",
            "--window-hours",
            "3",
            "--prep-s",
            "0.1",
            "--drop-share",
            "0.5",
            "--max-duration-s",
            "3",
            "--ground-truth",
            str(tmp_path / "gt.json"),
            "--exit-after-push",
        ]
    )
    config = config_from_args(args)
    assert config.calls == 5 and config.exports.prep_s == 0.1 and config.window_start.hour == 10
    started = time.monotonic()
    assert args.func(args) == 0
    assert time.monotonic() - started < 5
    truth = json.loads((tmp_path / "gt.json").read_text())
    assert len(truth["calls"]) == 5 and truth["seed"] == 9
