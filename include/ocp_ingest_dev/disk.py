"""A real small disk for storage-fault tests: a tmpfs mounted over a folder, and a filler taking its space.

Mounting needs root (CAP_SYS_ADMIN); where that is not allowed, :func:`mount_tmpfs` raises
:class:`DiskUnavailable` and the caller skips the fault.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


class DiskUnavailable(RuntimeError):
    """A tmpfs cannot be mounted here (not root, or no mount namespace for it)."""


@contextlib.contextmanager
def mount_tmpfs(where: Path, size_bytes: int) -> Iterator[Path]:
    """``where`` (created if needed, expected empty) on its own tmpfs of ``size_bytes``, for the block."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise DiskUnavailable(f"cannot mount a tmpfs on {where}: {done.stderr.strip() or done.returncode}")
    try:
        yield where
    finally:
        # Lazy: a file a server still holds open must not keep the mount (and the test's folder) busy.
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(root: Path, leave_bytes: int) -> Path:
    """Take all but about ``leave_bytes`` of ``root``'s disk with one filler file; delete it to free them."""
    filler = root / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with contextlib.suppress(OSError):  # ENOSPC: the disk is full
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    stat = os.statvfs(root)
    free = stat.f_bavail * stat.f_frsize
    if free < leave_bytes:
        os.truncate(filler, max(0, filler.stat().st_size - (leave_bytes - free)))
    return filler
