"""Where the checkout is: the dev harness runs this project's dags/ and plugins/ from it."""

from __future__ import annotations

from pathlib import Path

from ocp_ingest.config import _project_root


def project_root() -> Path:
    """The checkout holding ``dags/`` (editable install), else the current directory."""
    root = _project_root() or Path.cwd()
    if not (root / "dags").is_dir():
        raise SystemExit(f"cannot find the project's dags/ folder under {root}; run from the checkout")
    return root
