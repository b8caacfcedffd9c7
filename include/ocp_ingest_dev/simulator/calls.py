"""Deterministic call generation: the calls OCP "made" in a window, and the CDR events each produces.

Flow names and dialed numbers map to several lines of business (retail banking, cards, insurance,
mortgages) so LOB routing has something to route; OCP groups host one or more flows.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from ocp_ingest.ocp import wire
from ocp_ingest_dev.simulator import audio


@dataclass(frozen=True)
class FlowSpec:
    name: str
    ocp_group: str
    numbers: tuple[str, ...]


FLOWS: tuple[FlowSpec, ...] = (
    FlowSpec("retail_banking_main", "ocp-banking", ("+34910000101", "+34910000102")),
    FlowSpec("mortgages", "ocp-banking", ("+34910000201",)),
    FlowSpec("cards_support", "ocp-cards", ("+34911000101", "+34911000102")),
    FlowSpec("insurance_claims", "ocp-insurance", ("+34912000101",)),
)
ACCOUNTS: dict[str, tuple[str, ...]] = {
    "ocp-banking": ("acc-1001", "acc-1002"),
    "ocp-cards": ("acc-2001",),
    "ocp-insurance": ("acc-3001",),
}
END_TYPES = (wire.EndType.NORMAL, wire.EndType.FAR_HUP, wire.EndType.NEAR_HUP, wire.EndType.TRANSFER)
END_WEIGHTS = (0.40, 0.25, 0.10, 0.25)
IVR_REASONS = ("self_service_complete", "caller_hangup", "no_input")


@dataclass(frozen=True)
class SimCall:
    """One generated call, with everything the ground truth and the exports need."""

    dialog_id: str
    dialog_group: str
    ocp_group: str
    account_id: str
    connection_id: str
    start: int  # epoch ms
    duration_ms: int
    end_type: wire.EndType
    flow_name: str
    destination_uri: str
    origin_uri: str
    has_recording: bool  # non-SIP calls have none
    ends_in_ivr: bool
    ivr_reason: str | None
    #: event ids in an opaque form (dots, slashes, about 90 characters) instead of ``evt_<hex>``
    opaque_event_ids: bool = False

    @property
    def end(self) -> int:
        return self.start + self.duration_ms

    @property
    def recording_filename(self) -> str:
        return wire.recording_filename(self.ocp_group, self.account_id, self.start, self.dialog_id)

    @property
    def recording_size(self) -> int:
        return audio.wav_size(self.dialog_id, self.duration_ms)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        del data["opaque_event_ids"]  # how the simulator writes its ids, not a fact of the call
        data["end_type"] = self.end_type.value
        data["end"] = self.end
        data["start_iso"] = datetime.fromtimestamp(self.start / 1000, UTC).isoformat()
        return data

    # -- CDR events ---------------------------------------------------------------------------------
    def _event(self, message_type: wire.MessageType, time_ms: int, tag: str, **extra: Any) -> wire.CdrEvent:
        # Stable per (call, event): a duplicate delivery carries the same event_id.
        digest = hashlib.sha256(f"{self.dialog_id}:{tag}".encode()).hexdigest()
        event_id = f"urn:ocp:event/{self.ocp_group}/{self.dialog_id}.{tag}.{digest[:32]}"
        if not self.opaque_event_ids:
            event_id = "evt_" + digest[:24]
        return wire.CdrEvent(
            message_type=message_type,
            event_id=event_id,
            id=self.dialog_id,
            group=self.dialog_group,
            ocp_group=self.ocp_group,
            connection_id=self.connection_id,
            time=time_ms,
            flow=wire.Flow(name=self.flow_name, account_id=self.account_id),
            destination_uri=self.destination_uri,
            origin_uri=self.origin_uri,
            **extra,
        )

    def dialog_start(self) -> wire.CdrEvent:
        return self._event(wire.MessageType.DIALOG_START, self.start, "start")

    def ivr_end(self) -> wire.CdrEvent | None:
        if not self.ends_in_ivr:
            return None
        return self._event(
            wire.MessageType.DIALOG_STEP, self.end, "ivr_end", step=wire.IVR_END_STEP, reason=self.ivr_reason
        )

    def dialog_end(self) -> wire.CdrEvent:
        return self._event(
            wire.MessageType.DIALOG_END, self.end, "end", end_type=self.end_type, duration=self.duration_ms
        )

    def events(self) -> list[wire.CdrEvent]:
        """In order: dialog_start, IVR end (if the call ended in the IVR), dialog_end."""
        ivr = self.ivr_end()
        return [self.dialog_start(), *([ivr] if ivr else []), self.dialog_end()]


def documented_group_id(call: SimCall) -> str:
    """The call's dialog group in OCP's documented form ``<40 hex>.<epoch ms>.<31 hex>`` (86 characters).

    Derived from values the call already has, so switching the form on draws nothing from the seed's
    random stream: the same seed gives the same calls either way.
    """
    digest = hashlib.sha256(call.dialog_group.encode()).hexdigest()
    return f"{hashlib.sha1(call.dialog_group.encode()).hexdigest()}.{call.start}.{digest[:31]}"


def _hex32(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032X}"


def _duration_ms(rng: random.Random, mean_s: float, min_s: float, max_s: float) -> int:
    # Call lengths are roughly log-normal: many short calls, a long tail.
    sigma = 0.8
    mu = math.log(mean_s) - sigma**2 / 2
    seconds = min(max_s, max(min_s, rng.lognormvariate(mu, sigma)))
    return int(seconds * 1000)


def generate_calls(
    *,
    seed: int,
    count: int,
    window_start: datetime,
    window_hours: float = 1.0,
    no_recording_share: float = 0.05,
    mean_duration_s: float = 180.0,
    min_duration_s: float = 5.0,
    max_duration_s: float = 3600.0,
    flows: tuple[FlowSpec, ...] = FLOWS,
    documented_group_ids: bool = False,
    opaque_event_ids: bool = False,
) -> list[SimCall]:
    """``count`` calls starting uniformly in the window, sorted by start; same seed, same calls.

    ``documented_group_ids`` gives dialog groups OCP's documented dotted form instead of 32 hex;
    ``opaque_event_ids`` gives events ids with dots and slashes (legal: OCP's ids are opaque).
    """
    rng = random.Random(seed)
    start_ms = int(window_start.timestamp() * 1000)
    span_ms = int(window_hours * 3600 * 1000)
    calls = []
    for _ in range(count):
        flow = rng.choice(flows)
        end_type = rng.choices(END_TYPES, END_WEIGHTS)[0]
        sip = rng.random() >= no_recording_share
        caller = f"+346{rng.randrange(10**8):08d}"
        ends_in_ivr = end_type is not wire.EndType.TRANSFER
        calls.append(
            SimCall(
                dialog_id=_hex32(rng),
                dialog_group=_hex32(rng),
                ocp_group=flow.ocp_group,
                account_id=rng.choice(ACCOUNTS.get(flow.ocp_group, ("acc-0001",))),
                connection_id=f"{rng.getrandbits(64):016x}",
                start=start_ms + rng.randrange(max(1, span_ms)),
                duration_ms=_duration_ms(rng, mean_duration_s, min_duration_s, max_duration_s),
                end_type=end_type,
                flow_name=flow.name,
                destination_uri=rng.choice(flow.numbers),
                # Only SIP integrations record; the origin shows the integration type.
                origin_uri=f"sip:{caller}@carrier.example" if sip else f"tel:{caller}",
                has_recording=sip,
                ends_in_ivr=ends_in_ivr,
                ivr_reason=rng.choice(IVR_REASONS) if ends_in_ivr else None,
            )
        )
    if documented_group_ids:
        calls = [replace(c, dialog_group=documented_group_id(c)) for c in calls]
    if opaque_event_ids:
        calls = [replace(c, opaque_event_ids=True) for c in calls]
    calls.sort(key=lambda c: c.start)
    return calls
