"""The deployment artifacts stay consistent with the code (docker cannot run here, so this is what we check).

docker-compose.airflow.yml: parses; has every Airflow 3 component, two Celery workers and two receivers;
every ``ocp-ingest`` subcommand it runs exists; every OCP_INGEST_* name is one the code reads, and the values
pass ``Settings`` validation; every mounted host path exists; the image is the one the KubernetesPodOperator
defaults to. Parity with the official Airflow 3 compose file: every long-running service has a health check
(Airflow's the official ones) and ``restart: always``; the Airflow components share a logs volume; no secret
has a default (each is ``${X:?message}``, documented in the header); every ``AIRFLOW__*`` it sets is a real
Airflow option; the login is documented; both workers agree (command, env, check) but each has its own
scratch. The load balancer's haproxy config passes ``haproxy -c`` and balances over exactly the receivers.

Dockerfile: the base image matches the pinned Airflow, what it copies exists, and the package it installs
(built here from what it copies) is the production package alone, whose ``ocp-ingest --help`` works without
the dev harness.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import setuptools
import yaml

from ocp_ingest.cli import build_parser
from ocp_ingest.config import PREFIX, Settings, known_variables

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.airflow.yml"
DOCKERFILE = ROOT / "Dockerfile"
HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
WORKERS = ["airflow-worker-1", "airflow-worker-2"]
RECEIVERS = ["receiver-1", "receiver-2"]
#: ``${NAME:?message}``: compose refuses to start while NAME is unset or empty.
REQUIRED = re.compile(r"\$\{([A-Z0-9_]+):\?[^}]+\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _words(value: Any) -> str:
    if value is None:
        return ""
    return " ".join(value) if isinstance(value, list) else str(value)


def _command_line(service: dict[str, Any]) -> str:
    return f"{_words(service.get('entrypoint'))} {_words(service.get('command'))}".strip()


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _resolve(value: str) -> str:
    """Compose interpolation with the file's own defaults: ${X:-default} -> default, ${X:?err} -> a dummy."""
    value = re.sub(r"\$\{[A-Z0-9_]+:\?[^}]*\}", "dummy", value)
    # Innermost-first so a default that is itself JSON with braces survives.
    match = re.fullmatch(r"\$\{[A-Z0-9_]+:-(.*)\}", value, flags=re.S)
    return match.group(1) if match else value


def known_setting_names() -> set[str]:
    """Every OCP_INGEST_* name: Settings fields plus the ones read directly (secrets, simulator)."""
    names = {PREFIX + name.upper() for name in Settings.model_fields if name != "aws_region"}
    for path in (ROOT / "include").rglob("*.py"):  # the simulator (dev harness) reads its own too
        text = path.read_text()
        names |= set(re.findall(r"\bOCP_INGEST_[A-Z0-9_]*[A-Z0-9]", text))
        names |= {PREFIX + n for n in re.findall(r'PREFIX \+ "([A-Z0-9_]+)"', text)}
    return names


def _subcommands(parser: Any) -> dict[str, Any]:
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            return dict(action.choices)
    return {}


def ocp_ingest_invocations(text: str) -> Iterator[list[str]]:
    for match in re.finditer(r"\bocp-ingest\s+([a-z][a-z-]*)(?:\s+([a-z][a-z-]*))?", text):
        yield [w for w in match.groups() if w]


def test_compose_has_every_airflow_3_component_and_the_supporting_services(compose: dict) -> None:
    services = compose["services"]
    commands = {name: _command_line(s) for name, s in services.items()}
    for component in ("api-server", "scheduler", "dag-processor", "triggerer", "celery worker"):
        assert any(cmd == component for cmd in commands.values()), component
    assert "airflow db migrate" in commands["airflow-init"]
    assert any(s.get("image", "").startswith("postgres:") for s in services.values())
    assert any(s.get("image", "").startswith("redis:") for s in services.values())
    assert any(s.get("image", "").startswith(("motoserver/moto", "minio/minio")) for s in services.values())
    # The topology: two Celery workers, two receivers behind a load balancer.
    assert [n for n, c in commands.items() if c == "celery worker"] == WORKERS
    assert [n for n, c in commands.items() if c.startswith("ocp-ingest receiver")] == RECEIVERS
    for worker in WORKERS:
        worker_env = _env(services[worker])
        assert worker_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert worker_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith(
            "http://airflow-apiserver:8080/"
        )


def test_every_ocp_ingest_subcommand_used_exists(compose: dict) -> None:
    top = _subcommands(build_parser())
    used = [inv for s in compose["services"].values() for inv in ocp_ingest_invocations(_command_line(s))]
    used += list(ocp_ingest_invocations(DOCKERFILE.read_text()))
    assert {inv[0] for inv in used} >= {"receiver", "ledger", "simulator", "config"}
    for invocation in used:
        if invocation[0] == "--help":
            continue
        assert invocation[0] in top, f"ocp-ingest {invocation[0]} is not a subcommand"
        nested = _subcommands(top[invocation[0]])
        if nested and len(invocation) > 1:
            assert invocation[1] in nested, f"ocp-ingest {' '.join(invocation)} is not a subcommand"


def test_every_ocp_ingest_variable_is_a_real_setting_and_the_values_validate(
    compose: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = known_setting_names()
    assert {
        "OCP_INGEST_RECEIVER_SECRET",
        "OCP_INGEST_DOWNLOAD_MODE",
        "OCP_INGEST_PUSH_SIGNING_SECRET",
    } <= known
    used = set(re.findall(r"\bOCP_INGEST_[A-Z0-9_]*[A-Z0-9]", COMPOSE.read_text()))
    used |= set(re.findall(r"\bOCP_INGEST_[A-Z0-9_]*[A-Z0-9]", DOCKERFILE.read_text()))
    assert used - known == set(), f"unknown OCP_INGEST_* names: {sorted(used - known)}"
    # What config warns about as unknown is exactly what the code does not read.
    assert known_variables() == known

    for name, service in compose["services"].items():
        env = {k: _resolve(v) for k, v in _env(service).items()}
        if not any(k.startswith(PREFIX) for k in env) or name == "ocp-simulator":
            continue
        for key in [k for k in list(os.environ) if k.startswith(PREFIX)]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith(PREFIX):
                monkeypatch.setenv(key, value)
        monkeypatch.setenv(
            "OCP_INGEST_LOB_ROUTING_FILE", str(ROOT / "include/ocp_ingest/resources/lob_routing.toml")
        )
        settings = Settings.from_env()  # raises on a value the code would reject
        assert settings.ledger_backend == "dynamodb", name
        assert settings.recordings_url.startswith("s3://aws_default@"), name
        for conn in ("AIRFLOW_CONN_AWS_DEFAULT", "AIRFLOW_CONN_OCP_DEFAULT"):
            if conn in env and not REQUIRED.fullmatch(_env(service)[conn]):
                assert json.loads(env[conn])["conn_type"] in ("aws", "ocp"), (name, conn)


def test_mounted_paths_exist_and_the_image_is_the_download_pods(compose: dict) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
        if service.get("build") is not None:
            context = service["build"] if isinstance(service["build"], str) else service["build"]["context"]
            assert (ROOT / context / "Dockerfile").is_file()
    targets = {
        s.get("image"): (s["build"].get("target") if isinstance(s["build"], dict) else None)
        for s in compose["services"].values()
        if s.get("build") is not None
    }
    # The KubernetesPodOperator's default image (OCP_INGEST_IMAGE) is what compose builds from the
    # Dockerfile's default target; only the simulator takes the dev stage, under its own image name.
    default_image = Settings.model_fields["image"].default
    assert targets == {default_image: None, "ocp-ingest-dev:latest": "dev"}
    assert compose["services"]["ocp-simulator"]["image"] == "ocp-ingest-dev:latest"


def one_shot_services(compose: dict[str, Any]) -> set[str]:
    """Services others wait for to *complete* (init steps): they run once, so no restart and no health."""
    return {
        dependency
        for service in compose["services"].values()
        for dependency, condition in (service.get("depends_on") or {}).items()
        if isinstance(condition, dict) and condition.get("condition") == "service_completed_successfully"
    }


def _healthcheck(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    return _words(test)


def test_every_long_running_service_has_a_health_check_and_restarts_always(compose: dict) -> None:
    one_shot = one_shot_services(compose)
    assert one_shot == {"airflow-volumes", "airflow-init"}
    for name, service in compose["services"].items():
        if name in one_shot:
            assert service.get("restart", "no") == "no", name
            continue
        check = _healthcheck(service)
        assert check.startswith(("CMD ", "CMD-SHELL ")), f"{name} has no health check"
        assert not service["healthcheck"].get("disable"), name
        assert service.get("restart") == "always", f"{name}: restart {service.get('restart')!r}"


def test_airflow_health_checks_are_the_official_ones(compose: dict) -> None:
    services = compose["services"]
    by_command = {_command_line(s): n for n, s in services.items()}
    api = services[by_command["api-server"]]
    assert "http://localhost:8080/api/v2/monitor/health" in _healthcheck(api)
    # The scheduler's health-check server is on, at the port the check asks.
    scheduler = services[by_command["scheduler"]]
    assert _env(scheduler)["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"].lower() == "true"
    port = _env(scheduler).get("AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT", "8974")
    assert f"http://localhost:{port}/health" in _healthcheck(scheduler)
    for command, job in (("dag-processor", "DagProcessorJob"), ("triggerer", "TriggererJob")):
        check = _healthcheck(services[by_command[command]])
        assert f'airflow jobs check --job-type {job} --hostname "$${{HOSTNAME}}"' in check, command
    for worker in WORKERS:
        assert (
            "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping "
            '-d "celery@$${HOSTNAME}"' in _healthcheck(services[worker])
        )
    for receiver in RECEIVERS:
        port = _command_line(services[receiver]).split("--port")[1].split()[0]
        assert f"http://localhost:{port}/healthz" in _healthcheck(services[receiver])


def _airflow_components(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if "AIRFLOW__CORE__EXECUTOR" in _env(s)}


def test_the_airflow_components_share_one_logs_volume(compose: dict) -> None:
    components = _airflow_components(compose)
    assert set(components) >= {"airflow-apiserver", "airflow-scheduler", "airflow-init", *WORKERS}
    assert "airflow-logs" in compose["volumes"]
    for name, service in components.items():
        assert "airflow-logs:/opt/airflow/logs" in service["volumes"], name


def test_no_secret_has_a_default_and_each_is_documented(compose: dict) -> None:
    text = COMPOSE.read_text()
    header = text.split("\nx-", 1)[0]
    required: set[str] = set()
    for name, service in compose["services"].items():  # with the x- blocks merged in
        for key, value in _env(service).items():
            # A *_FILE names where a secret lives (a path), not the secret.
            if re.search(r"SECRET|PASSWORD|FERNET_KEY", key) and not key.endswith("_FILE"):
                match = REQUIRED.fullmatch(value)
                assert match, f"{name}: {key} must be ${{X:?message}}, not {value!r}"
                required.add(match.group(1))
            # A password inside a URL or a connection is required too, never a literal.
            for url_password in re.findall(r"://[^:/@\s]+:(\$\{[^}]*\}|[^@\s]+)@", value):
                assert REQUIRED.fullmatch(url_password), f"{name}: {key} has a literal password"
            if key.startswith("AIRFLOW_CONN_") and "password" in value.lower():
                assert REQUIRED.fullmatch(value), f"{name}: {key} carries a password by default"
    assert required >= {
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "POSTGRES_PASSWORD",
        "OCP_INGEST_RECEIVER_SECRET",
    }
    # No interpolation anywhere gives a secret-looking variable a default.
    for variable, operator, default in re.findall(r"\$\{([A-Z0-9_]+)(:?[-?])([^}]*)\}", text):
        if re.search(r"SECRET|PASSWORD|FERNET|_CONN_|AWS_ACCESS_KEY_ID", variable):
            assert operator == ":?", f"${{{variable}{operator}{default}}} gives it a default"
        if operator != ":?":  # a default, not an error message
            assert not re.search(r"password|secret|whsec_|change-me", default, flags=re.I), variable
    # Every required variable is named in the header, where the file says how to run it.
    for variable in set(REQUIRED.findall(text)):
        assert variable in header, f"{variable} is required but not documented in the header"


def test_every_airflow_option_set_is_a_real_airflow_3_option(compose: dict) -> None:
    from airflow.configuration import conf

    description = conf.configuration_description
    names = {key for _, s in compose["services"].items() for key in _env(s) if key.startswith("AIRFLOW__")}
    assert names
    for name in names:
        section, option = name.removeprefix("AIRFLOW__").lower().split("__", 1)
        assert option in description.get(section, {}).get("options", {}), f"{name} is not an Airflow option"


def test_the_login_is_the_simple_auth_manager_with_its_passwords_on_a_volume(compose: dict) -> None:
    api = compose["services"]["airflow-apiserver"]
    env = _env(api)
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("simple_auth_manager.SimpleAuthManager")
    users = _resolve(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"])
    assert all(user.split(":")[1] in ("viewer", "user", "op", "admin") for user in users.split(","))
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    mounts = {v.split(":")[1]: v.split(":")[0] for v in api["volumes"]}
    assert mounts.get(str(passwords.parent)) in compose["volumes"], "the passwords file is not on a volume"
    header = COMPOSE.read_text().split("\nx-", 1)[0]
    assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS" in header and str(passwords) in header


def test_both_workers_run_the_same_command_and_env_each_with_its_own_scratch(compose: dict) -> None:
    services = compose["services"]
    first, second = (services[w] for w in WORKERS)
    for key in ("image", "command", "entrypoint", "environment", "healthcheck", "depends_on", "restart"):
        assert first.get(key) == second.get(key), key
    scratch: dict[str, str] = {}
    for worker in WORKERS:
        service = services[worker]
        assert service["hostname"] == worker  # the name the api-server reaches its log server by
        tmpdir = _env(service)["TMPDIR"]
        (source,) = [v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == tmpdir]
        assert source in compose["volumes"], worker
        scratch[worker] = source
        others = [v for v in service["volumes"] if v.split(":")[1] != tmpdir]
        assert others == [v for v in services[WORKERS[0]]["volumes"] if v.split(":")[1] != tmpdir]
    assert len(set(scratch.values())) == len(WORKERS), scratch
    # No other long-running service mounts a worker's scratch (the one-shot chown step aside).
    for name, service in services.items():
        if name not in WORKERS and name not in one_shot_services(compose):
            assert not {v.split(":")[0] for v in service.get("volumes", [])} & set(scratch.values()), name


def _haproxy() -> str:
    binary = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if binary is None:
        pytest.skip("haproxy is not installed (Debian package haproxy)")
    return binary


def test_the_load_balancer_config_is_valid_haproxy_over_both_receivers(compose: dict) -> None:
    services = compose["services"]
    (balancer,) = [n for n, s in services.items() if str(s.get("image", "")).startswith("haproxy:")]
    lb = services[balancer]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in lb["volumes"]}
    assert (ROOT / mounted["/usr/local/etc/haproxy/haproxy.cfg"]).resolve() == HAPROXY_CFG
    # The config is what haproxy accepts; receivers' names need not resolve here (init-addr none).
    binary = _haproxy()
    done = subprocess.run([binary, "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "Configuration file is valid" in output, output
    warnings = [line for line in output.splitlines() if "[WARNING]" in line or "[ALERT]" in line]
    assert all("could not resolve address" in w for w in warnings), warnings
    # The image runs the haproxy version the config was checked with.
    version = re.search(
        r"version (\d+\.\d+)", subprocess.run([binary, "-v"], capture_output=True, text=True).stdout
    )
    assert version and lb["image"].startswith(f"haproxy:{version.group(1)}"), (lb["image"], version)

    config = HAPROXY_CFG.read_text()
    backend = re.search(r"^backend (\S+)\n((?:[ \t]+.*\n|\n)*)", config, flags=re.M)
    assert backend, "no backend"
    body = backend.group(2)
    assert re.search(r"^\s+balance roundrobin$", body, flags=re.M)
    assert re.search(r"^\s+option httpchk GET /healthz$", body, flags=re.M)
    servers = re.findall(r"^\s+server \S+ ([\w.-]+):(\d+)", body, flags=re.M)
    receivers = {(name, _command_line(services[name]).split("--port")[1].split()[0]) for name in RECEIVERS}
    assert set(servers) == receivers and len(servers) == len(RECEIVERS), servers
    # OCP (the simulator) pushes to the balancer's port, which is published; the balancer's own health.
    bind = re.search(
        r"^frontend \S+\n(?:[ \t]+.*\n)*?[ \t]+bind :(\d+)\n(?:[ \t]+.*\n)*?[ \t]+default_backend "
        + re.escape(backend.group(1)),
        config,
        flags=re.M,
    )
    assert bind, "no frontend sends to the receivers"
    assert any(p.split(":")[-2] == bind.group(1) for p in lb["ports"]), lb["ports"]
    push_url = _command_line(services["ocp-simulator"]).split("--push-url")[1].split()[0]
    assert push_url == f"http://{balancer}:{bind.group(1)}"
    monitor = re.search(r"^\s+monitor-uri (\S+)$", config, flags=re.M)
    assert monitor and monitor.group(1) in _healthcheck(lb)


def _stages(dockerfile: str) -> dict[str, tuple[str | None, str]]:
    """Each stage by name (``#i`` if unnamed): the stage it builds on, when it is one, and its text."""
    stages: dict[str, tuple[str | None, str]] = {}
    for i, part in enumerate(re.split(r"^FROM\s+", dockerfile, flags=re.M)[1:]):
        head, _, body = part.partition("\n")
        words = head.split()
        name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else f"#{i}"
        stages[name] = (words[0] if words[0] in stages else None, body)
    return stages


def stage_text(dockerfile: str, stage: str) -> str:
    """The instructions that make ``stage``: its bases' first."""
    base, body = _stages(dockerfile)[stage]
    return (stage_text(dockerfile, base) if base else "") + body


def test_the_default_build_is_the_production_stage_and_the_dev_stage_adds_the_harness() -> None:
    text = DOCKERFILE.read_text()
    stages = _stages(text)
    assert list(stages)[:2] == ["production", "dev"]
    last_base, last_body = list(stages.values())[-1]
    assert last_base == "production"
    assert not re.search(r"^(COPY|RUN|ADD)\b", last_body, flags=re.M), "the default target adds nothing"
    dev_only = [sources for sources, _ in _copies(stages["dev"][1])]
    assert dev_only == [["include/ocp_ingest_dev/"]]


def test_dockerfile_matches_the_pinned_airflow_and_copies_what_exists() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^FROM\s+apache/airflow:(\S+)-python(\S+)(?:\s+AS\s+production)?$", text, flags=re.M)
    assert base, "the image must build on the official Airflow image"
    pinned = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), flags=re.M)
    assert pinned and base.group(1) == pinned.group(1)
    assert base.group(2) == "3.11"
    assert "-c /opt/ocp-ingest/constraints.txt" in text
    for line in re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)$", text, flags=re.M):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), source


def _copies(dockerfile: str) -> Iterator[tuple[list[str], str]]:
    """(sources, destination) of each COPY instruction."""
    for line in re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)$", dockerfile, flags=re.M):
        *sources, destination = line.split()
        yield sources, destination


def _pip_install_targets(dockerfile: str) -> list[str]:
    """The positional arguments of every ``pip install`` (what it installs, not -r/-c files)."""
    targets = []
    for command in re.findall(r"pip install ([^&\n]+)", dockerfile):
        words = command.split()
        for i, word in enumerate(words):
            if not word.startswith("-") and (i == 0 or words[i - 1] not in ("-r", "-c")):
                targets.append(word)
    return targets


def build_image_package(out: Path, stage: str = "production") -> Path:
    """Build what the Dockerfile's ``pip install <project>`` installs, from exactly what it copies there.

    The COPY sources land at their destinations under a temporary project directory (Docker's rules: a
    directory's contents, a file into a directory ending in ``/``); setuptools' ``build_py`` (the step a
    wheel build runs) then lays the packages out as they would be installed. Returns the build directory.
    """
    text = stage_text(DOCKERFILE.read_text(), stage)
    projects = {t.rstrip("/") for t in _pip_install_targets(text) if t.startswith("/")}
    assert len(projects) == 1, projects
    project = projects.pop()
    tree = out / "project"
    for sources, destination in _copies(text):
        if not (destination + "/").startswith(project + "/"):
            continue
        target = tree / destination.removeprefix(project).lstrip("/")
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True)
            else:
                target_file = target / path.name if destination.endswith("/") else target
                target_file.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target_file)
    assert (tree / "pyproject.toml").is_file(), "the image installs a project without its pyproject.toml"
    build = out / "build"
    setup = "from setuptools import setup; setup()"
    done = subprocess.run(
        [sys.executable, "-c", setup, "build_py", "--build-lib", str(build)],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return build


@pytest.fixture(scope="module")
def image_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_image_package(tmp_path_factory.mktemp("image"))


def test_the_image_installs_the_production_package_only(image_package: Path) -> None:
    top = sorted(p.name for p in image_package.iterdir())
    assert top == ["ocp_ingest"], top
    modules = {p.relative_to(image_package).with_suffix("").as_posix() for p in image_package.rglob("*.py")}
    dev = {m for m in modules if {"simulator", "demo", "stack", "stack_watch"} & set(m.split("/"))}
    assert dev == set(), f"dev harness modules in the image: {sorted(dev)}"
    # It is the real package: the CLI the entry point names and the packaged data are there.
    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["ocp-ingest"]
    assert entry.split(":")[0].replace(".", "/") in modules | {m.removesuffix("/__init__") for m in modules}
    assert list((image_package / "ocp_ingest" / "resources").glob("*.toml"))


def test_the_images_cli_works_without_the_dev_harness(image_package: Path) -> None:
    # The image's package first; every sys.path entry that holds the dev harness (e.g. the checkout's
    # include/ of an editable install) dropped, as in the image.
    code = (
        "import sys, pathlib\n"
        f"sys.path = [{str(image_package)!r}] + [p for p in sys.path[1:] "
        "if not (pathlib.Path(p or '.') / 'ocp_ingest_dev').exists()]\n"
        "import ocp_ingest\n"
        f"assert ocp_ingest.__file__.startswith({str(image_package)!r}), ocp_ingest.__file__\n"
        "try:\n"
        "    import ocp_ingest_dev\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('the dev harness is importable')\n"
        "from ocp_ingest.cli import main\n"
        "sys.exit(main(['--help']))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=image_package, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    choices = re.search(r"\{([a-z,-]+)\}", done.stdout)
    assert choices, done.stdout
    commands = set(choices.group(1).split(","))
    assert {"receiver", "download-export", "ledger", "config"} <= commands, commands
    assert not commands & {"run", "demo", "simulator"}, commands


def test_a_checkout_install_provides_the_production_package_and_the_dev_harness() -> None:
    # `make install` is an editable install of the checkout: the same packages.find over include/.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    found = set(setuptools.find_packages(where=str(ROOT / config["where"][0]), include=config["include"]))
    assert {"ocp_ingest", "ocp_ingest.cli", "ocp_ingest_dev", "ocp_ingest_dev.demo"} <= found, found
    assert {"ocp_ingest_dev.simulator", "ocp_ingest_dev.stack"} <= found, found
    assert all(p.split(".")[0] in ("ocp_ingest", "ocp_ingest_dev") for p in found), found


def test_the_dev_stage_installs_the_simulator_compose_runs(tmp_path: Path) -> None:
    package = build_image_package(tmp_path, stage="dev")
    assert sorted(p.name for p in package.iterdir()) == ["ocp_ingest", "ocp_ingest_dev"]
    assert (package / "ocp_ingest_dev" / "simulator" / "cli.py").is_file()


def test_compose_and_the_distributed_topology_agree(compose: dict) -> None:
    """The compose file and ``make run TOPOLOGY=distributed`` are one topology: the same components and
    commands, two workers and two receivers behind a balancer, and the same OCP_INGEST_* names and storage
    layout (a recordings bucket per LOB)."""
    from ocp_ingest_dev.stack import distributed

    services = compose["services"]
    commands = [_command_line(s) for s in services.values()]
    for words in distributed.AIRFLOW_COMPONENTS.values():
        assert " ".join(words) in commands, words
    assert sum(1 for c in commands if c == " ".join(distributed.WORKER_COMMAND)) == 2
    receivers = [c for c in commands if c.startswith("ocp-ingest " + " ".join(distributed.RECEIVER_COMMAND))]
    assert len(receivers) == 2
    init = _command_line(services["airflow-init"])
    for tool, invocations in distributed.SET_UP_COMMANDS.items():
        for args in invocations:
            assert f"{tool} {' '.join(args)}" in init
    stack = distributed.DistributedStack(calls=0)
    stack.ports = collections.defaultdict(lambda: 5000)  # what the environment needs, not bound
    topology = stack.topology_env()
    worker_env = _env(services["airflow-worker-1"])
    missing = {name for name in topology if name not in worker_env}
    assert missing <= {"OCP_INGEST_SSE_KMS_KEY_ID"}, missing  # the key id is per run here, a variable there
    assert "OCP_INGEST_SSE_KMS_KEY_ID" in worker_env
    for name in ("OCP_INGEST_LEDGER_BACKEND", "OCP_INGEST_DOWNLOAD_MODE", "OCP_INGEST_DYNAMODB_TABLE"):
        assert _resolve(worker_env[name]) == topology[name], name
    for name in ("RECORDINGS", "LANDING", "QUARANTINE", "AUDIT"):
        key = f"OCP_INGEST_{name}_URL"
        assert _resolve(worker_env[key]) == topology[key], key
    assert _resolve(worker_env["AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT"]) == stack.airflow_env().get(
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT"
    )
