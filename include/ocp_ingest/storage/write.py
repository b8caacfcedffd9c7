"""The one create-only, checksummed writer of objects, for file:// and s3://.

Writes never overwrite and never leave a half-written object at the final key:
- local disk: stream into a file without a name (``O_TMPFILE``; elsewhere a hidden temporary name) in the
  target directory, fsync, then link it to the final name (atomic, fails if the name exists) and fsync
  the directory, so the name is durable before the ledger calls the recording stored;
- S3: a (multipart) upload in s3fs's exclusive mode, i.e. ``If-None-Match: *`` on the final request, so
  the object appears whole or not at all; a failed upload is aborted, never completed.
SHA-256 is computed over the bytes as they are written and checked against the expected value before
the object is committed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from ocp_ingest.storage.objects import ObjectPath, is_local, local_path, sha256_of


class StorageError(RuntimeError):
    """Base class for storage failures; messages never contain credentials."""


class ObjectExists(StorageError):
    """The key already holds an object with other bytes. It was left untouched."""

    def __init__(self, url: str, existing_sha256: str | None, new_sha256: str) -> None:
        super().__init__(f"{url} already exists with different content; it was not overwritten")
        self.url = url
        self.existing_sha256 = existing_sha256
        self.new_sha256 = new_sha256


class ChecksumMismatch(StorageError):
    """The streamed bytes do not match the expected SHA-256 or size; nothing was committed."""


@dataclass(frozen=True)
class StoredObject:
    url: str
    sha256: str
    size: int
    #: False when an identical object was already there (an idempotent repeat, not a new write).
    created: bool


def _anonymous_files_supported() -> bool:
    """O_TMPFILE (Linux) and /proc/self/fd, through which an anonymous file is given its name."""
    return hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")


_ANONYMOUS_FILES = _anonymous_files_supported()


def _sync_directory(dir_fd: int) -> None:
    """Make the new name durable: the ledger may call the recording stored as soon as this returns."""
    os.fsync(dir_fd)


#: Directories this process made or found: a write into one opens it without a makedirs first (a mkdir
#: and stats per component of a deep path, as costly as the write's own metadata work for a small file).
_KNOWN_DIRECTORIES: set[str] = set()
_KNOWN_DIRECTORIES_MAX = 10_000


def _open_directory(directory: str) -> int:
    """An fd of ``directory``, created (with its parents) if needed."""
    if directory in _KNOWN_DIRECTORIES:
        with contextlib.suppress(FileNotFoundError):  # else removed since: made again below
            return os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    os.makedirs(directory, exist_ok=True)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    if len(_KNOWN_DIRECTORIES) >= _KNOWN_DIRECTORIES_MAX:
        _KNOWN_DIRECTORIES.clear()
    _KNOWN_DIRECTORIES.add(directory)
    return dir_fd


@contextlib.contextmanager
def _naming_in_directory(dest: ObjectPath, sync: bool = True) -> Iterator[tuple[str, int, str]]:
    """``(directory, dir_fd, name)`` of a local ``dest``, its directory created if needed, for the body to
    give ``name`` to a file there; once it has, the directory is fsynced (unless ``sync`` is False: the
    caller's :func:`sync_names` will): the new name is durable."""
    directory, name = os.path.split(local_path(dest))
    dir_fd = _open_directory(directory)
    try:
        yield directory, dir_fd, name
        if sync:
            _sync_directory(dir_fd)
    finally:
        os.close(dir_fd)


def sync_names(dests: Iterable[ObjectPath]) -> None:
    """Make the names of local objects written with ``sync_name=False`` durable: each of their directories
    fsynced once. A batch of files in a few directories costs a few fsyncs instead of one per file. S3
    objects are durable when their write returns: nothing to do."""
    directories = {os.path.dirname(local_path(d)) for d in dests if is_local(d)}
    for directory in sorted(directories):
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _sync_directory(dir_fd)
        finally:
            os.close(dir_fd)


def _write_local(
    dest: ObjectPath, chunks: Iterable[bytes], digest: Any, check: Any, sync_name: bool = True
) -> int:
    """Write, verify and fsync the bytes in a file without a name, then give it its final name (create-only)
    and fsync the directory. Nothing ever appears under a name until it is whole and durable, and a crash
    leaves no partial file behind. Without O_TMPFILE: a hidden temporary name, linked and removed."""
    with _naming_in_directory(dest, sync_name) as (directory, dir_fd, name):
        fd = _open_anonymous(directory)
        if fd is None:
            return _write_via_temporary_name(dir_fd, name, chunks, digest, check)
        with open(fd, "wb", buffering=0) as handle:
            size = _write_all(handle, chunks, digest, check)
            # Passing dir fds makes CPython call linkat(AT_SYMLINK_FOLLOW), which names the open file
            # through /proc; FileExistsError if the name is taken.
            anonymous = f"/proc/self/fd/{fd}"
            os.link(anonymous, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=True)
        return size


def _open_anonymous(directory: str) -> int | None:
    """A new file without a name in ``directory``, or None where the kernel or filesystem has none."""
    if not _ANONYMOUS_FILES:
        return None
    try:
        return os.open(directory, os.O_TMPFILE | os.O_WRONLY, 0o666)
    except OSError:
        return None


def _write_via_temporary_name(
    dir_fd: int, name: str, chunks: Iterable[bytes], digest: Any, check: Any
) -> int:
    temp = f".{name}.{uuid.uuid4().hex}.partial"

    def in_directory(path: str, flags: int) -> int:
        return os.open(path, flags, 0o666, dir_fd=dir_fd)

    try:
        with open(temp, "xb", buffering=0, opener=in_directory) as handle:
            size = _write_all(handle, chunks, digest, check)
        os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # atomic create-only
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
    return size


def _write_all(handle: IO[bytes], chunks: Iterable[bytes], digest: Any, check: Any) -> int:
    """Every chunk written, hashed and counted; checked, then fsynced (before the file gets its name)."""
    size = 0
    for chunk in chunks:
        view = memoryview(chunk)
        while view:  # an unbuffered write may take less than it was given
            view = view[handle.write(view) :]
        digest.update(chunk)
        size += len(chunk)
    check(size)
    os.fsync(handle.fileno())
    return size


def link_create_only(source: ObjectPath, dest: ObjectPath) -> None:
    """Give an existing, durable local file (verified, never modified again) a second name, create-only:
    an atomic hard link, then the directory fsynced. Raises FileExistsError if ``dest`` is taken and
    another OSError (e.g. EXDEV) if the two are on different filesystems."""
    with _naming_in_directory(dest) as (_, dir_fd, name):
        os.link(local_path(source), name, dst_dir_fd=dir_fd)


def _write_s3(
    dest: ObjectPath, chunks: Iterable[bytes], digest: Any, check: Any, extra: dict[str, Any]
) -> int:
    handle = dest.fs.open(dest.path, "xb", **extra)
    size = 0
    try:
        for chunk in chunks:
            handle.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        check(size)
    except BaseException:
        handle.discard()  # abort the multipart upload: nothing becomes visible
        handle.closed = True
        raise
    handle.close()  # commits with If-None-Match: *; raises if another writer got there first
    return size


class _KnownDigest:
    """Stands in for hashlib when the caller hashed exactly these (immutable, in-memory) bytes already."""

    def __init__(self, hexdigest: str) -> None:
        self._hexdigest = hexdigest.lower()

    def update(self, data: Any) -> None:
        pass

    def hexdigest(self) -> str:
        return self._hexdigest


def write_create_only(
    dest: ObjectPath,
    chunks: Iterable[bytes],
    *,
    expected_sha256: str | None = None,
    precomputed_sha256: str | None = None,
    expected_size: int | None = None,
    sse_kms_key_id: str | None = None,
    metadata: dict[str, str] | None = None,
    object_lock: tuple[str, datetime] | None = None,
    sync_name: bool = True,
) -> StoredObject:
    """Stream ``chunks`` to ``dest`` if nothing is there yet; verify SHA-256 (and size) before commit.

    ``object_lock`` (mode, retain-until) sets S3 Object Lock retention on the new object (WORM); the bucket
    must have been created with Object Lock enabled. Ignored on local disk.

    Returns ``created=False`` when ``dest`` already holds exactly these bytes (a retried task or a
    duplicate push). Raises :class:`ObjectExists` when it holds other bytes (never overwritten) and
    :class:`ChecksumMismatch` when the stream does not match the expectation (nothing committed).

    ``precomputed_sha256``: the SHA-256 the caller computed over exactly the bytes of ``chunks`` (in memory,
    immutable): they are not hashed again, and that digest is what is checked and reported. The size is
    still counted and checked.

    ``sync_name=False`` (local disk, a batch): the bytes are durable when this returns, the new name not
    yet; the caller calls :func:`sync_names` over the batch before anything (the ledger) relies on it.
    """
    digest: Any = hashlib.sha256() if precomputed_sha256 is None else _KnownDigest(precomputed_sha256)

    def check(size: int) -> None:
        if expected_size is not None and size != expected_size:
            raise ChecksumMismatch(f"{dest}: got {size} bytes, expected {expected_size}")
        actual = digest.hexdigest()
        if expected_sha256 is not None and actual != expected_sha256.lower():
            raise ChecksumMismatch(f"{dest}: SHA-256 {actual} does not match expected {expected_sha256}")

    try:
        if is_local(dest):
            size = _write_local(dest, chunks, digest, check, sync_name)
        else:
            extra: dict[str, Any] = {"ServerSideEncryption": "aws:kms"}
            if sse_kms_key_id:
                extra["SSEKMSKeyId"] = sse_kms_key_id
            if metadata:
                extra["Metadata"] = dict(metadata)
            if object_lock is not None:
                extra["ObjectLockMode"], extra["ObjectLockRetainUntilDate"] = object_lock
            size = _write_s3(dest, chunks, digest, check, extra)
    except OSError as exc:
        if not _exists_error(exc):
            raise
        return _existing(dest, digest.hexdigest())
    return StoredObject(str(dest), digest.hexdigest(), size, created=True)


def _exists_error(exc: BaseException) -> bool:
    # Local: FileExistsError from os.link. S3: s3fs maps 412 PreconditionFailed to FileExistsError.
    return isinstance(exc, FileExistsError) or "PreconditionFailed" in str(exc) or "412" in str(exc)


def _existing(dest: ObjectPath, new_sha256: str) -> StoredObject:
    existing_sha256, size = sha256_of(dest)
    if existing_sha256 != new_sha256:
        raise ObjectExists(str(dest), existing_sha256, new_sha256)
    return StoredObject(str(dest), existing_sha256, size, created=False)
