"""Fail fast on missing production resources: every bucket, the ledger table (or the local folders and the
SQLite file) the configuration names, checked before anything depends on them.

One place for the receiver's start-up, ``ocp-ingest check`` and the dev stacks: each resource is opened the
way the code opens it (the ledger through :func:`ocp_ingest.ledger.open_ledger`'s backend, storage roots
through the storage adapter) and asked whether it is there:

- S3: HeadBucket on each bucket (landing, quarantine, audit, and the recordings bucket of every LOB when
  ``OCP_INGEST_RECORDINGS_URL`` holds ``{lob}``), through the URL's Airflow connection;
- DynamoDB: DescribeTable: the table exists, is ACTIVE and has every index of ``dynamodb_table.json``;
- local disk: each root (or the folder it would be created in) is a writable directory; the SQLite ledger
  file opens as a ledger and it and its folder are writable.

A failure is one line naming the setting (the ``OCP_INGEST_*`` variable), the resource and the cause, never
a secret: ``OCP_INGEST_LANDING_URL: bucket 'ocp-landng' (connection aws_default): does not exist (S3
HeadBucket: 404)``. No Airflow import here: the storage adapter is the one door to object storage.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ocp_ingest.config import Settings, variable
from ocp_ingest.infrastructure import ResourceUnavailable

#: What the receiver writes: the ledger, landing, quarantine (conflicting audio) and the audit trail (see
#: :func:`receiver_needs`).
RECEIVER = ("ledger", "landing", "quarantine", "audit")
#: Everything a deployment names (the DAGs' tasks, the download pod and ``ocp-ingest check``).
EVERYTHING = ("ledger", "recordings", "landing", "quarantine", "audit")


@dataclass(frozen=True)
class Check:
    """One resource's state: ``cause`` is None when it is there and usable."""

    variable: str
    resource: str
    cause: str | None = None

    @property
    def ok(self) -> bool:
        return self.cause is None

    @property
    def line(self) -> str:
        return f"{self.variable}: {self.resource}: {self.cause or 'ok'}"


class PreflightError(RuntimeError):
    """A configured resource is missing, unreachable or refused; ``str()`` is one line."""

    def __init__(self, check: Check) -> None:
        super().__init__(check.line)
        self.check = check


def receiver_needs(settings: Settings) -> tuple[str, ...]:
    """What the receiver writes: the audit area only while audit events are on."""
    return RECEIVER if settings.audit_events else tuple(n for n in RECEIVER if n != "audit")


def check_ledger(settings: Settings, timeout_s: float = 30.0) -> Check:
    """The configured ledger backend, opened as :func:`open_ledger` opens it, then asked ``check()``."""
    if settings.ledger_backend == "dynamodb":
        from ocp_ingest.ledger.dynamodb import DynamoLedgerBackend

        resource = f"DynamoDB table '{settings.dynamodb_table}'"
        if settings.dynamodb_endpoint_url:
            resource += f" at {_no_userinfo(settings.dynamodb_endpoint_url)}"
        try:
            DynamoLedgerBackend(
                settings.dynamodb_table,
                region_name=settings.aws_region,
                endpoint_url=settings.dynamodb_endpoint_url,
            ).check(timeout_s)
        except ResourceUnavailable as exc:
            # Nothing answered: the endpoint is the suspect when one is configured, else the table's name.
            name = "dynamodb_endpoint_url" if exc.unreachable and settings.dynamodb_endpoint_url else None
            return Check(variable(name or "dynamodb_table"), resource, exc.cause)
        except Exception as exc:  # e.g. a malformed endpoint URL
            return Check(variable("dynamodb_table"), resource, f"{type(exc).__name__}: {exc}")
        return Check(variable("dynamodb_table"), resource)
    from ocp_ingest.ledger.sqlite import SqliteLedgerBackend

    resource = f"SQLite ledger {settings.ledger_sqlite_path}"
    try:
        backend = SqliteLedgerBackend(settings.ledger_sqlite_path, busy_timeout_s=min(5.0, timeout_s))
    except Exception as exc:  # cannot create the folder or open the file
        return Check(
            variable("ledger_sqlite_path"), resource, f"cannot be opened: {type(exc).__name__}: {exc}"
        )
    try:
        backend.check(timeout_s)
    except ResourceUnavailable as exc:
        return Check(variable("ledger_sqlite_path"), resource, exc.cause)
    finally:
        backend.close()
    return Check(variable("ledger_sqlite_path"), resource)


def storage_roots(settings: Settings, needs: Iterable[str] = EVERYTHING) -> list[tuple[str, str]]:
    """(variable, root URL) of every storage root ``needs`` names, the recordings root once per LOB when
    the URL selects a bucket (or folder) per LOB."""
    roots: list[tuple[str, str]] = []
    for purpose in needs:
        if purpose == "ledger":
            continue
        url = str(getattr(settings, f"{purpose}_url"))
        name = variable(f"{purpose}_url")
        if purpose == "recordings" and "{lob}" in url:
            from ocp_ingest.routing import LobRouter

            roots += [
                (name, url.replace("{lob}", lob)) for lob in LobRouter.load(settings.lob_routing_file).lobs
            ]
        else:
            roots.append((name, url))
    return roots


def check_storage(
    settings: Settings, needs: Iterable[str] = EVERYTHING, timeout_s: float = 30.0
) -> Iterator[Check]:
    """Each storage root of ``needs``, through the storage adapter (a bucket shared by roots: asked once)."""
    from ocp_ingest.storage.objects import check_root, describe_root

    seen: dict[str, str | None] = {}
    for name, url in storage_roots(settings, needs):
        try:
            resource = describe_root(_no_userinfo(url))
        except Exception as exc:
            yield Check(name, _no_userinfo(url), f"not a usable storage URL: {type(exc).__name__}: {exc}")
            continue
        key = resource.split(" (", 1)[0]  # the bucket or the directory
        if key not in seen:
            try:
                check_root(url, timeout_s=timeout_s)
                seen[key] = None
            except ResourceUnavailable as exc:
                seen[key] = exc.cause
        yield Check(name, resource, seen[key])


def checks(settings: Settings, needs: Iterable[str] = EVERYTHING, timeout_s: float = 30.0) -> Iterator[Check]:
    """Every resource ``needs`` names, one :class:`Check` each: the ledger first, then the storage roots."""
    needs = tuple(needs)
    if "ledger" in needs:
        yield check_ledger(settings, timeout_s)
    yield from check_storage(settings, needs, timeout_s)


def preflight(settings: Settings, needs: Iterable[str] = EVERYTHING, timeout_s: float = 30.0) -> list[Check]:
    """Check every resource ``needs`` names; the first that fails raises :class:`PreflightError`."""
    done = []
    for check in checks(settings, needs, timeout_s):
        if not check.ok:
            raise PreflightError(check)
        done.append(check)
    return done


def _no_userinfo(url: str) -> str:
    """A URL as it may be shown: a password in it (``user:secret@host``) is never printed."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        user, _, host = authority.rpartition("@")
        if ":" in user:
            authority = f"{user.split(':', 1)[0]}:***@{host}"
    return f"{scheme}{sep}{authority}{slash}{path}"
