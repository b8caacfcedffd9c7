"""LOB routing from CDR fields."""

from __future__ import annotations

import pytest

from ocp_ingest.routing import LobRouter


def test_packaged_routing_maps_flows_and_numbers_and_never_drops_a_call() -> None:
    router = LobRouter.load()
    assert router.lob_for(flow_name="retail_banking_main") == "retail"
    assert router.lob_for(flow_name="cards_support") == "cards"
    assert router.lob_for(flow_name="insurance_claims") == "insurance"
    assert router.lob_for(flow_name="mortgages") == "mortgages"
    assert router.lob_for(flow_name="other", destination_uri="tel:+34911000111") == "cards"
    assert router.lob_for(destination_uri="sip:+34912555000@pbx.example") == "insurance"
    assert router.lob_for() == "unrouted"
    assert router.lob_for(flow_name="unknown_flow", destination_uri="tel:+1555") == "unrouted"


def test_group_rule_and_order() -> None:
    router = LobRouter.from_toml(
        'default_lob = "other"\n'
        '[[rule]]\nlob = "vip"\nocp_group = "grp-vip"\nflow_prefix = "retail_"\n'
        '[[rule]]\nlob = "retail"\nflow_prefix = "retail_"\n'
    )
    assert router.lob_for(ocp_group="grp-vip", flow_name="retail_x") == "vip"
    assert router.lob_for(ocp_group="grp-1", flow_name="retail_x") == "retail"
    assert router.lobs == ("vip", "retail", "other")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('default_lob = "ok"\n[[rule]]\nlob = "../x"\nflow_prefix = "a"\n', "lob must match"),
        ('default_lob = "ok"\n[[rule]]\nlob = "a"\n', "needs at least one"),
        ('default_lob = "ok"\n[[rule]]\nlob = "a"\nflow = "x"\n', "unknown keys"),
        ("default_lob = ", "invalid LOB routing file"),
        ("", "lob must match"),
    ],
)
def test_bad_routing_files_fail_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LobRouter.from_toml(text)
