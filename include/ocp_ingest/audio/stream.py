"""A forward-only, hashing, buffered byte reader: the single pass every check runs on.

Every byte taken from the source goes through SHA-256 exactly once, whether a parser looks at it or just
skips it, so the hash of the whole input comes for free and the file is read only once. The buffer holds
at most what a parser asked to peek at plus one chunk, so memory stays flat for any input size.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO

CHUNK_SIZE = 1 << 20  # 1 MiB: large enough for sha256/IO throughput, small enough to keep memory flat


class LimitExceeded(Exception):
    """Raised when the source holds more than ``max_bytes``; the validator turns it into a reason."""


class ByteStream:
    """Reads ``raw`` in chunks, hashing everything it reads; parsers peek, read and skip through it."""

    def __init__(
        self,
        raw: BinaryIO,
        *,
        max_bytes: int | None = None,
        chunk_size: int = CHUNK_SIZE,
        hashing: bool = True,
    ) -> None:
        """``hashing=False``: the caller knows the SHA-256 already; :meth:`hexdigest` is then ``""``."""
        self._raw = raw
        self._max_bytes = max_bytes
        self._chunk_size = chunk_size
        self._hash = hashlib.sha256() if hashing else None
        self._buf = b""  # unconsumed bytes are self._buf[self._off:]
        self._off = 0
        self._consumed = 0
        self.bytes_read = 0
        self.eof = False
        # Set when the *source* failed (I/O error, wrong type): such errors are the caller's, not the bytes'.
        self.source_failed = False
        self._scratch: bytearray | None = None

    # -- position ---------------------------------------------------------------------------------------
    @property
    def pos(self) -> int:
        """Offset of the next unconsumed byte from where the stream started."""
        return self._consumed

    def hexdigest(self) -> str:
        return self._hash.hexdigest() if self._hash is not None else ""

    # -- raw reading --------------------------------------------------------------------------------------
    def _allowance(self, want: int) -> int:
        if self._max_bytes is None:
            return want
        # Read one byte past the limit so "exactly max_bytes" is still accepted.
        return min(want, self._max_bytes + 1 - self.bytes_read)

    def _note(self, n: int) -> None:
        self.bytes_read += n
        if self._max_bytes is not None and self.bytes_read > self._max_bytes:
            self.eof = True
            raise LimitExceeded

    def _read_raw(self, want: int) -> bytes:
        want = self._allowance(want)
        try:
            chunk = self._raw.read(want)
            if chunk and self._hash is not None:
                self._hash.update(chunk)
        except Exception:
            self.source_failed = True
            raise
        if not chunk:
            self.eof = True
            return b""
        self._note(len(chunk))
        return chunk

    def _fill(self, need: int) -> None:
        """Make at least ``need`` unconsumed bytes available, unless the source ends first."""
        avail = len(self._buf) - self._off
        if avail >= need or self.eof:
            return
        parts = [self._buf[self._off :]]
        while avail < need and not self.eof:
            chunk = self._read_raw(max(self._chunk_size, need - avail))
            parts.append(chunk)
            avail += len(chunk)
        self._buf = b"".join(parts)
        self._off = 0

    # -- parser API ---------------------------------------------------------------------------------------
    def peek(self, n: int) -> bytes:
        """Up to ``n`` bytes without consuming them (fewer only at end of input)."""
        self._fill(n)
        return self._buf[self._off : self._off + n]

    def view(self, n: int) -> tuple[bytes, int, int]:
        """Zero-copy peek: ``(buf, start, end)`` with the next up to ``n`` bytes at ``buf[start:end]``.

        Valid until the next call on the stream; indices are into ``buf``, not stream offsets.
        """
        self._fill(n)
        return self._buf, self._off, min(len(self._buf), self._off + n)

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes, consumed (fewer only at end of input)."""
        data = self.peek(n)
        self._off += len(data)
        self._consumed += len(data)
        return data

    def skip(self, n: int) -> int:
        """Consume ``n`` bytes without keeping them; returns how many there really were."""
        avail = len(self._buf) - self._off
        if n <= avail:
            self._off += n
            self._consumed += n
            return n
        # Past the buffer: stream straight from the source into a reused scratch buffer (no allocations).
        self._buf, self._off = b"", 0
        self._consumed += avail
        done = avail
        while done < n and not self.eof:
            got = self._read_into_scratch(n - done)
            if not got:
                break
            done += got
            self._consumed += got
        return done

    def drain(self) -> int:
        """Consume (and hash) everything that is left; returns the number of bytes skipped."""
        total = 0
        while True:
            got = self.skip(1 << 62)
            total += got
            if self.eof or not got:
                return total

    def _read_into_scratch(self, want: int) -> int:
        want = self._allowance(min(want, self._chunk_size))
        readinto = getattr(self._raw, "readinto", None)
        if readinto is None or want <= 0:
            return len(self._read_raw(want))
        if self._scratch is None:
            self._scratch = bytearray(self._chunk_size)
        view = memoryview(self._scratch)[:want]
        try:
            got = readinto(view)
            if got and self._hash is not None:
                self._hash.update(view[:got])
        except Exception:
            self.source_failed = True
            raise
        finally:
            view.release()
        if not got:
            self.eof = True
            return 0
        self._note(got)
        return got
