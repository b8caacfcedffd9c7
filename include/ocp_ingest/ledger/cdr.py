"""The ledger rule for CDR events: which transition a CDR event stands for.

Both stages use it: the receiver for pushed events, reconciliation for the dialog_end CDRs of an export.
"""

from __future__ import annotations

from ocp_ingest.ledger.model import from_epoch_ms
from ocp_ingest.ledger.transitions import CallIdentity, CdrEnd, CdrStart, IvrEnd, Transition
from ocp_ingest.ocp.wire import CdrEvent, MessageType
from ocp_ingest.routing import LobRouter


def cdr_transition(event: CdrEvent, router: LobRouter) -> Transition | None:
    """The ledger transition a CDR event stands for (None for steps that change nothing)."""
    identity = CallIdentity(
        dialog_group=event.group,
        ocp_group=event.ocp_group,
        account_id=event.flow.account_id,
        flow_name=event.flow.name,
        destination_uri=event.destination_uri or None,
        lob=router.lob_for(
            ocp_group=event.ocp_group, flow_name=event.flow.name, destination_uri=event.destination_uri
        ),
    )
    at = from_epoch_ms(event.time)
    if event.message_type is MessageType.DIALOG_START:
        return CdrStart(event.dialog_id, at, identity)
    if event.message_type is MessageType.DIALOG_END:
        end_type = event.end_type.value if event.end_type is not None else None
        return CdrEnd(event.dialog_id, at, event.duration, end_type, identity)
    if event.is_ivr_end:
        return IvrEnd(event.dialog_id, at, event.duration, event.reason, identity)
    return None
