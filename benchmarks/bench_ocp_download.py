"""Benchmark: download a 1 GB export file through the OCP client vs a raw loopback copy of the same bytes.

The simulator runs in its own process (as OCP would be remote) and serves one recording of about 1 GiB,
generated lazily by slicing a precomputed buffer (it never holds the file in memory). In this process:

* raw:    plain ``httpx`` stream to a file (no hashing, no verification, no fsync);
* client: ``iter_file_chunks`` into ``storage.write_create_only`` (SHA-256 on the fly, size + digest check,
  fsync, atomic create-only link), as reconciliation stores a large file.

Rounds alternate so both see the same machine state. Prints throughput, the ratio client/raw (target
>= 0.70) and peak RSS of this process during each phase and of the simulator (target: flat, far below 1 GB).

Usage: ``PYTHONPATH=include .venv/bin/python benchmarks/bench_ocp_download.py [--mib 1024] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import httpx

from ocp_ingest.ocp import OcpClient, PatAuth, iter_file_chunks, wire
from ocp_ingest.storage import object_path, write_create_only
from ocp_ingest_dev.simulator.auth import SIMULATOR_PAT as PAT

SERVER = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime, timedelta
    from ocp_ingest.ocp import wire
    from ocp_ingest_dev.simulator import Simulator, SimulatorConfig
    from ocp_ingest_dev.simulator.audio import BYTES_PER_MS
    from ocp_ingest_dev.simulator.calls import SimCall
    from ocp_ingest_dev.simulator.server import start

    size = int(sys.argv[1])
    start_at = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    call = SimCall(
        dialog_id="B" * 32, dialog_group="C" * 32, ocp_group="ocp-bench", account_id="acc-1",
        connection_id="0" * 16, start=int(start_at.timestamp() * 1000), duration_ms=size // BYTES_PER_MS,
        end_type=wire.EndType.NORMAL, flow_name="retail_banking_main", destination_uri="+34910000101",
        origin_uri="sip:+34600000000@carrier.example", has_recording=True, ends_in_ivr=True, ivr_reason="x",
    )
    config = SimulatorConfig(window_start=start_at)
    config.exports.prep_s = 0.1
    running = start(Simulator(config, calls=[call]), log_level="warning")
    print(running.url, int(start_at.timestamp()), flush=True)
    sys.stdin.read()  # serve until the benchmark closes our stdin
    running.stop()
    """
)


def _rss_mib(pid: int | str = "self", field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakRss:
    """Samples this process's RSS every 5 ms while active; ``peak`` in MiB."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mib())
            self._stop.wait(0.005)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())


def raw_copy(url: str, dest: Path) -> int:
    """The baseline: bytes from the socket to a file, nothing else."""
    size = 0
    with (
        httpx.stream("GET", url, headers={wire.PAT_HEADER: PAT}, timeout=60) as response,
        open(dest, "wb") as out,
    ):
        response.raise_for_status()
        for chunk in response.iter_raw():
            out.write(chunk)
            size += len(chunk)
    return size


def warm_up(directory: str | None, size: int) -> None:
    """Touch 2x the file size of page cache once and free it.

    On a VM (this machine is a Firecracker guest) the first touch of a guest page faults into the host and
    costs more than the copy itself; without this, whichever mode runs first on fresh memory looks slow.
    """
    block = b"\x00" * (1 << 20)
    with tempfile.NamedTemporaryFile(dir=directory) as handle:
        for _ in range(2 * size // len(block)):
            handle.write(block)
        handle.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--dir",
        default="/dev/shm" if Path("/dev/shm").is_dir() else None,
        help="where files are written (default tmpfs, so disk writeback does not swamp the comparison)",
    )
    args = parser.parse_args()
    size = args.mib * 1024 * 1024

    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "include"), *sys.path])
    )
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        url, start_s = server.stdout.readline().split()
        from datetime import UTC, datetime, timedelta

        window_start = datetime.fromtimestamp(int(start_s), UTC)
        with OcpClient(url, PatAuth(PAT)) as client:
            t0 = time.perf_counter()
            export = client.create_export("ocp-bench", window_start, window_start + timedelta(hours=1))
            export = client.wait_for_export(export.export_id, poll_interval_s=0.05, timeout_s=120)
            (item,) = list(client.iter_files(export.export_id))
            print(
                f"export ready in {time.perf_counter() - t0:.2f} s (includes the simulator hashing the file)"
            )
            print(f"file {item.name}: {item.size / 2**20:.0f} MiB, sha256 {item.sha256[:16]}...")
            file_url = url + wire.export_file_path(export.export_id, item.file_id)
            results: dict[str, list[tuple[float, float]]] = {"raw": [], "client": []}
            warm_up(args.dir, item.size)
            with tempfile.TemporaryDirectory(prefix="bench-ocp-", dir=args.dir) as tmp:
                for round_no in range(args.rounds):
                    for mode in ("raw", "client"):
                        dest = Path(tmp) / f"{mode}-{round_no}.wav"
                        with PeakRss() as rss:
                            started = time.perf_counter()
                            if mode == "raw":
                                got = raw_copy(file_url, dest)
                            else:
                                chunks = iter_file_chunks(client, export.export_id, item)
                                got = write_create_only(
                                    object_path(dest.as_uri()),
                                    chunks,
                                    expected_sha256=item.sha256,
                                    expected_size=item.size,
                                ).size
                            elapsed = time.perf_counter() - started
                        assert got == item.size, (mode, got)
                        dest.unlink()
                        results[mode].append((got / elapsed / 2**20, rss.peak))
                        print(
                            f"round {round_no + 1} {mode:6s}: {got / elapsed / 2**20:8.1f} MiB/s "
                            f"in {elapsed:5.2f} s, peak RSS {rss.peak:6.1f} MiB"
                        )
        best_raw = max(r for r, _ in results["raw"])
        best_client = max(r for r, _ in results["client"])
        print(f"best raw    {best_raw:8.1f} MiB/s")
        print(f"best client {best_client:8.1f} MiB/s (SHA-256 + size check + fsync + create-only link)")
        print(f"ratio client/raw = {best_client / best_raw:.2f} (target >= 0.70)")
        print(
            f"peak RSS: benchmark process {max(p for v in results.values() for _, p in v):.1f} MiB, "
            f"simulator process {_rss_mib(server.pid, 'VmHWM'):.1f} MiB (file is {item.size / 2**20:.0f} MiB)"
        )
        return 0 if best_client / best_raw >= 0.70 else 1
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
