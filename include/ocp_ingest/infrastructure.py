"""Faults of the platform (disk, network, object store, ledger), as opposed to faults of one call's data.

The difference decides what happens next: a platform fault is retried (the task by Airflow, a push by OCP
after a 503/507) and repeats nothing already done; a data fault is the call's own, and is quarantined and
flagged so it never blocks another call.
"""

from __future__ import annotations

import errno
import sqlite3

from ocp_ingest.ledger.base import LedgerContention


class ResourceUnavailable(RuntimeError):
    """A resource the configuration names (bucket, table, directory, ledger file) is missing, unreachable or
    refused: the platform's fault. The message is the cause in words (no secrets); ``unreachable`` tells
    the endpoint did not answer at all (then the endpoint is the suspect, not the name)."""

    def __init__(self, cause: str, *, unreachable: bool = False) -> None:
        super().__init__(cause)
        self.cause = cause
        self.unreachable = unreachable


def boto_unavailable(exc: BaseException, operation: str, credentials_from: str) -> ResourceUnavailable:
    """A botocore client-side error (no answer, no credentials, anything else below the HTTP answer) of
    ``operation`` in words; ``credentials_from`` says where credentials were looked for."""
    from botocore.exceptions import ConnectionError as EndpointUnreachable
    from botocore.exceptions import NoCredentialsError

    if isinstance(exc, EndpointUnreachable):
        return ResourceUnavailable(f"not reachable: {exc}", unreachable=True)
    if isinstance(exc, NoCredentialsError):
        return ResourceUnavailable(f"no AWS credentials found ({credentials_from})")
    return ResourceUnavailable(f"{operation} failed: {type(exc).__name__}: {exc}")


def _infrastructure_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, LedgerContention, ResourceUnavailable, sqlite3.Error]
    try:  # DynamoDB and S3 client errors; botocore is absent where only SQLite and disk are used
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        pass
    else:
        errors += [BotoCoreError, ClientError]
    return tuple(errors)


#: Exceptions that are the platform's fault, never one call's.
INFRASTRUCTURE_ERRORS = _infrastructure_errors()

#: Platform errors that mean our own code misused a resource (e.g. a closed ledger): a bug, not an outage.
_MISUSE: tuple[type[BaseException], ...] = (sqlite3.ProgrammingError, sqlite3.InterfaceError)


def is_outage(exc: BaseException) -> bool:
    """The platform is failing (full or unreachable storage, a locked or throttled ledger), so trying
    again later can succeed; a misuse of a resource by our code is a bug, not an outage."""
    return isinstance(exc, INFRASTRUCTURE_ERRORS) and not isinstance(exc, _MISUSE)


_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def storage_full(exc: BaseException) -> bool:
    """The disk (or quota) behind a write is full: nothing was kept, and only freeing space helps."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in _FULL:
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False
