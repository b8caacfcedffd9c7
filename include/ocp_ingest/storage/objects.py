"""The one door to object storage: domain modules reach file:// and s3:// through this module only.

It wraps Airflow's ``ObjectStoragePath`` (fsspec-backed; an ``s3://conn_id@bucket`` URL takes its
credentials from that Airflow Connection), so the rest of the package names neither Airflow nor fsspec.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, TypeAlias

from airflow.sdk import ObjectStoragePath

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # typing.TypeIs from Python 3.13

#: A path on local disk (``file://``) or S3 (``s3://``): ``/`` joins, ``open``, ``exists``, ``iterdir``...
ObjectPath: TypeAlias = ObjectStoragePath

CHUNK_BYTES = 1024 * 1024


def object_path(url: str | ObjectPath) -> ObjectPath:
    """The object at ``url`` (a ``file://`` or ``s3://`` URL, or a path already)."""
    return url if isinstance(url, ObjectStoragePath) else ObjectStoragePath(url)


def is_object_path(value: object) -> TypeIs[ObjectStoragePath]:
    return isinstance(value, ObjectStoragePath)


def is_local(path: ObjectPath) -> bool:
    return path.protocol in ("file", "local", "")


def local_path(path: ObjectPath) -> str:
    """The filesystem path of a local object."""
    return path.path if path.path.startswith("/") else "/" + path.path


def iter_file(handle: IO[bytes], chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Read a binary file object in fixed chunks (flat memory for any size)."""
    while chunk := handle.read(chunk_bytes):
        yield chunk


def sha256_of(path: ObjectPath) -> tuple[str, int]:
    """SHA-256 and size of a stored object, streamed."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        for chunk in iter_file(handle):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
