"""Storage: where everything lives (:mod:`.layout`), the one create-only writer (:mod:`.write`) and the
object-storage adapter under both (:mod:`.objects`).

The names other modules import are re-exported here.
"""

from __future__ import annotations

from ocp_ingest.storage.layout import AUDIO_EXTENSIONS, StorageLayout
from ocp_ingest.storage.objects import (
    CHUNK_BYTES,
    ObjectPath,
    is_local,
    is_object_path,
    iter_file,
    local_path,
    object_path,
    sha256_of,
)
from ocp_ingest.storage.write import (
    ChecksumMismatch,
    ObjectExists,
    StorageError,
    StoredObject,
    link_create_only,
    sync_names,
    write_create_only,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "CHUNK_BYTES",
    "ChecksumMismatch",
    "ObjectExists",
    "ObjectPath",
    "StorageError",
    "StorageLayout",
    "StoredObject",
    "is_local",
    "is_object_path",
    "iter_file",
    "link_create_only",
    "local_path",
    "object_path",
    "sha256_of",
    "sync_names",
    "write_create_only",
]
