"""Line-of-business routing from CDR fields, driven by a TOML file (``resources/lob_routing.toml``).

Every call gets a LOB: rules are tried in order and an unmatched call gets the default LOB, so it is
stored and visible in reports instead of being dropped.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ocp_ingest import ids

_CONDITIONS = ("ocp_group", "flow_prefix", "destination_prefix")


@dataclass(frozen=True)
class RoutingRule:
    lob: str
    ocp_group: str | None = None
    flow_prefix: str | None = None
    destination_prefix: str | None = None

    def matches(self, ocp_group: str | None, flow_name: str | None, destination: str | None) -> bool:
        if self.ocp_group is not None and ocp_group != self.ocp_group:
            return False
        if self.flow_prefix is not None and not (flow_name or "").startswith(self.flow_prefix):
            return False
        return self.destination_prefix is None or (destination or "").startswith(self.destination_prefix)


def _dialed_number(destination_uri: str | None) -> str | None:
    if not destination_uri:
        return None
    number = destination_uri.split(":", 1)[1] if ":" in destination_uri else destination_uri
    return number.split("@", 1)[0]


@dataclass(frozen=True)
class LobRouter:
    rules: tuple[RoutingRule, ...]
    default_lob: str

    @classmethod
    def from_toml(cls, text: str, source: str = "<routing>") -> LobRouter:
        try:
            data = tomllib.loads(text)
            default = ids.lob(data.get("default_lob"))
            rules = []
            for n, raw in enumerate(data.get("rule", []), start=1):
                unknown = set(raw) - {"lob", *_CONDITIONS}
                if unknown:
                    raise ValueError(f"rule {n}: unknown keys {sorted(unknown)}")
                if not any(raw.get(c) for c in _CONDITIONS):
                    raise ValueError(f"rule {n}: needs at least one of {_CONDITIONS}")
                rules.append(RoutingRule(lob=ids.lob(raw.get("lob")), **{c: raw.get(c) for c in _CONDITIONS}))
        except (tomllib.TOMLDecodeError, ValueError) as exc:
            raise ValueError(f"invalid LOB routing file {source}: {exc}") from exc
        return cls(tuple(rules), default)

    @classmethod
    def load(cls, path: Path | None = None) -> LobRouter:
        """The routing in ``path``, or the packaged default ``resources/lob_routing.toml``."""
        if path is not None:
            return cls.from_toml(Path(path).read_text(), str(path))
        text = resources.files("ocp_ingest").joinpath("resources/lob_routing.toml").read_text()
        return cls.from_toml(text, "resources/lob_routing.toml")

    def lob_for(
        self,
        *,
        ocp_group: str | None = None,
        flow_name: str | None = None,
        destination_uri: str | None = None,
    ) -> str:
        """The LOB of a call from its CDR fields (default LOB when no rule matches)."""
        number = _dialed_number(destination_uri)
        for rule in self.rules:
            if rule.matches(ocp_group, flow_name, number):
                return rule.lob
        return self.default_lob

    @property
    def lobs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*(r.lob for r in self.rules), self.default_lob]))
