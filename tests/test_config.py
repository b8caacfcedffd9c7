"""Settings: one definition per setting, one-line errors, warnings for unknown names, provenance."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ocp_ingest import config
from ocp_ingest.cli import main
from ocp_ingest.config import (
    PREFIX,
    READ_ELSEWHERE,
    SOURCE_DEFAULT,
    SOURCE_DERIVED,
    SOURCE_ENV,
    Settings,
    SettingsError,
    known_variables,
)


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "_warned", set())
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)


def test_the_embedded_default_needs_no_variable_and_paths_derive_from_home(ingest_home: Path) -> None:
    settings = Settings.from_env()
    assert settings.home == ingest_home.resolve()
    assert settings.ledger_sqlite_path == ingest_home.resolve() / "ledger.sqlite3"
    assert settings.recordings_url == (ingest_home.resolve() / "recordings").as_uri()
    assert settings.audit_url == (ingest_home.resolve() / "audit").as_uri()
    assert (settings.ledger_backend, settings.pending_grace_s, settings.aws_region) == (
        "sqlite",
        900.0,
        "eu-west-1",
    )
    sources = settings.sources()
    assert sources[PREFIX + "HOME"] == SOURCE_ENV
    assert sources[PREFIX + "RECORDINGS_URL"] == SOURCE_DERIVED == f"derived from {PREFIX}HOME"
    assert sources[PREFIX + "PENDING_GRACE_S"] == SOURCE_DEFAULT


def test_values_come_from_the_environment_normalised_and_empty_means_unset(
    ingest_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCP_INGEST_PENDING_GRACE_S", "5")
    monkeypatch.setenv("OCP_INGEST_LEDGER_BACKEND", "DynamoDB")
    monkeypatch.setenv("OCP_INGEST_OBJECT_LOCK_MODE", "governance")
    monkeypatch.setenv("OCP_INGEST_AUDIT_EVENTS", "off")
    monkeypatch.setenv("OCP_INGEST_SSE_KMS_KEY_ID", "")
    monkeypatch.setenv("OCP_INGEST_RECORDINGS_URL", "s3://aws_default@recordings-{lob}")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    settings = Settings.from_env()
    assert settings.pending_grace_s == 5.0
    assert settings.ledger_backend == "dynamodb"
    assert settings.object_lock_mode == "GOVERNANCE"
    assert settings.audit_events is False
    assert settings.sse_kms_key_id is None
    assert settings.recordings_url == "s3://aws_default@recordings-{lob}"
    assert settings.aws_region == "us-east-1"
    sources = settings.sources()
    assert sources[PREFIX + "PENDING_GRACE_S"] == SOURCE_ENV
    assert sources[PREFIX + "RECORDINGS_URL"] == SOURCE_ENV
    assert sources["AWS_DEFAULT_REGION"] == SOURCE_ENV
    assert sources[PREFIX + "SSE_KMS_KEY_ID"] == SOURCE_DEFAULT


def test_settings_are_frozen_and_each_has_a_description() -> None:
    settings = Settings(home="/tmp/ocp-ingest-test")
    with pytest.raises(ValueError):
        settings.pending_grace_s = 1.0  # type: ignore[misc]
    assert all(f.description for f in Settings.model_fields.values())


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "PENDING_GRACE_S",
            "abc",
            "OCP_INGEST_PENDING_GRACE_S: expected a number of seconds >= 0, got 'abc'",
        ),
        ("AUDIT_BATCH_SIZE", "1.5", "OCP_INGEST_AUDIT_BATCH_SIZE: expected a whole number >= 1, got '1.5'"),
        ("AUDIT_EVENTS", "maybe", "OCP_INGEST_AUDIT_EVENTS: expected true or false, got 'maybe'"),
        (
            "LEDGER_BACKEND",
            "postgres",
            "OCP_INGEST_LEDGER_BACKEND: expected one of 'sqlite', 'dynamodb', got 'postgres'",
        ),
        (
            "RECORDINGS_URL",
            "http://x",
            "OCP_INGEST_RECORDINGS_URL: expected a file:// or s3:// URL, got 'http://x'",
        ),
        (
            "RECONCILIATION_MAX_CALLS_PER_PLAN",
            "-1",
            "OCP_INGEST_RECONCILIATION_MAX_CALLS_PER_PLAN: expected a whole number >= 0, got '-1'",
        ),
        (
            "RECONCILIATION_EXPORTS_PER_GROUP",
            "30",
            "OCP_INGEST_RECONCILIATION_EXPORTS_PER_GROUP: expected a whole number >= 1 and <= 24, got '30'",
        ),
        (
            "OBJECT_LOCK_DAYS",
            "{not json",
            "OCP_INGEST_OBJECT_LOCK_DAYS: expected a number of days or a JSON map",
        ),
        ("RETENTION_SAFETY_DAYS", "60", "OCP_INGEST_RETENTION_SAFETY_DAYS (60) must be smaller than"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable_and_the_expected_form(
    ingest_home: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(PREFIX + variable, value)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env()
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text
    assert isinstance(caught.value, ValueError)
    assert caught.value.__suppress_context__  # no pydantic traceback chained to it


def test_several_bad_values_give_one_line_each(ingest_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCP_INGEST_PENDING_GRACE_S", "abc")
    monkeypatch.setenv("OCP_INGEST_RECEIVER_PORT", "http")
    with pytest.raises(SettingsError) as caught:
        Settings.from_env()
    lines = str(caught.value).splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "OCP_INGEST_RECEIVER_PORT",
        "OCP_INGEST_PENDING_GRACE_S",
    ]


def test_an_unknown_variable_is_warned_once_with_the_closest_name(
    ingest_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OCP_INGEST_PENDING_GRACE", "5")
    for name in READ_ELSEWHERE:
        monkeypatch.setenv(name, "s3cr3t-value")
    with caplog.at_level(logging.WARNING, logger="ocp_ingest.config"):
        settings = Settings.from_env()
        Settings.from_env()
    assert settings.pending_grace_s == 900.0  # ignored, as the warning says
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "OCP_INGEST_PENDING_GRACE is not a setting and is ignored; did you mean OCP_INGEST_PENDING_GRACE_S?"
    ]
    assert known_variables() >= READ_ELSEWHERE
    assert "s3cr3t-value" not in "".join(Settings.from_env().describe().values())


def test_config_command_shows_each_value_and_its_source(
    ingest_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OCP_INGEST_PENDING_GRACE_S", "60")
    assert main(["config"]) == 0
    lines = {line.split("=")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(lines) == set(Settings.from_env().describe())
    assert lines["OCP_INGEST_PENDING_GRACE_S"].split() == [
        "OCP_INGEST_PENDING_GRACE_S=60.0",
        "#",
        "environment",
    ]
    assert lines["OCP_INGEST_MAX_RETRY_COUNT"].endswith("# default")
    assert lines["OCP_INGEST_LEDGER_SQLITE_PATH"].endswith("# derived from OCP_INGEST_HOME")


def test_the_cli_reports_a_bad_value_in_one_line_and_exits_2(
    ingest_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OCP_INGEST_PENDING_GRACE_S", "abc")
    assert main(["config"]) == 2
    assert main(["ledger", "pending"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["ocp-ingest: OCP_INGEST_PENDING_GRACE_S: expected a number of seconds >= 0, got 'abc'"] * 2
