"""A ledger on SQLite in a fresh home, for the domain rules that read or write it (no Airflow, no OCP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ocp_ingest.config import Settings
from ocp_ingest.ledger import Ledger, open_ledger


@pytest.fixture
def settings(ingest_home: Path) -> Settings:
    return Settings.from_env()


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    with open_ledger(settings) as opened:
        yield opened
