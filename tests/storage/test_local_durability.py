"""Local-disk writes: a name appears only for whole, durable bytes, and the new name is itself durable.

Both ways a local write can go are tested: a file without a name (O_TMPFILE, then linked) where the kernel
offers it, and a hidden temporary name elsewhere. A power cut cannot be staged here, so the directory
fsync is observed (which directory, and that the name existed by then); a killed writer is real.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from ocp_ingest.storage import (
    ChecksumMismatch,
    ObjectExists,
    link_create_only,
    sync_names,
    write_create_only,
)
from ocp_ingest.storage import write as storage_write

BODY = b"RIFF" + b"\x01\x02" * 300_000


@pytest.fixture(params=["anonymous", "named"])
def write_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "anonymous":
        if not storage_write._anonymous_files_supported():
            pytest.skip("this kernel offers no O_TMPFILE")
        monkeypatch.setattr(storage_write, "_ANONYMOUS_FILES", True)
    else:
        monkeypatch.setattr(storage_write, "_ANONYMOUS_FILES", False)
    return request.param


@pytest.fixture
def synced_dirs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """Every directory fsync: (the directory, the names in it at that moment)."""
    seen: list[tuple[str, list[str]]] = []
    real = storage_write._sync_directory

    def spy(dir_fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{dir_fd}")
        seen.append((path, sorted(os.listdir(path))))
        real(dir_fd)

    monkeypatch.setattr(storage_write, "_sync_directory", spy)
    return seen


def test_a_write_gives_its_name_only_to_whole_bytes_and_syncs_the_directory(
    tmp_path: Path, write_mode: str, synced_dirs: list
) -> None:
    dest = ObjectStoragePath((tmp_path / "rec" / "2026" / "x.wav").as_uri())
    stored = write_create_only(dest, [BODY[:1000], BODY[1000:]], expected_size=len(BODY))
    assert stored.created and dest.read_bytes() == BODY
    assert os.listdir(tmp_path / "rec" / "2026") == ["x.wav"]  # no temporary name left over
    assert synced_dirs == [(str(tmp_path / "rec" / "2026"), ["x.wav"])]  # after the name exists

    assert not write_create_only(dest, [BODY]).created  # the same bytes: an idempotent repeat
    with pytest.raises(ObjectExists):
        write_create_only(dest, [b"other bytes"])
    assert dest.read_bytes() == BODY


def test_a_refused_or_broken_write_leaves_no_file_at_all(tmp_path: Path, write_mode: str) -> None:
    folder = tmp_path / "rec"
    dest = ObjectStoragePath((folder / "y.wav").as_uri())
    with pytest.raises(ChecksumMismatch):
        write_create_only(dest, [BODY], expected_sha256="0" * 64)

    def broken() -> Iterator[bytes]:
        yield BODY
        raise ConnectionResetError("peer reset")

    with pytest.raises(ConnectionResetError):
        write_create_only(dest, broken())
    assert os.listdir(folder) == []


KILLED_WRITER = """
import sys, time
from airflow.sdk import ObjectStoragePath
from ocp_ingest.storage import write
write._ANONYMOUS_FILES = {anonymous}

def chunks():
    yield b"x" * 65536
    print("writing", flush=True)
    time.sleep(60)  # killed here, half-way through the recording
    yield b"never"

write.write_create_only(ObjectStoragePath({url!r}), chunks())
"""


def test_a_writer_killed_mid_recording_leaves_no_name_behind(tmp_path: Path, write_mode: str) -> None:
    folder = tmp_path / "rec"
    folder.mkdir()
    code = KILLED_WRITER.format(anonymous=write_mode == "anonymous", url=(folder / "z.wav").as_uri())
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    left = os.listdir(folder)
    assert "z.wav" not in left
    if write_mode == "anonymous":
        assert left == []  # the unnamed file died with its writer
    else:
        assert len(left) == 1 and left[0].startswith(".z.wav.") and left[0].endswith(".partial")


def test_a_hard_link_is_create_only_and_its_directory_synced(tmp_path: Path, synced_dirs: list) -> None:
    source = tmp_path / "landing.wav"
    source.write_bytes(BODY)
    dest = ObjectStoragePath((tmp_path / "rec" / "a.wav").as_uri())
    link_create_only(ObjectStoragePath(source.as_uri()), dest)
    assert dest.read_bytes() == BODY
    assert synced_dirs == [(str(tmp_path / "rec"), ["a.wav"])]
    with pytest.raises(FileExistsError):
        link_create_only(ObjectStoragePath(source.as_uri()), dest)


def test_a_batch_of_writes_makes_its_names_durable_with_one_fsync_per_directory(
    tmp_path: Path, write_mode: str, synced_dirs: list
) -> None:
    """``sync_name=False``: each file's bytes are durable at once, its name only once ``sync_names`` has
    fsynced its directory, which it does once for the whole batch."""
    dests = [
        ObjectStoragePath((tmp_path / "rec" / day / f"{n}.wav").as_uri())
        for day in ("01", "02")
        for n in range(3)
    ]
    for dest in dests:
        assert write_create_only(dest, [BODY], sync_name=False).created
    assert synced_dirs == []
    assert all(dest.read_bytes() == BODY for dest in dests)
    sync_names(dests)
    names = ["0.wav", "1.wav", "2.wav"]
    assert synced_dirs == [(str(tmp_path / "rec" / "01"), names), (str(tmp_path / "rec" / "02"), names)]
    # A repeat of a batch write finds its identical object: nothing new, and still nothing synced by it.
    assert not write_create_only(dests[0], [BODY], sync_name=False).created
    with pytest.raises(ObjectExists):
        write_create_only(dests[0], [b"other bytes"], sync_name=False)
    assert len(synced_dirs) == 2


def test_a_directory_removed_after_a_write_is_made_again(tmp_path: Path, write_mode: str) -> None:
    # The writer remembers the directories it made (no mkdir per write); one removed since is made again.
    folder = tmp_path / "rec" / "2026" / "12"
    first = ObjectStoragePath((folder / "a.wav").as_uri())
    assert write_create_only(first, [BODY]).created
    assert str(folder) in storage_write._KNOWN_DIRECTORIES
    (folder / "a.wav").unlink()
    folder.rmdir()
    (tmp_path / "rec" / "2026").rmdir()
    second = ObjectStoragePath((folder / "b.wav").as_uri())
    assert write_create_only(second, [BODY]).created and second.read_bytes() == BODY
    assert os.listdir(folder) == ["b.wav"]
