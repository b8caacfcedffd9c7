"""Strict validation of identifiers that end up in storage keys and ledger keys.

Anything that becomes part of a key (dialog id, OCP group, LOB) is checked here and nowhere else, so a
path separator, ``..`` or a control byte can never reach a bucket key or a file name.
"""

from __future__ import annotations

import hashlib
import re

DIALOG_ID_RE = re.compile(r"^[0-9A-F]{32}$")
# Group and account ids are OCP-generated tokens; LOB names come from our own routing config.
TOKEN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
LOB_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
#: Readable part of an encoded opaque id, and the hex digits of its SHA-256 that make it unique.
OPAQUE_PREFIX_LEN = 40
OPAQUE_HASH_LEN = 32
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_-]+")


class InvalidIdentifier(ValueError):
    """An identifier that is not safe or not well-formed; the message says which field and why."""


def _describe(value: object) -> str:
    # repr() keeps control bytes visible in the message without echoing them raw into logs.
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def dialog_id(value: object) -> str:
    """Return the canonical dialog id (32 uppercase hex characters) or raise InvalidIdentifier.

    OCP documents dialog ids as uppercase hex; lowercase input is accepted and normalised so the same
    call never gets two ledger rows.
    """
    if not isinstance(value, str):
        raise InvalidIdentifier(f"dialog_id must be a string, got {type(value).__name__}")
    canonical = value.upper()
    if not DIALOG_ID_RE.fullmatch(canonical):
        raise InvalidIdentifier(f"dialog_id must be 32 hex characters, got {_describe(value)}")
    return canonical


def token(field: str, value: object) -> str:
    """Validate an OCP token such as an OCP group, dialog group or account id."""
    if not isinstance(value, str) or not TOKEN_RE.fullmatch(value):
        raise InvalidIdentifier(
            f"{field} must be 1-64 characters of [A-Za-z0-9_-] starting with a letter or digit, "
            f"got {_describe(value)}"
        )
    return value


def opaque_key(value: object) -> str:
    """A storage-key segment for an identifier someone else hands out (an OCP export id, a run id).

    Such ids are opaque: dots, slashes, ``..``, spaces, unicode, any length are all legal and must never
    fail a task nor reach a key as they are. A plain token (``TOKEN_RE``) is kept as it is, so keys
    written before stay the same; anything else becomes ``{safe prefix}.{sha256[:32]}``: readable,
    deterministic, at most 73 characters. The ``.`` never occurs in a token, so an encoded id cannot
    equal a kept one, and two encoded ids collide only if their 128-bit digests do.
    """
    if not isinstance(value, str) or not value:
        raise InvalidIdentifier(f"an opaque id must be a non-empty string, got {_describe(value)}")
    if TOKEN_RE.fullmatch(value):
        return value
    prefix = _UNSAFE_RE.sub("-", value).strip("-_")[:OPAQUE_PREFIX_LEN].rstrip("-_") or "id"
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:OPAQUE_HASH_LEN]
    return f"{prefix}.{digest}"


def ocp_group(value: object) -> str:
    """Validate an OCP group id (the unit OCP exports by)."""
    return token("ocp_group", value)


def lob(value: object) -> str:
    """Validate a line-of-business name (lowercase, used as a bucket suffix or key prefix)."""
    if not isinstance(value, str) or not LOB_RE.fullmatch(value):
        raise InvalidIdentifier(f"lob must match {LOB_RE.pattern}, got {_describe(value)}")
    return value
