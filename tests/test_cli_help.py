"""``ocp-ingest --help`` and every subcommand's ``--help`` import nothing heavy (so they answer at once).

Checked in a fresh interpreter: after building the parser and asking each (sub)command for its help,
none of the heavy modules is in ``sys.modules``. Timings belong in the README's measured figures. Every
script under ``benchmarks/`` answers ``--help`` too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, project_env

HEAVY = (
    "airflow",
    "pandas",
    "pyarrow",
    "boto3",
    "botocore",
    "fastapi",
    "uvicorn",
    "numpy",
    "httpx",
    "pydantic",
)

PROBE = r"""
import contextlib, io, json, sys
from ocp_ingest.cli import main, build_parser

def commands(parser, prefix=()):
    yield prefix
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield from commands(sub, (*prefix, name))

helped = {}
for command in list(commands(build_parser())):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([*command, "--help"])
        except SystemExit as exc:
            code = exc.code
    helped[" ".join(command)] = (code, "usage: ocp-ingest" in out.getvalue())
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print(json.dumps({"helped": helped, "heavy": heavy}))
"""


def test_every_help_answers_without_importing_anything_heavy() -> None:
    env = project_env()
    probe = f"HEAVY = {HEAVY!r}\n{PROBE}"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    result = json.loads(done.stdout)
    helped = result["helped"]
    expected = {"", "config", "ledger", "ledger pending", "validate", "receiver", "download-export", "audit"}
    expected |= {"report", "verify", "run", "demo", "simulator"}  # the dev harness is installed here
    assert expected <= set(helped)
    assert {c: v for c, v in helped.items() if v != [0, True]} == {}
    assert result["heavy"] == []


BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_every_benchmark_script_answers_help(script: Path) -> None:
    """Each benchmark imports and builds its parser: none is seen broken only when someone runs it."""
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, env=project_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: {script.name}")
