"""Benchmark: the two ways a local create-only write can go, on this machine's disk (prints figures).

``storage.write_create_only`` to local disk writes into a file without a name (``O_TMPFILE``), fsyncs it,
links it to its key and fsyncs the directory; where the kernel or filesystem has no ``O_TMPFILE`` it
writes a hidden temporary name instead, links it and removes the temporary name. Both are measured on the
same files (``--files`` recordings of ``--size`` bytes, ``--threads`` writers, as a download task does),
alternating over ``--rounds`` rounds so that the disk's drift affects both alike; printed: wall time and
CPU (user + system of this process) per round and the medians, and the anonymous way's ratio to the other.

Usage: ``.venv/bin/python benchmarks/bench_storage.py [--files 2500] [--size 480044] [--rounds 6]``
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from airflow.sdk import ObjectStoragePath

from ocp_ingest.storage import write as storage


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _round(folder: Path, data: bytes, files: int, threads: int, anonymous: bool) -> tuple[float, float]:
    storage._ANONYMOUS_FILES = anonymous
    root = ObjectStoragePath(folder.as_uri())
    os.sync()  # the previous round's writeback must not be charged to this one
    started, cpu = time.monotonic(), _cpu_s()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: storage.write_create_only(root / f"{i:06d}.wav", [data]), range(files)))
    return time.monotonic() - started, _cpu_s() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=2500)
    parser.add_argument("--size", type=int, default=480_044, help="bytes per file (a 30 s call)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    args = parser.parse_args()
    if not storage._anonymous_files_supported():
        print("this kernel offers no O_TMPFILE: only the temporary-name way can run here")
        return 1
    data = os.urandom(args.size)
    work = Path(tempfile.mkdtemp(prefix="ocp-bench-storage-", dir=args.dir))
    anonymous_by_way = {"anonymous (O_TMPFILE)": True, "temporary name": False}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in anonymous_by_way}
    try:
        for i in range(args.rounds):
            ways = list(anonymous_by_way.items())
            for name, anonymous in ways if i % 2 == 0 else ways[::-1]:
                folder = work / f"{i}-{'anonymous' if anonymous else 'named'}"
                wall, cpu = _round(folder, data, args.files, args.threads, anonymous)
                results[name].append((wall, cpu))
                print(f"round {i} {name:<22} wall {wall:5.2f} s  cpu {cpu:5.2f} s", flush=True)
                shutil.rmtree(folder)
    finally:
        storage._ANONYMOUS_FILES = storage._anonymous_files_supported()
        shutil.rmtree(work, ignore_errors=True)
    mb = args.files * args.size / 1e6
    medians = {}
    for name, rounds in results.items():
        wall = statistics.median(w for w, _ in rounds)
        cpu = statistics.median(c for _, c in rounds)
        medians[name] = (wall, cpu)
        print(
            f"{name:<22} median wall {wall:5.2f} s ({mb / wall:4.0f} MB/s), "
            f"median cpu {cpu:5.2f} s ({cpu / args.files * 1e3:.2f} ms per file)"
        )
    (aw, ac), (tw, tc) = medians.values()
    print(f"anonymous / temporary name: wall {aw / tw:.2f}x, cpu {ac / tc:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
