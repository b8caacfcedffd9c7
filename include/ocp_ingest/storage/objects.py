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


def describe_root(url: str) -> str:
    """A storage root in words for an operator: ``bucket 'b' (s3://conn@b/prefix)`` or ``directory /x``."""
    path = object_path(url)
    if is_local(path):
        return f"directory {local_path(path)}"
    return f"bucket '{path.bucket}' ({url})"


def check_root(url: str, *, timeout_s: float = 30.0) -> None:
    """Raise :class:`~ocp_ingest.infrastructure.ResourceUnavailable` unless the storage root at ``url`` can
    be written: on S3 its bucket exists and answers (HeadBucket, through the URL's Airflow connection); on
    disk the directory, or the nearest folder it would be created in, is a writable directory."""
    from ocp_ingest.infrastructure import ResourceUnavailable

    try:
        path = object_path(url)
    except Exception as exc:  # a malformed URL: the setting's fault
        raise ResourceUnavailable(f"not a usable storage URL: {type(exc).__name__}: {exc}") from None
    if is_local(path):
        _check_directory(local_path(path))
    else:
        _head_bucket(path, timeout_s)


def _check_directory(folder: str) -> None:
    import os

    from ocp_ingest.infrastructure import ResourceUnavailable

    probe = folder
    while not os.path.lexists(probe):  # a root not made yet is created on the first write: where?
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        what = "is not a directory" if probe == folder else f"cannot be created: {probe} is not a directory"
        raise ResourceUnavailable(what)
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "is not writable" if probe == folder else f"cannot be created: {probe} is not writable"
        raise ResourceUnavailable(f"{what} by uid {os.geteuid()}")


def _head_bucket(path: ObjectPath, timeout_s: float) -> None:
    """S3 HeadBucket on the root's bucket, called once (no s3fs retry loop) and bounded in time."""
    from botocore.exceptions import BotoCoreError, ClientError
    from fsspec.asyn import sync  # type: ignore[import-untyped]
    from fsspec.exceptions import FSTimeoutError  # type: ignore[import-untyped]

    from ocp_ingest.infrastructure import ResourceUnavailable, boto_unavailable

    bucket = path.bucket
    try:
        fs = path.fs

        async def head() -> None:
            await fs.set_session()
            client = await fs.get_s3(bucket)
            await client.head_bucket(Bucket=bucket)

        sync(fs.loop, head, timeout=timeout_s)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise ResourceUnavailable(f"does not exist (S3 HeadBucket: {code})") from None
        if code in ("403", "AccessDenied", "Forbidden"):
            raise ResourceUnavailable(
                f"access denied (S3 HeadBucket: {code}; another account's bucket, or no s3:ListBucket on it)"
            ) from None
        raise ResourceUnavailable(
            f"S3 HeadBucket failed: {code} {error.get('Message') or ''}".rstrip()
        ) from None
    except (FSTimeoutError, TimeoutError):
        raise ResourceUnavailable(f"no answer from S3 within {timeout_s:g} s", unreachable=True) from None
    except BotoCoreError as exc:
        raise boto_unavailable(exc, "S3 HeadBucket", "role, environment or connection") from None
    except Exception as exc:  # e.g. the Airflow connection is not defined
        raise ResourceUnavailable(f"{type(exc).__name__}: {exc}") from None
