"""Signing of OCP pushes (Standard Webhooks style), shared by the simulator (sender) and the receiver.

Headers: ``webhook-id`` (message id), ``webhook-timestamp`` (unix seconds) and
``webhook-signature: v1,<base64(HMAC-SHA256(secret, signed_content))>`` (several space-separated
signatures are accepted on verify, as Standard Webhooks allows during secret rotation).

* Event pushes sign the raw body: ``f"{id}.{timestamp}.".encode() + body``.
* Audio pushes can be 1 GB and are streamed, so the receiver cannot hold the body to check a signature
  before writing it. They sign where the bytes go and the body's SHA-256 instead:
  ``f"{id}.{timestamp}.{filename}.{sha256hex}"``, where ``filename`` is the recording file name of the
  push's URL (``{ocp_group}~{account_id}~{dialog_timestamp}~{dialog_id}.wav``: everything that decides
  where the recording is stored), and send the checksum in ``x-ocp-content-sha256``; the receiver hashes
  while streaming and compares at the end. A signed push replayed to another file name does not verify.
  The file name holds no ``.`` but its ``.wav`` suffix and the digest is 64 hex characters, so the signed
  string splits back into its parts one way only.

Alternative (simpler tenants): a shared secret in ``x-ocp-shared-secret``. Every comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
CONTENT_SHA256_HEADER = "x-ocp-content-sha256"
SHARED_SECRET_HEADER = "x-ocp-shared-secret"
DEFAULT_TOLERANCE_S = 300.0

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")


class SignatureError(ValueError):
    """A push whose signature, timestamp or checksum header is missing or wrong (never echoes secrets)."""


def new_secret() -> str:
    """A fresh Standard Webhooks signing secret (``whsec_`` + base64 of 32 random bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    # Standard Webhooks secrets look like "whsec_<base64>"; plain strings are used as raw bytes.
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except ValueError:  # binascii.Error; never echo the secret itself
            raise ValueError("a 'whsec_' signing secret must be followed by standard base64") from None
    return secret.encode()


def _signature(secret: str | bytes, signed: bytes) -> str:
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_body(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """Signature header value for an event push (the raw body is signed)."""
    return _signature(secret, f"{msg_id}.{timestamp}.".encode() + body)


def sign_digest(secret: str | bytes, msg_id: str, timestamp: int, filename: str, sha256hex: str) -> str:
    """Signature header value for an audio push: its recording file name and body's SHA-256 are signed."""
    return _signature(secret, f"{msg_id}.{timestamp}.{filename}.{sha256hex.lower()}".encode())


def _signed_headers(sign: Callable[[str, int], str], msg_id: str | None, now: float | None) -> dict[str, str]:
    """The id, timestamp and signature headers; ``sign(msg_id, timestamp)`` makes the signature."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int(time.time() if now is None else now)
    return {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(msg_id, ts)}


def event_headers(
    secret: str | bytes, body: bytes, *, msg_id: str | None = None, now: float | None = None
) -> dict[str, str]:
    """All headers to sign an event push."""
    return _signed_headers(lambda m, ts: sign_body(secret, m, ts, body), msg_id, now)


def audio_headers(
    secret: str | bytes,
    filename: str,
    sha256hex: str,
    *,
    msg_id: str | None = None,
    now: float | None = None,
) -> dict[str, str]:
    """All headers to sign an audio push to recording ``filename`` whose body has SHA-256 ``sha256hex``."""
    headers = _signed_headers(lambda m, ts: sign_digest(secret, m, ts, filename, sha256hex), msg_id, now)
    return {**headers, CONTENT_SHA256_HEADER: sha256hex.lower()}


def _check_timestamp(raw: str | None, tolerance_s: float, now: float | None) -> int:
    # ASCII digits only: int() also takes signs, spaces, "_" and other scripts' digits.
    if raw is None or not _TIMESTAMP_RE.fullmatch(raw):
        raise SignatureError(f"missing or malformed {TIMESTAMP_HEADER} header")
    ts = int(raw)
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        # Outside the replay window: an old (or far-future) message is refused even if correctly signed.
        raise SignatureError(f"{TIMESTAMP_HEADER} outside the replay window of {tolerance_s:g} s")
    return ts


def _match(expected: str, header: str) -> bool:
    ok = False
    for candidate in header.split():
        # Compare every candidate (no early exit) so timing does not reveal which one matched.
        ok |= hmac.compare_digest(expected.encode(), candidate.encode())
    return ok


def _get(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; HTTP headers are not
        lowered = {k.lower(): v for k, v in headers.items()}
        value = lowered.get(name)
    return value


def verify_body(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> str:
    """Verify an event push; return its message id (for de-duplication) or raise SignatureError."""
    msg_id = _get(headers, ID_HEADER)
    if not msg_id:
        raise SignatureError(f"missing {ID_HEADER} header")
    ts = _check_timestamp(_get(headers, TIMESTAMP_HEADER), tolerance_s, now)
    if not _match(sign_body(secret, msg_id, ts, body), _get(headers, SIGNATURE_HEADER) or ""):
        raise SignatureError("signature does not match")
    return msg_id


def verify_digest(
    secret: str | bytes,
    headers: Mapping[str, str],
    filename: str,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> tuple[str, str]:
    """Verify an audio push to recording ``filename`` by its headers, before streaming its body.

    Returns ``(msg_id, sha256hex)``: the caller must hash the body while streaming and reject (and delete)
    it unless the digest equals ``sha256hex``.
    """
    msg_id = _get(headers, ID_HEADER)
    if not msg_id:
        raise SignatureError(f"missing {ID_HEADER} header")
    sha = (_get(headers, CONTENT_SHA256_HEADER) or "").lower()
    if not _SHA256_RE.fullmatch(sha):
        raise SignatureError(f"missing or malformed {CONTENT_SHA256_HEADER} header")
    ts = _check_timestamp(_get(headers, TIMESTAMP_HEADER), tolerance_s, now)
    if not _match(sign_digest(secret, msg_id, ts, filename, sha), _get(headers, SIGNATURE_HEADER) or ""):
        raise SignatureError("signature does not match")
    return msg_id, sha


def verify_shared_secret(secret: str | bytes, headers: Mapping[str, str]) -> None:
    """Check the shared-secret header (constant-time) or raise SignatureError."""
    given = (_get(headers, SHARED_SECRET_HEADER) or "").encode()
    expected = secret if isinstance(secret, bytes) else secret.encode()
    if not given or not hmac.compare_digest(given, expected):
        raise SignatureError(f"missing or wrong {SHARED_SECRET_HEADER} header")
