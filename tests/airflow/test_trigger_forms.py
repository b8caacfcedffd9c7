"""The trigger forms: Param schemas as the UI reads them, and Airflow's own validation of a run's conf."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocp_ingest.airflow.params import lob_choices, reconciliation_params, report_params
from ocp_ingest.config import Settings


def _ui_required(schema: dict) -> bool:
    """The UI's rule (FlexibleForm): required unless the type includes "null"."""
    kind = schema.get("type")
    return bool(kind) and (not isinstance(kind, list) or "null" not in kind)


def _resolve(param, value):
    from airflow.serialization.definitions.param import SerializedParam

    return SerializedParam(value, param.description, **param.schema).resolve(raises=True)


@pytest.fixture
def settings(ingest_home: Path) -> Settings:
    return Settings.from_env()


def test_reconciliation_params_have_titles_pickers_and_optional_lists(settings: Settings) -> None:
    params = reconciliation_params(settings)
    for name, param in params.items():
        assert param.schema.get("title") and param.description, name
        assert not _ui_required(param.schema) or name == "dry_run", name  # a boolean is a switch
    assert params["window_start"].schema["format"] == "date-time"
    assert params["window_end"].schema["format"] == "date-time"
    assert params["lobs"].schema["examples"] == sorted(
        ["retail", "cards", "insurance", "mortgages", "unrouted"]
    )  # the packaged routing file's LOBs: the UI's multi-select
    assert params["lobs"].schema["items"] == {"type": "string", "minLength": 1}
    assert "examples" not in params["ocp_groups"].schema and "Known" not in params["ocp_groups"].description
    for name, param in params.items():
        param.resolve()  # the defaults are valid (a scheduled run validates them too)
        assert param.value == {"ocp_groups": [], "lobs": []}.get(name, param.value)


def test_reconciliation_params_accept_iso_dates_and_refuse_words(settings: Settings) -> None:
    params = reconciliation_params(settings)
    assert _resolve(params["window_start"], "2026-11-24T09:00:00.000Z")  # what the UI's picker sends
    assert _resolve(params["window_end"], "2026-11-24T10:00:00+01:00")
    for bad in ("yesterday", "2026-11-24 09:00", "2026-13-01T00:00:00Z"):
        with pytest.raises(Exception, match="date-time"):
            _resolve(params["window_start"], bad)
    assert _resolve(params["lobs"], None) is None  # cleared in the form: all LOBs
    assert _resolve(params["lobs"], ["cards", "custom-lob"]) == ["cards", "custom-lob"]
    with pytest.raises(Exception, match="is not of type"):
        _resolve(params["lobs"], "cards")
    with pytest.raises(Exception, match=r"minimum|less than"):
        _resolve(params["grace_s"], -1)


def test_choices_come_from_the_configured_routing_file_and_sweep_groups(
    ingest_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    routing = tmp_path / "routing.toml"
    routing.write_text('default_lob = "other"\n[[rule]]\nlob = "loans"\nocp_group = "ocp-loans"\n')
    monkeypatch.setenv("OCP_INGEST_LOB_ROUTING_FILE", str(routing))
    monkeypatch.setenv("OCP_INGEST_SWEEP_OCP_GROUPS", "ocp-banking")
    params = reconciliation_params(Settings.from_env())
    assert params["lobs"].schema["examples"] == ["loans", "other"]
    assert "Known: ocp-banking, ocp-loans." in params["ocp_groups"].description
    assert "examples" not in params["ocp_groups"].schema  # free text: the tenant may have other groups

    monkeypatch.setenv("OCP_INGEST_LOB_ROUTING_FILE", str(tmp_path / "missing.toml"))
    assert lob_choices(Settings.from_env()) == []  # the DAG still imports; the form offers free text


def test_report_date_is_a_date_picker() -> None:
    param = report_params()["date"]
    assert param.schema["format"] == "date" and not _ui_required(param.schema)
    assert _resolve(param, "2026-11-24") == "2026-11-24"
    with pytest.raises(Exception, match="date"):
        _resolve(param, "yesterday")
