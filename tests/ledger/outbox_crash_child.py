"""A process that drives calls store → mark → publish and kills itself with SIGKILL at one chosen step.

Run by ``test_audit_outbox.py``: ``python -m tests.ledger.outbox_crash_child <spec-json> <audit-url> <step>
<recordings-dir>``. Steps: ``store`` (after the 2nd Stored write committed), ``mark`` (after the batched
export_id marks committed), ``claim`` (after the publisher claimed its first file's events), ``parquet``
(after it wrote its first file), ``delete`` (after it deleted the first file's events from the outbox),
``none`` (no crash). The kill points wrap the real calls from outside: production code has no test hook.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

from ocp_ingest.audit import outbox
from ocp_ingest.audit.sink import AuditSink
from ocp_ingest.ledger import IngestionSource, Ledger
from ocp_ingest.ledger.transitions import CallIdentity, CdrEnd, ExportRequested, Stored
from tests.ledger.conftest import make_backend
from tests.ledger.test_contract import T0

IDENTITY = CallIdentity(dialog_group="DG1", ocp_group="grp-retail", account_id="acc1", lob="retail")
CALLS = 8
STORED_CALLS = 4


def call_id(n: int) -> str:
    return f"{0xC0DE0000 + n:032X}"


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main(spec: dict[str, str], audit_url: str, step: str, recordings: Path) -> None:
    backend = make_backend(spec)
    ledger = Ledger(backend, audit=AuditSink(audit_url, actor="crash-child"))
    phase = {"now": "setup", "count": 0}

    def after(name: str, real, threshold: int = 1):
        def wrapped(*args, **kwargs):
            result = real(*args, **kwargs)
            if phase["now"] == step == name:
                phase["count"] += 1
                if phase["count"] >= threshold:
                    die()
            return result

        return wrapped

    backend.write = after("store", backend.write, threshold=2)  # type: ignore[method-assign]
    backend.write_many = after("mark", backend.write_many)  # type: ignore[method-assign]
    backend.outbox_claim = after("claim", backend.outbox_claim)  # type: ignore[method-assign]
    backend.outbox_delete = after("delete", backend.outbox_delete)  # type: ignore[method-assign]
    outbox.write_create_only = after("parquet", outbox.write_create_only)  # type: ignore[assignment]

    ids = [call_id(n) for n in range(CALLS)]
    ledger.apply_many([CdrEnd(d, T0, 60_000, "NORMAL", IDENTITY) for d in ids])
    phase["now"] = "store"
    for d in ids[:STORED_CALLS]:
        body = f"audio of {d}".encode()
        path = recordings / f"{d}.wav"
        path.write_bytes(body)
        sha = hashlib.sha256(body).hexdigest()
        ledger.apply(Stored(d, path.as_uri(), sha, len(body), IngestionSource.REALTIME, "wav", 1.0))
    phase["now"] = "mark"
    ledger.apply_many([ExportRequested(d, "exp-crash") for d in ids[STORED_CALLS:]])
    phase["now"] = step  # publishing: claim, parquet, delete
    ledger.flush_audit()
    phase["now"] = "done"
    ledger.close()
    print("completed")


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4]))
