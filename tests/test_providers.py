"""The providers the production topology needs import together, at the versions constraints.txt pins.

requirements.txt names what the project installs; constraints.txt pins it and everything beneath (Airflow's
constraints approach); `make install` and the image install both. Pins that drift from what is installed,
or a celery that the celery provider cannot import, show here in a second or two, not on a Celery worker's
first start.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for requirement in _requirements(ROOT / "constraints.txt"):
        (specifier,) = requirement.specifier  # one exact pin per line
        assert specifier.operator == "==", requirement
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def _installed_closure(roots: list[Requirement]) -> set[str]:
    """The names of ``roots`` and of everything they require, as installed (markers and extras applied)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = list(roots)
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        for raw in importlib.metadata.requires(requirement.name) or []:
            dependency = Requirement(raw)
            extras = requirement.extras or {""}
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": e}) for e in extras):
                todo.append(dependency)
    return {name for name, _ in seen}


def test_every_requirement_is_installed_at_its_constraints_pin() -> None:
    """What requirements*.txt name is pinned alike in constraints.txt, and installed at that pin; so is
    everything they pull in (celery and kombu come through the celery provider, not by name)."""
    pins = _pins()
    named = [r for path in ("requirements.txt", "requirements-test.txt") for r in _requirements(ROOT / path)]
    assert [str(r) for r in named if not r.specifier.contains(pins.get(canonicalize_name(r.name), "0"))] == []
    installed = {name: importlib.metadata.version(name) for name in _installed_closure(named)}
    assert {n: (pins.get(n), v) for n, v in installed.items() if pins.get(n) != v} == {}
    assert {"celery", "kombu", "redis", "psycopg2-binary"} <= installed.keys()


def test_celery_stays_below_5_7() -> None:
    """celery 5.7.0 dropped ``celery.backends.database.retry``, which the celery provider 3.26.0 imports in
    ``celery_executor_utils``: with it, CeleryExecutor fails to import (ImportError, tried in a throw-away
    venv). Lift this bound together with a provider release that no longer imports it."""
    assert Version(_pins()["celery"]) < Version("5.7")
    assert Version(importlib.metadata.version("celery")) < Version("5.7")


def test_the_executor_and_hooks_of_the_production_topology_import() -> None:
    from airflow.executors.base_executor import BaseExecutor
    from airflow.executors.executor_loader import ExecutorLoader
    from airflow.executors.executor_utils import ExecutorName
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.providers.redis.hooks.redis import RedisHook

    # What AIRFLOW__CORE__EXECUTOR=CeleryExecutor loads, the way the scheduler loads it.
    name = ExecutorName(ExecutorLoader.executors["CeleryExecutor"], alias="CeleryExecutor")
    executor, _ = ExecutorLoader.import_executor_cls(name)
    assert issubclass(executor, BaseExecutor) and executor.__name__ == "CeleryExecutor"
    assert PostgresHook.conn_type == "postgres" and RedisHook.conn_type == "redis"
