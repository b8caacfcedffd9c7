"""Realtime stage benchmark: prints figures (not a test).

    python benchmarks/bench_realtime.py [--seconds 180] [--rate 20] [--skip-e2e] [--skip-memory]

1. Data plane: validate + hash + store of 3-minute WAVs, per byte, against a plain copy + sha256 of the
   same files measured in the same run (both the embedded default's hard-link store and the streamed
   copy used when landing and recordings are on different stores).
2. Receiver memory: peak RSS of a receiver process while it takes one 1 GiB push.
3. End to end: simulator pushes -> receiver -> continuous DAG under `airflow standalone`, N calls/s of
   3-minute calls for S seconds; latency from the end of each push to S3_STORED (ledger timestamp).
Everything runs in a temporary OCP_INGEST_HOME that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MB = 1_000_000


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_data_plane(workdir: Path, files: int = 60) -> dict[str, float]:
    os.environ["OCP_INGEST_HOME"] = str(workdir / "dp")
    from airflow.sdk import ObjectStoragePath

    from ocp_ingest.config import Settings
    from ocp_ingest.ingest import RecordingIngestor
    from ocp_ingest.ledger import IngestionSource, open_ledger
    from ocp_ingest.ledger.model import CallRecord
    from ocp_ingest.ledger.transitions import CallIdentity, CdrEnd
    from ocp_ingest.storage import StorageLayout, iter_file, write_create_only
    from ocp_ingest_dev.simulator import audio

    settings = Settings.from_env()
    layout = StorageLayout.from_settings(settings)
    src = workdir / "dp" / "src"
    src.mkdir(parents=True)
    ids = [f"{i + 1:032X}" for i in range(files)]
    sizes = {}
    for d in ids:
        path = src / f"{d}.wav"
        with path.open("wb") as out:
            for chunk in audio.iter_wav(d, 180_000):
                out.write(chunk)
        sizes[d] = path.stat().st_size
    total = sum(sizes.values())
    shas = {d: hashlib.sha256((src / f"{d}.wav").read_bytes()).hexdigest() for d in ids}

    def baseline(tag: str) -> float:
        out_dir = workdir / "dp" / f"copy-{tag}"
        out_dir.mkdir()
        start = time.perf_counter()
        for d in ids:
            digest = hashlib.sha256()
            with (src / f"{d}.wav").open("rb") as fin, (out_dir / f"{d}.wav").open("wb") as fout:
                while chunk := fin.read(1024 * 1024):
                    digest.update(chunk)
                    fout.write(chunk)
                fout.flush()
                os.fsync(fout.fileno())
        return time.perf_counter() - start

    ledger = open_ledger(settings)
    end = datetime(2026, 11, 24, 10, tzinfo=UTC)
    for d in ids:
        ledger.apply(CdrEnd(d, end, 180_000, "NORMAL", CallIdentity(ocp_group="grp-1", lob="retail")))
    ingestor = RecordingIngestor(settings, ledger, layout)

    def ours_link() -> float:
        records = ledger.get_many(ids)
        start = time.perf_counter()
        for d in ids:
            outcome = ingestor.ingest(
                ObjectStoragePath((src / f"{d}.wav").as_uri()),
                shas[d],
                sizes[d],
                records[d],
                IngestionSource.REALTIME,
            )
            assert outcome.kind == "stored", outcome
        return time.perf_counter() - start

    def ours_stream_copy() -> float:
        # The path taken when landing and recordings are different stores (e.g. S3): validate, then a
        # streamed create-only copy verified by SHA-256.
        dest_root = workdir / "dp" / "streamed"
        start = time.perf_counter()
        for d in ids:
            record = CallRecord(dialog_id=d, duration_ms=180_000)
            verdict = ingestor.validate(ObjectStoragePath((src / f"{d}.wav").as_uri()), record)
            assert verdict.ok, verdict.reasons
            with (src / f"{d}.wav").open("rb") as handle:
                write_create_only(
                    ObjectStoragePath((dest_root / f"{d}.wav").as_uri()),
                    iter_file(handle),
                    expected_sha256=shas[d],
                )
        return time.perf_counter() - start

    base_1 = baseline("a")
    link = ours_link()
    base_2 = baseline("b")
    streamed = ours_stream_copy()
    base = min(base_1, base_2)
    ledger.close()
    return {
        "files": files,
        "bytes": total,
        "baseline_copy_sha256_MBps": total / base / MB,
        "ingest_hardlink_MBps": total / link / MB,
        "ingest_hardlink_cost_ratio": link / base,
        "validate_plus_streamed_copy_MBps": total / streamed / MB,
        "validate_plus_streamed_copy_cost_ratio": streamed / base,
    }


def _start_receiver(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("ocp-ingest")), "receiver", "--port", str(port)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("receiver did not start")


def bench_receiver_memory(workdir: Path, gib: float = 1.0) -> dict[str, float]:
    from ocp_ingest.ocp import wire
    from ocp_ingest.receiver import auth as signing
    from ocp_ingest_dev.simulator import audio

    secret = signing.new_secret()
    env = {**os.environ, "OCP_INGEST_HOME": str(workdir / "mem"), "OCP_INGEST_RECEIVER_SECRET": secret}
    port = 18787
    proc = _start_receiver(env, port)
    dialog_id = "ABCDEF0123456789ABCDEF0123456789"
    duration_ms = int(gib * 1024**3 / 16_000 * 1000)
    digest, size = audio.wav_digest(dialog_id, duration_ms)
    # Warm-up: one small push first, so one-time costs (imports such as pyarrow for the audit trail's
    # first flush) are not mistaken for memory that grows with the body.
    warm_id = "0" * 31 + "1"
    warm_sha, _ = audio.wav_digest(warm_id, 10_000)
    warm_name = wire.recording_filename("grp-1", "acc-1", 1_700_000_000_000, warm_id)
    httpx.put(
        f"http://127.0.0.1:{port}/v1/recordings/{warm_name}",
        content=audio.wav_bytes(warm_id, 10_000),
        headers=signing.audio_headers(secret, warm_name, warm_sha),
        timeout=60,
    ).raise_for_status()
    peak, before = 0.0, _rss_mib(proc.pid)
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _rss_mib(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    name = wire.recording_filename("grp-1", "acc-1", 1_700_000_000_000, dialog_id)
    headers = {**signing.audio_headers(secret, name, digest), "content-length": str(size)}
    start = time.perf_counter()
    response = httpx.put(
        f"http://127.0.0.1:{port}/v1/recordings/{name}",
        content=audio.iter_wav(dialog_id, duration_ms),
        headers=headers,
        timeout=600,
    )
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    proc.terminate()
    proc.wait()
    assert response.status_code == 200, response.text
    return {
        "push_bytes": size,
        "push_MBps": size / elapsed / MB,
        "receiver_rss_before_MiB": round(before, 1),
        "receiver_rss_peak_MiB": round(peak, 1),
    }


def bench_end_to_end(workdir: Path, seconds: float, rate: float) -> dict[str, float]:
    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger
    from ocp_ingest_dev.simulator.calls import generate_calls
    from ocp_ingest_dev.simulator.push import Pusher, PushFaults, plan_pushes, push_calls
    from ocp_ingest_dev.stack import LocalStack

    home = workdir / "e2e"
    os.environ["OCP_INGEST_HOME"] = str(home)
    port, receiver_port = 18093, 18788
    stack = LocalStack(
        port=port,
        receiver_port=receiver_port,
        simulator_port=18789,
        calls=0,
        airflow_home=workdir / "airflow_home",
        log_path=workdir / "stack.log",
    )
    stack.start()
    try:
        if not stack.wait_until_healthy(300):
            raise RuntimeError("airflow did not become healthy")
        secret = stack.push_secret
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{receiver_port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        time.sleep(20)  # let the DAG processor register and start the continuous DAG
        count = int(seconds * rate)
        start_window = datetime.now(UTC) - timedelta(hours=2)
        calls = generate_calls(
            seed=11,
            count=count,
            window_start=start_window,
            window_hours=1,
            mean_duration_s=180,
            min_duration_s=180,
            max_duration_s=180,
            no_recording_share=0.0,
        )
        plans = plan_pushes(calls, PushFaults.none(), seed=11)
        pushed_at: dict[str, float] = {}

        class TimedPusher(Pusher):
            def push_audio(self, call, outcome):
                result = super().push_audio(call, outcome)
                pushed_at[call.dialog_id] = time.time()
                return result

        pusher = TimedPusher(f"http://127.0.0.1:{receiver_port}", signing_secret=secret, concurrency=8)
        t0 = time.perf_counter()
        push_calls(calls, plans, pusher, rate_per_s=rate)
        push_elapsed = time.perf_counter() - t0
        pusher.close()
        settings = Settings.from_env()
        ledger = open_ledger(settings)
        deadline = time.monotonic() + 300
        ids = [c.dialog_id for c in calls]
        while time.monotonic() < deadline:
            records = ledger.get_many(ids)
            if sum(1 for r in records.values() if r.s3_stored) == len(ids):
                break
            time.sleep(2)
        records = ledger.get_many(ids)
        latencies = sorted(
            r.s3_stored_at.timestamp() - pushed_at[d]
            for d, r in records.items()
            if r.s3_stored and d in pushed_at
        )
        ledger.close()
        total_bytes = sum(c.recording_size for c in calls)
        q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
        return {
            "calls": count,
            "stored": len(latencies),
            "push_seconds": round(push_elapsed, 1),
            "achieved_calls_per_s": round(count / push_elapsed, 2),
            "achieved_MBps": round(total_bytes / push_elapsed / MB, 1),
            "latency_p50_s": round(q[49], 2),
            "latency_p95_s": round(q[94], 2),
            "latency_p99_s": round(q[98], 2),
            "latency_max_s": round(latencies[-1], 2) if latencies else float("nan"),
        }
    finally:
        stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-realtime-", dir=os.environ.get("BENCH_TMP", ROOT)))
    results: dict[str, dict[str, float]] = {}
    try:
        results["data_plane"] = bench_data_plane(workdir, args.files)
        print(json.dumps({"data_plane": results["data_plane"]}, indent=2), flush=True)
        if not args.skip_memory:
            results["receiver_memory"] = bench_receiver_memory(workdir)
            print(json.dumps({"receiver_memory": results["receiver_memory"]}, indent=2), flush=True)
        if not args.skip_e2e:
            results["end_to_end"] = bench_end_to_end(workdir, args.seconds, args.rate)
            print(json.dumps({"end_to_end": results["end_to_end"]}, indent=2), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
