"""moto's server (S3, DynamoDB, KMS on one endpoint) as the dev stacks and the tests run it.

DynamoDB applies a conditional write or a transaction atomically; moto's threaded server checks the
conditions and then writes without a lock, so two racing transactions can both pass their checks. One lock
over moto's write paths gives the atomicity the ledger relies on (real DynamoDB and dynalite have it).
With several receivers and Celery workers writing the same calls, the distributed stack needs it as much
as the ledger's multi-process contract tests do.

``python -m ocp_ingest_dev.stack.moto_endpoint --port P`` runs moto's own server with that lock.
"""

from __future__ import annotations

import argparse
import functools
import threading
from typing import Any


def serialize_dynamodb_writes() -> None:
    """Put moto's DynamoDB write paths (this process's) under one re-entrant lock; idempotent."""
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend, "_ocp_ingest_serialized", False):
        return
    lock = threading.RLock()  # re-entrant: a transaction calls put_item/update_item itself
    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        @functools.wraps(original)
        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, locked)
    DynamoDBBackend._ocp_ingest_serialized = True  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto's server with atomic DynamoDB writes")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    serialize_dynamodb_writes()
    from moto import server

    server.main(["--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    main()
