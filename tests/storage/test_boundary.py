"""The domain (shared core and both stages) reaches object storage through one adapter: only
``storage/objects.py`` imports Airflow."""

from __future__ import annotations

import ast
from pathlib import Path

import ocp_ingest

PACKAGE = Path(ocp_ingest.__file__).parent
CORE = [
    "storage",
    "ocp",
    "audit",
    "report",
    "audio",
    "ledger",
    "realtime",
    "reconcile",
    "ingest.py",
    "config.py",
    "ids.py",
]
ADAPTER = PACKAGE / "storage" / "objects.py"


def _airflow_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "airflow"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "airflow":
            found.append(node.module or "")
    return found


def test_only_the_storage_adapter_imports_airflow() -> None:
    files = []
    for name in CORE:
        path = PACKAGE / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    assert ADAPTER in files and len(files) > 20
    offenders = {str(p.relative_to(PACKAGE)): _airflow_imports(p) for p in files if p != ADAPTER}
    assert {name: imports for name, imports in offenders.items() if imports} == {}
    assert _airflow_imports(ADAPTER) == ["airflow.sdk"]
