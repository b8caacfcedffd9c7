"""Manifests: a run's call lists kept in storage, so XComs and pod arguments carry a reference, not calls.

A detection's pending calls and each export plan's dialog ids can be tens of thousands of entries: too
many for an XCom row or a pod argument (one argument is at most 128 KiB). They are written once to the
audit area (``reconciliation/manifests/{sha256}.json``), named by their content, so a retried or cleared
task writes the same object again (create-only: never overwritten) and a reader gets exactly what the
writer planned. What travels is ``{"manifest": url, "count": n}`` beside the small fields. Lists of at
most :data:`INLINE_MAX` entries travel inline (a run with little to do writes nothing), as do a dry run's
(it writes nothing at all).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ocp_ingest.storage import StorageLayout, write_create_only
from ocp_ingest.storage.objects import object_path

#: The key of a reference in a plan or detection dict, and of its entry count.
MANIFEST_KEY = "manifest"
COUNT_KEY = "count"


#: Entries that travel inline in the XCom instead of a manifest (a few KB).
INLINE_MAX = 100


def needs_manifest(entries: int, layout: StorageLayout | None) -> bool:
    """Whether a list of ``entries`` goes to a manifest: it is long, and writing is allowed (a layout)."""
    return layout is not None and entries > INLINE_MAX


class ManifestError(ValueError):
    """A manifest that cannot be read back as written (missing, altered, or not the one referenced)."""


def write_manifest(layout: StorageLayout, entries: list[Any]) -> dict[str, Any]:
    """Store ``entries`` (JSON values) once; returns the reference ``{"manifest": url, "count": n}``."""
    body = json.dumps(entries, separators=(",", ":"), sort_keys=True).encode()
    digest = hashlib.sha256(body).hexdigest()
    dest = layout.reconciliation_record_path("manifests", digest)
    write_create_only(dest, [body], precomputed_sha256=digest, expected_size=len(body))
    return {MANIFEST_KEY: str(dest), COUNT_KEY: len(entries)}


def read_manifest(reference: Mapping[str, Any]) -> list[Any]:
    """The entries a reference points to, checked against the name (their SHA-256) and the count."""
    url = str(reference[MANIFEST_KEY])
    path = object_path(url)
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"manifest {url} is missing") from None
    if path.stem != hashlib.sha256(body).hexdigest():
        raise ManifestError(f"manifest {url} does not hold what was written (SHA-256 differs)")
    entries = json.loads(body)
    if not isinstance(entries, list) or len(entries) != int(reference.get(COUNT_KEY, len(entries))):
        raise ManifestError(f"manifest {url} does not hold the {reference.get(COUNT_KEY)} entries referenced")
    return entries


def is_reference(data: Mapping[str, Any]) -> bool:
    return MANIFEST_KEY in data
