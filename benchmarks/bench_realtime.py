"""Realtime stage benchmark: prints figures (not a test).

    python benchmarks/bench_realtime.py [--seconds 180] [--rate 20] [--skip-e2e] [--skip-memory]
    python benchmarks/bench_realtime.py --knee [--rates 5,10,15,20,30,40,60] [--step-seconds 30]
        [--receivers 2]

1. Data plane: validate + hash + store of 3-minute WAVs, per byte, against a plain copy + sha256 of the
   same files measured in the same run (both the embedded default's hard-link store and the streamed
   copy used when landing and recordings are on different stores).
2. Receiver memory: peak RSS of a receiver process while it takes one 1 GiB push.
3. End to end: simulator pushes -> receiver -> continuous DAG under `airflow standalone`, N calls/s of
   3-minute calls for S seconds; latency from the end of each push to S3_STORED (ledger timestamp).
4. The knee (``--knee``, run alone): the push rate of 3-minute calls is ramped step by step (fresh dialog
   ids each step) until p95 push end -> stored exceeds 15 s or the pushes achieve under 0.9x the asked
   rate (the receiver pushes back); the knee is the last step that passed. First against a floor in
   the same run, a minimal streaming receiver in its own process that only hashes and durably writes
   (stdlib HTTP server: chunks -> SHA-256 -> new file -> fsync of file and directory -> 200; no auth,
   validation, ledger or Airflow; "stored" is its 200), then against the real receiver and continuous DAG
   under ``airflow standalone`` (``--receivers N``: N receiver processes on one port, ``--reuse-port``, their
   CPU counted together; "stored" is the ledger's S3_STORED; after each step the benchmark waits
   until the step's calls are stored or --drain-seconds passed). Reconciliation is off for it. The
   pusher is cheap, so it is not what is measured: one WAV is rendered once; each call's body is that
   buffer with its dialog id as the last 32 bytes (its own SHA-256, continued from the shared prefix's
   hash state), sent over persistent ``http.client`` connections by --push-procs processes of
   --push-threads connections each; a call's CDR events (one JSON array push) go first on the same
   connection. Per step one JSON line: asked and achieved calls/s and MB/s, latency p50/p95/max,
   stored/total, the receiver's peak RSS, PUT times, the pushers' lag and CPU, every component's CPU
   seconds (other work on the machine shows there too) and, for the system, the DAG's runs and shards.
   Last line: ``knee = X calls/s (Y MB/s) = R.RRx the floor (F calls/s, G MB/s)``.
Everything runs in a temporary OCP_INGEST_HOME that is deleted afterwards; every process it started is
stopped on the way out (Ctrl-C and SIGTERM included).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import http.client
import http.server
import json
import math
import multiprocessing
import os
import queue
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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


@contextlib.contextmanager
def realtime_stack(
    workdir: Path, *, settings_env: dict[str, str] | None = None, receivers: int = 1
) -> Iterator[Any]:
    """The receiver (``receivers`` processes on one port) and ``airflow standalone`` (no simulator) in
    ``workdir``, healthy, the continuous DAG registered; everything stopped on the way out, whatever
    happened. Yields the ``LocalStack``.

    The stack's processes use compiled bytecode (cached under ``workdir`` where the environment forbids
    writing it), as a deployment image would: every task process imports Airflow and this package.
    """
    from ocp_ingest_dev.stack import LocalStack

    os.environ["OCP_INGEST_HOME"] = str(workdir / "e2e")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.setdefault("PYTHONPYCACHEPREFIX", str(workdir / "pycache"))
    for name, value in (settings_env or {}).items():
        os.environ[name] = value
    receiver_port = 18788
    stack = LocalStack(
        port=18093,
        receiver_port=receiver_port,
        simulator_port=18789,
        calls=0,
        receivers=receivers,
        airflow_home=workdir / "airflow_home",
        log_path=workdir / "stack.log",
    )
    try:
        stack.start()
        if not stack.wait_until_healthy(300):
            raise RuntimeError(f"airflow did not become healthy (see {workdir / 'stack.log'})")
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{receiver_port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        time.sleep(20)  # let the DAG processor register and start the continuous DAG
        yield stack
    finally:
        stack.stop()


def bench_end_to_end(workdir: Path, seconds: float, rate: float) -> dict[str, float]:
    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger
    from ocp_ingest_dev.simulator.calls import generate_calls
    from ocp_ingest_dev.simulator.push import Pusher, PushFaults, plan_pushes, push_calls

    with realtime_stack(workdir) as stack:
        secret = stack.push_secret
        receiver_port = stack.receiver_port
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


# -- The knee (--knee) ---------------------------------------------------------------------------------------
#: A step passes while p95 push end -> stored stays within this, and ...
KNEE_P95_LIMIT_S = 15.0
#: ... the achieved push rate is at least this share of the asked one (below it the receiver pushes back).
KNEE_MIN_RATE_SHARE = 0.9
KNEE_TARGET = 0.6  # the system's knee over the floor's
KNEE_RATES = (5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0)
CALL_MS = 180_000  # 3-minute calls: 2.88 MB of 8 kHz 16-bit PCM
#: Each body ends with its dialog id (32 hex characters) in place of the template's last samples, so every
#: recording has its own bytes and SHA-256 while the rest of the body is one shared buffer.
UNIQUE_TAIL = 32
FLOOR_PORT = 18790


@dataclass(frozen=True)
class PushJob:
    """One call to push: its CDR events, then its recording."""

    index: int  # due at t0 + index / rate
    dialog_id: str
    filename: str  # the recording name the signature covers
    path: str  # the PUT path
    events: bytes  # the call's CDR events as one JSON array push (dialog_start, IVR end, dialog_end)


class _Connection:
    """One persistent HTTP/1.1 connection (``http.client``: the request head and ``sendall`` of the given
    buffers, nothing else). A connection the server closed is reopened and the request sent again (pushes
    are idempotent); a 503 is retried after its Retry-After, as OCP would."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None
        self.retries = 0

    def request(self, method: str, path: str, headers: dict[str, str], parts: tuple[Any, ...]) -> int:
        status = 0
        for _attempt in range(20):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
            try:
                self.conn.putrequest(method, path, skip_accept_encoding=True)
                for name, value in headers.items():
                    self.conn.putheader(name, value)
                self.conn.endheaders()
                for part in parts:
                    self.conn.send(part)
                response = self.conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                self.close()
                self.retries += 1
                time.sleep(0.05)
                continue
            status = response.status
            if response.will_close:
                self.close()
            if status != 503:
                return status
            self.retries += 1
            time.sleep(float(response.getheader("retry-after") or 1))
        return status

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _push_process(
    port: int,
    secret: str,
    jobs: list[PushJob],
    rate: float,
    threads: int,
    template: bytes,
    control: Any,
    results: Any,
) -> None:
    """A pusher process: ``threads`` connections take its calls as they fall due (``t0`` comes from the
    parent once every process is ready). Per call: (index, due, push start, audio start, push end, events
    status, audio status), wall clock."""
    from ocp_ingest.receiver import auth as signing  # stdlib only

    prefix = memoryview(template)[:-UNIQUE_TAIL]
    prefix_digest = hashlib.sha256(prefix)  # each body's SHA-256 continues from here with its own tail
    size = str(len(template))
    work: queue.SimpleQueue[tuple[PushJob, float] | None] = queue.SimpleQueue()
    done: list[tuple[Any, ...]] = []
    retries: list[int] = []
    control.send("ready")
    t0 = control.recv()
    before = os.times()

    def feed() -> None:
        for job in jobs:
            due = t0 + job.index / rate
            if (wait := due - time.time()) > 0:
                time.sleep(wait)
            work.put((job, due))
        for _ in range(threads):
            work.put(None)

    def send() -> None:
        conn = _Connection(port)
        while (item := work.get()) is not None:
            job, due = item
            started = time.time()
            headers = {"content-type": "application/json", "content-length": str(len(job.events))}
            events_status = conn.request(
                "POST", "/v1/events", {**headers, **signing.event_headers(secret, job.events)}, (job.events,)
            )
            tail = job.dialog_id.encode()
            digest = prefix_digest.copy()
            digest.update(tail)
            headers = {
                "content-type": "audio/wav",
                "content-length": size,
                **signing.audio_headers(secret, job.filename, digest.hexdigest()),
            }
            audio_started = time.time()
            status = conn.request("PUT", job.path, headers, (prefix, tail))
            done.append((job.index, due, started, audio_started, time.time(), events_status, status))
        conn.close()
        retries.append(conn.retries)

    senders = [threading.Thread(target=send, daemon=True) for _ in range(threads)]
    for thread in senders:
        thread.start()
    feed()
    for thread in senders:
        thread.join()
    after = os.times()
    results.put((done, sum(retries), after.user + after.system - before.user - before.system))


class _FloorHandler(http.server.BaseHTTPRequestHandler):
    """The floor: a recording is read in chunks, SHA-256 hashed, written to a new file, the file and its
    directory fsynced, then 200. Events are read and dropped. No auth, validation, ledger or Airflow."""

    protocol_version = "HTTP/1.1"  # persistent connections, as the real receiver's
    directory: Path
    directory_fd: int

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _chunks(self) -> Iterator[memoryview]:
        remaining = int(self.headers.get("content-length") or 0)
        buffer = memoryview(bytearray(1 << 20))
        while remaining:
            n = self.rfile.readinto(buffer[: min(remaining, len(buffer))])
            if not n:
                raise ConnectionError("body cut short")
            remaining -= n
            yield buffer[:n]

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        for _ in self._chunks():
            pass
        self._answer(200, b'{"accepted": true}')

    def do_PUT(self) -> None:
        digest = hashlib.sha256()
        fd = os.open(self.directory / f"{uuid.uuid4().hex}.wav", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            for chunk in self._chunks():
                digest.update(chunk)
                while chunk:
                    chunk = chunk[os.write(fd, chunk) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.fsync(self.directory_fd)
        ok = digest.hexdigest() == self.headers.get("x-ocp-content-sha256")
        self._answer(200 if ok else 400, json.dumps({"sha256": digest.hexdigest()}).encode())


def _floor_receiver(port: int, directory: str, ready: Any) -> None:
    """The floor receiver's process: a threading stdlib HTTP server, one thread per connection."""

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 128
        daemon_threads = True

    _FloorHandler.directory = Path(directory)
    _FloorHandler.directory_fd = os.open(directory, os.O_RDONLY)
    server = Server(("127.0.0.1", port), _FloorHandler)
    ready.set()
    server.serve_forever()


class _Sampler:
    """While a step runs: the receiver's peak RSS (every 0.1 s) and every process's CPU seconds (every
    second), by component."""

    def __init__(self, receiver_pid: int, names: dict[int, str]) -> None:
        import bench_reconciliation as recon  # every process's component and CPU seconds

        self.receiver_pid = receiver_pid
        self.peak_rss = _rss_mib(receiver_pid)
        self._cpu = recon.CpuByComponent({**names, os.getpid(): "this benchmark (ledger polls)"})
        self._cpu.start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(0.1):
            with contextlib.suppress(OSError):
                self.peak_rss = max(self.peak_rss, _rss_mib(self.receiver_pid))
            tick += 1
            if tick % 10 == 0:
                self._cpu.sample()

    def stop(self) -> dict[str, float]:
        """CPU seconds by component over the step."""
        self._stop.set()
        self._thread.join()
        self._cpu.sample()
        spent = self._cpu.seconds()
        return {k: round(v, 1) for k, v in sorted(spent.items(), key=lambda kv: -kv[1]) if v >= 0.05}


class _FloorTarget:
    """The minimal receiver, in its own process; "stored" is the 200 itself."""

    name = "floor"

    def __init__(self, workdir: Path) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.directory = workdir / "floor"
        self.directory.mkdir(parents=True)
        self.port = FLOOR_PORT
        self.secret = "whsec_" + "A" * 44  # signed like the real pushes (the floor checks only the digest)
        ready = ctx.Event()
        self.process = ctx.Process(target=_floor_receiver, args=(self.port, str(self.directory), ready))
        self.process.start()
        if not ready.wait(30):
            raise RuntimeError("the floor receiver did not start")
        self.pid = self.process.pid
        self.pids = [self.pid]

    def stored_at(self, pushed: dict[str, float], deadline: float) -> dict[str, float]:
        for path in self.directory.iterdir():  # keep the disk from filling over the ramp
            path.unlink()
        return dict(pushed)

    def dag_figures(self, since: float) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(10)


class _SystemTarget:
    """The real receiver and ``ocp_realtime_ingest`` under ``airflow standalone``; "stored" is the ledger's
    ``s3_stored_at``."""

    name = "system"

    def __init__(self, stack: Any) -> None:
        from ocp_ingest.config import Settings
        from ocp_ingest.ledger import open_ledger

        self.port = stack.receiver_port
        self.secret = stack.push_secret
        self.pid = stack.processes.children["receiver"].process.pid
        self.pids = [c.process.pid for n, c in stack.processes.children.items() if n.startswith("receiver")]
        self.db_path = stack.resolved_airflow_home / "airflow.db"
        self.ledger = open_ledger(Settings.from_env())

    def stored_at(self, pushed: dict[str, float], deadline: float) -> dict[str, float]:
        ids = list(pushed)
        stored: dict[str, float] = {}
        while True:
            for dialog_id, record in self.ledger.get_many([d for d in ids if d not in stored]).items():
                if record.s3_stored and record.s3_stored_at is not None:
                    stored[dialog_id] = record.s3_stored_at.timestamp()
            if len(stored) == len(ids) or time.time() > deadline:
                return stored
            time.sleep(1.0)

    def dag_figures(self, since: float) -> dict[str, Any]:
        """The continuous DAG's runs that ended after ``since``: how many; how long each took once its
        ``wait_for_arrivals`` had seen arrivals (the run's batch work and task start-ups, without the idle
        wait); how many ``store_shard`` instances and how long they took."""
        start = datetime.fromtimestamp(since, UTC).replace(tzinfo=None)
        with sqlite3.connect(self.db_path, timeout=30) as db:
            runs = dict(
                db.execute(
                    "SELECT run_id, end_date FROM dag_run WHERE dag_id = 'ocp_realtime_ingest' "
                    "AND end_date IS NOT NULL AND substr(end_date, 1, 26) >= ?",
                    (start.isoformat(sep=" ", timespec="microseconds"),),
                ).fetchall()
            )
            marks = ",".join("?" * len(runs))
            tasks = db.execute(
                "SELECT run_id, task_id, start_date, end_date FROM task_instance "
                f"WHERE dag_id = 'ocp_realtime_ingest' AND end_date IS NOT NULL AND run_id IN ({marks})",
                list(runs),
            ).fetchall()
        at = datetime.fromisoformat
        after_wait = sorted(
            (at(runs[run_id]) - at(end)).total_seconds()
            for run_id, task_id, _, end in tasks
            if task_id == "wait_for_arrivals"
        )
        shards = sorted(
            (at(end) - at(begin)).total_seconds()
            for _, task_id, begin, end in tasks
            if task_id == "store_shard"
        )
        return {
            "dag_runs": len(runs),
            "dag_run_after_wait_s_p50": round(statistics.median(after_wait), 1) if after_wait else None,
            "dag_run_after_wait_s_max": round(after_wait[-1], 1) if after_wait else None,
            "store_shards": len(shards),
            "store_shard_s_p50": round(statistics.median(shards), 1) if shards else None,
            "store_shard_s_max": round(shards[-1], 1) if shards else None,
        }

    def close(self) -> None:
        self.ledger.close()


def _quantile(values: list[float], q: float) -> float:
    """The q-quantile of ``values`` (inf counts: a call never stored); nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] if ordered else math.nan


def _seconds(value: float) -> float | str:
    return round(value, 2) if math.isfinite(value) else "never"


def knee_step(
    target: Any,
    rate: float,
    seconds: float,
    *,
    seed: int,
    template: bytes,
    procs: int,
    threads: int,
    drain_s: float,
) -> dict[str, Any]:
    """Push ``rate`` calls/s of 3-minute calls for ``seconds`` at ``target``, wait until they are stored
    (or ``drain_s`` after the last push ended) and measure."""
    from ocp_ingest.ocp import wire
    from ocp_ingest_dev.simulator.calls import generate_calls

    calls = generate_calls(
        seed=seed,
        count=max(1, round(rate * seconds)),
        window_start=datetime.now(UTC) - timedelta(hours=2),
        window_hours=1,
        mean_duration_s=CALL_MS / 1000,
        min_duration_s=CALL_MS / 1000,
        max_duration_s=CALL_MS / 1000,
        no_recording_share=0.0,
    )
    jobs = [
        PushJob(
            i,
            c.dialog_id,
            c.recording_filename,
            wire.push_recording_path(c.recording_filename),
            wire.event_body(c.events()),
        )
        for i, c in enumerate(calls)
    ]
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    workers, controls = [], []
    for p in range(procs):
        mine, theirs = ctx.Pipe()
        args = (target.port, target.secret, jobs[p::procs], rate, threads, template, theirs, results)
        workers.append(ctx.Process(target=_push_process, args=args, daemon=True))
        controls.append(mine)
    sampler = None
    try:
        for worker in workers:
            worker.start()
        for control in controls:
            if not control.poll(60):
                raise RuntimeError("a pusher process did not start")
            control.recv()
        receivers = {pid: f"receiver ({target.name})" for pid in target.pids}
        sampler = _Sampler(target.pid, {**receivers, **{w.pid: "pusher" for w in workers}})
        t0 = time.time() + 0.2
        for control in controls:
            control.send(t0)
        rows, retries, pusher_cpu, reported = [], 0, 0.0, 0
        while reported < len(workers):
            try:
                done, worker_retries, cpu = results.get(timeout=5)
            except queue.Empty:
                if any(w.exitcode not in (None, 0) for w in workers):
                    raise RuntimeError("a pusher process failed") from None
                continue
            rows += done
            retries += worker_retries
            pusher_cpu += cpu
            reported += 1
        for worker in workers:
            worker.join(10)
        pushed_end = max(r[4] for r in rows)
        ok = {calls[r[0]].dialog_id: r[4] for r in rows if r[5] in (200, 207) and r[6] == 200}
        stored = target.stored_at(ok, pushed_end + drain_s)
        finished = time.time()
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
        cpu_by_component = sampler.stop() if sampler else {}
    push_window = max(seconds, pushed_end - t0)
    latencies = [stored[d] - end if d in stored else math.inf for d, end in ok.items()]
    latencies += [math.inf] * (len(calls) - len(ok))  # a push that failed is never stored
    audio_s = [r[4] - r[3] for r in rows]
    lag_s = [r[2] - r[1] for r in rows]
    achieved = len(ok) / push_window
    p95 = _quantile(latencies, 0.95)
    row = {
        "target": target.name,
        "asked_calls_per_s": rate,
        "achieved_calls_per_s": round(achieved, 2),
        "achieved_MBps": round(achieved * len(template) / MB, 1),
        "latency_p50_s": _seconds(_quantile(latencies, 0.5)),
        "latency_p95_s": _seconds(p95),
        "latency_max_s": _seconds(max(latencies)),
        "stored": f"{len(stored)}/{len(calls)}",
        "receiver_peak_rss_MiB": round(sampler.peak_rss, 1) if sampler else None,
        "audio_put_s_p50": round(_quantile(audio_s, 0.5), 3),
        "audio_put_s_p95": round(_quantile(audio_s, 0.95), 3),
        "pusher_start_lag_s_p95": round(_quantile(lag_s, 0.95), 3),
        "pusher_cpu_s": round(pusher_cpu, 1),
        "push_errors": len(calls) - len(ok),
        "retries": retries,
        "step_wall_s": round(finished - t0, 1),
        "cpu_s_by_component": cpu_by_component,
        **target.dag_figures(t0),
    }
    row["ok"] = p95 <= KNEE_P95_LIMIT_S and achieved >= KNEE_MIN_RATE_SHARE * rate
    return row


def ramp_rates(rates: tuple[float, ...], max_rate: float) -> Iterator[float]:
    """The listed rates, then 1.5x each time, up to ``max_rate``."""
    rate = 0.0
    for rate in rates:
        if rate > max_rate:
            return
        yield rate
    while (rate := round(rate * 1.5)) <= max_rate:
        yield rate


def knee_ramp(target: Any, args: argparse.Namespace, seed: int, template: bytes) -> dict[str, Any] | None:
    """Warm up, then ramp until a step fails; returns the last step that passed (None: not even the first)."""
    step = functools.partial(
        knee_step,
        target,
        template=template,
        procs=args.push_procs,
        threads=args.push_threads,
    )
    warm = step(2.0, 5.0, seed=seed, drain_s=300.0)  # first DAG run, first task processes, imports
    print(json.dumps({"warm_up": warm}), flush=True)
    knee = None
    for k, rate in enumerate(ramp_rates(args.rates, args.max_rate)):
        row = step(rate, args.step_seconds, seed=seed + k + 1, drain_s=args.drain_seconds)
        print(json.dumps(row), flush=True)
        if not row["ok"]:
            return knee
        knee = row
    if knee is not None:
        knee["ramp_exhausted"] = True  # every step passed: the knee is at least this
    return knee


def bench_knee(workdir: Path, args: argparse.Namespace) -> int:
    """The floor's ramp, then the real system's; the last line compares their knees."""
    from ocp_ingest_dev.simulator import audio

    template = audio.wav_bytes("0" * 32, CALL_MS)
    seed = int(time.time())
    knees: dict[str, dict[str, Any] | None] = {}
    if args.knee_target in ("both", "floor"):
        floor = _FloorTarget(workdir)
        try:
            knees["floor"] = knee_ramp(floor, args, seed, template)
        finally:
            floor.close()
    if args.knee_target in ("both", "system"):
        # Reconciliation does not run: the realtime stage alone is measured (it would poll an OCP that is
        # not there).
        off = {"OCP_INGEST_RECONCILIATION_SCHEDULE": "none"}
        with realtime_stack(workdir, settings_env=off, receivers=args.receivers) as stack:
            system = _SystemTarget(stack)
            try:
                knees["system"] = knee_ramp(system, args, seed + 1000, template)
            finally:
                system.close()

    def figures(row: dict[str, Any] | None) -> tuple[float, float, str]:
        if row is None:
            return 0.0, 0.0, f" (below the first step, {args.rates[0]:g} calls/s)"
        note = " (at least: every step passed)" if row.get("ramp_exhausted") else ""
        return row["achieved_calls_per_s"], row["achieved_MBps"], note

    for name, row in knees.items():
        rate, mbps, note = figures(row)
        print(f"{name} knee = {rate:g} calls/s ({mbps:g} MB/s){note}", flush=True)
    if len(knees) == 2:
        rate, mbps, note = figures(knees["system"])
        floor_rate, floor_mbps, floor_note = figures(knees["floor"])
        ratio = rate / floor_rate if floor_rate else math.nan
        verdict = "met" if ratio >= KNEE_TARGET else "NOT met"
        print(
            f"knee = {rate:g} calls/s ({mbps:g} MB/s){note} = {ratio:.2f}x the floor "
            f"({floor_rate:g} calls/s, {floor_mbps:g} MB/s{floor_note}); target >= {KNEE_TARGET}x: {verdict}",
            flush=True,
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    knee = parser.add_argument_group("the knee (--knee: only this is run)")
    knee.add_argument("--knee", action="store_true", help="ramp the push rate; the floor, then the system")
    knee.add_argument(
        "--rates",
        type=lambda text: tuple(float(r) for r in text.split(",")),
        default=KNEE_RATES,
        help="calls/s of the steps, comma-separated (then 1.5x each step up to --max-rate)",
    )
    knee.add_argument("--max-rate", type=float, default=400.0)
    knee.add_argument("--step-seconds", type=float, default=30.0)
    knee.add_argument(
        "--drain-seconds", type=float, default=120.0, help="wait for storage after a step's last push"
    )
    knee.add_argument("--push-procs", type=int, default=2, help="pusher processes")
    knee.add_argument("--push-threads", type=int, default=12, help="connections per pusher process")
    knee.add_argument("--knee-target", choices=("both", "floor", "system"), default="both")
    knee.add_argument(
        "--receivers", type=int, default=1, help="receiver processes sharing the port (--reuse-port)"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-realtime-", dir=os.environ.get("BENCH_TMP", ROOT)))
    results: dict[str, dict[str, float]] = {}
    from ocp_ingest_dev.stack.supervise import raise_interrupt

    signal.signal(signal.SIGTERM, raise_interrupt)  # a SIGTERM cleans up as Ctrl-C does
    try:
        if args.knee:
            return bench_knee(workdir, args)
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
