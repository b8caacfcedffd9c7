"""The production topology as processes (``make run TOPOLOGY=distributed``, ``demo --topology distributed``).

The slow test is the whole flow through the real parts: Postgres, Redis, moto (S3, DynamoDB, KMS), Airflow
with the CeleryExecutor and two workers, two receivers behind haproxy, the simulator pushing with loss. The
fast ones pin the pieces: haproxy's configuration, its stats, and the fail-fast rules (one line naming
the component, nothing left running).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from ocp_ingest_dev.stack import distributed, tenant
from ocp_ingest_dev.stack.distributed import (
    DistributedStack,
    haproxy_server_stats,
    render_haproxy_config,
)
from ocp_ingest_dev.stack.supervise import Processes, StackError, require_binary
from tests.dev.demo_support import assert_settled


@pytest.fixture
def topology_binaries() -> None:
    """PostgreSQL, Redis and haproxy are installed (tools/system-deps.sh): else a skip on a workstation and a
    failure in CI, where a missing dependency must not pass as green."""
    from tests.conftest import in_ci

    try:
        require_binary("postgres", "initdb", "postgresql", distributed.POSTGRES_BIN_DIRS)
        require_binary("redis", "redis-server", "redis-server")
        require_binary("haproxy", "haproxy", "haproxy", ("/usr/sbin",))
    except StackError as exc:
        if in_ci():
            pytest.fail(str(exc))
        pytest.skip(str(exc))


needs_postgres = pytest.mark.usefixtures("topology_binaries")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_haproxy_config_balances_round_robin_over_health_checked_receivers(tmp_path: Path) -> None:
    text = render_haproxy_config(18000, 18001, [("receiver-1", 18002), ("receiver-2", 18003)])
    assert "bind 127.0.0.1:18000" in text and "balance roundrobin" in text
    assert "option httpchk GET /healthz" in text and "http-check expect status 200" in text
    assert "server receiver-1 127.0.0.1:18002 check" in text
    assert "server receiver-2 127.0.0.1:18003 check" in text
    assert "bind 127.0.0.1:18001" in text and "stats uri /stats" in text
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if haproxy:  # haproxy itself accepts it
        (tmp_path / "haproxy.cfg").write_text(text)
        checked = subprocess.run([haproxy, "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_haproxy_stats_give_the_receivers_rows_only() -> None:
    csv = (
        "# pxname,svname,status,stot,hrsp_2xx,\n"
        "ocp_push,FRONTEND,OPEN,10,9,\n"
        "receivers,receiver-1,UP,6,6,\n"
        "receivers,receiver-2,DOWN,4,3,\n"
        "receivers,BACKEND,UP,10,9,\n"
        "stats,FRONTEND,OPEN,1,1,\n"
    )
    rows = haproxy_server_stats(csv)
    assert set(rows) == {"receiver-1", "receiver-2"}
    assert (rows["receiver-1"]["status"], rows["receiver-2"]["stot"]) == ("UP", "4")


def test_a_missing_binary_is_one_line_naming_the_component_and_the_package() -> None:
    with pytest.raises(StackError) as caught:
        require_binary("redis", "redis-server-that-is-not-there", "redis-server")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("redis: ") and "'redis-server-that-is-not-there'" in message
    assert "Debian package 'redis-server'" in message


def test_a_missing_binary_stops_the_stack_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = distributed.require_binary

    def without_haproxy(component: str, binary: str, package: str, search: tuple[str, ...] = ()) -> str:
        if binary == "haproxy":
            return real(component, "haproxy-not-installed", package, ())
        return real(component, binary, package, search)

    monkeypatch.setattr(distributed, "require_binary", without_haproxy)
    stack = DistributedStack(home=tmp_path / "run", calls=0)
    with pytest.raises(StackError, match=r"^haproxy: .*Debian package 'haproxy'"):
        stack.start()
    assert not stack.processes.children


def test_a_bad_setting_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    haproxy = shutil.which("haproxy", path="/usr/sbin:" + os.environ["PATH"])
    if not shutil.which("redis-server") or not haproxy:
        pytest.skip("redis-server or haproxy is not installed")
    monkeypatch.setenv("OCP_INGEST_PENDING_GRACE_S", "-5")
    stack = DistributedStack(home=tmp_path / "run", calls=0)
    with pytest.raises(StackError) as caught:
        stack.start()
    assert str(caught.value).startswith("settings: OCP_INGEST_PENDING_GRACE_S: expected")
    assert "\n" not in str(caught.value) and not stack.processes.children


def test_a_component_that_never_becomes_healthy_names_its_log_and_nothing_is_left(tmp_path: Path) -> None:
    processes = Processes()
    first = processes.spawn("first", ["sleep", "60"], dict(os.environ), log_path=tmp_path / "first.log")
    processes.spawn("second", ["sleep", "60"], dict(os.environ), log_path=tmp_path / "second.log", tier=1)
    try:
        with pytest.raises(StackError) as caught:
            processes.wait_healthy("second", lambda: False, 0.5, watch=("second",))
    finally:
        processes.stop(grace_s=5)
    assert str(caught.value) == f"second did not become healthy within 0.5 s (see {tmp_path / 'second.log'})"
    assert first.poll() is not None and processes["second"].poll() is not None


@needs_postgres
def test_an_unhealthy_redis_stops_the_postgres_already_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")  # runs, never answers PING
    fake.chmod(0o755)
    real = distributed.require_binary

    def fake_redis(component: str, binary: str, package: str, search: tuple[str, ...] = ()) -> str:
        return str(fake) if binary == "redis-server" else real(component, binary, package, search)

    monkeypatch.setattr(distributed, "require_binary", fake_redis)
    stack = DistributedStack(home=tmp_path / "run", calls=0)
    stack.timeouts["redis"] = 2.0
    with pytest.raises(StackError) as caught:
        stack.start()
    log = tmp_path / "run" / "logs" / "redis.log"
    assert str(caught.value) == f"redis did not become healthy within 2 s (see {log})"
    assert stack.processes["postgres"].poll() is not None and stack.processes["redis"].poll() is not None
    assert not _port_open(stack.ports["postgres"])
    # A cluster outside the run directory (its user cannot reach pytest's tmp) is removed with the stack.
    assert stack.postgres_dir is not None and (
        stack.postgres_dir.is_relative_to(tmp_path) or not stack.postgres_dir.exists()
    )


@needs_postgres
def test_a_bucket_provisioning_left_missing_stops_the_stack_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provision = DistributedStack._provision_aws

    def provision_but_lose_quarantine(stack: DistributedStack) -> None:
        provision(stack)
        stack._aws_client("s3").delete_bucket(Bucket=stack.bucket("quarantine"))

    monkeypatch.setattr(DistributedStack, "_provision_aws", provision_but_lose_quarantine)
    stack = DistributedStack(home=tmp_path / "run", calls=0)
    with pytest.raises(StackError) as caught:
        stack.start()
    assert str(caught.value) == (
        "preflight: OCP_INGEST_QUARANTINE_URL: bucket 'ocp-quarantine' (s3://aws_default@ocp-quarantine): "
        "does not exist (S3 HeadBucket: 404)"
    )
    # Stopped there: no receiver or Airflow component was started, and what had started is stopped.
    assert not any(n.startswith(("receiver", "worker", "api-server")) for n in stack.processes.children)
    assert all(stack.processes[n].poll() is not None for n in stack.processes.children)
    assert "ok  OCP_INGEST_DYNAMODB_TABLE" in (tmp_path / "run" / "logs" / "preflight.log").read_text()


def assert_the_distributed_run(summary: dict, out: str, calls: int, run_dir: Path) -> None:
    """What one run of ``ocp-ingest demo --topology distributed`` must show (the slow run is
    ``tests/dev/test_distributed_faults.py``'s: the same demo, with process faults struck during it)."""
    assert "demo OK" in out
    assert_settled(summary, calls)
    assert not summary["audit_disagreements"] and summary["audit_checked"] > 0
    stored = summary["stored_realtime"] + summary["stored_reconciliation"]
    assert stored + sum(summary["terminal_by_reason"].values()) == calls
    # Loss on: reconciliation recovers what realtime never received. How much realtime stores itself is a
    # race here (the replayed calls ended long ago, so reconciliation may take a call before realtime's batch
    # reaches it; the loser finds it ALREADY_STORED): realtime must have run, not won.
    assert summary["stored_reconciliation"] > 0 and summary["realtime_runs"] > 0
    assert [r["total"]["completeness_pct"] for r in summary["reports"]] == [100.0] * len(summary["reports"])
    assert summary["reports"] and all(r["state"] == "success" for r in summary["reports"])
    topology = summary["topology"]
    assert topology["executor"] == "CeleryExecutor"
    assert topology["metadata_db"].startswith("postgresql ")
    assert (topology["ledger_backend"], topology["storage_scheme"]) == ("dynamodb", "s3")
    assert topology["sse_kms"]["objects"] == stored == topology["sse_kms"]["with_the_key"]
    tasks, pushes = topology["tasks_per_worker"], topology["pushes_per_receiver"]
    assert set(tasks) == {"worker-1", "worker-2"} and all(n > 0 for n in tasks.values()), tasks
    assert set(pushes) == {"receiver-1", "receiver-2"} and all(n > 0 for n in pushes.values()), pushes
    # each realtime run's summary says which worker stored what (a store whose try was cut and retried is
    # counted once, by the try that finished, so at most the ledger's realtime stores)
    stores = topology["realtime_stores_per_worker"]
    assert set(stores) <= {"worker-1", "worker-2"}, stores
    assert sum(stores.values()) <= summary["stored_realtime"], stores
    # Storage is s3:// only: no worker, receiver or the simulator spilled anything into its private
    # OCP_INGEST_HOME (a task that did would have needed a disk shared between hosts).
    assert not list(run_dir.glob("*/*/ocp_ingest_home")), "something spilled to local disk"
    # Nothing of the run is left running: every port of the topology is closed again.
    assert not [name for name, port in topology["ports"].items() if _port_open(port)]


def test_the_distributed_demo_plays_the_in_process_demos_scenario() -> None:
    from ocp_ingest.cli import build_parser
    from ocp_ingest_dev.demo.config import FlowConfig
    from ocp_ingest_dev.demo.distributed import simulator_args

    config = FlowConfig(max_duration_s=12.0, corrupt_share=0.05)
    args = build_parser().parse_args(["simulator", *simulator_args(config)])
    assert (args.max_duration_s, args.corrupt_share, args.delay_share) == (12.0, 0.05, 0.0)
    # The same calls: durations drawn between the same bounds (the simulator's own minimum is 5 s).
    assert args.min_duration_s == config.min_duration_s == 1.0
    assert (args.prep_s, args.push_concurrency) == (config.export_prep_s, config.push_concurrency)
    demo = build_parser().parse_args(["demo", "--topology", "distributed", "--calls", "60"])
    assert (demo.topology, demo.calls) == ("distributed", 60)


def test_the_topologys_settings_are_names_the_code_reads_and_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    from ocp_ingest.cli import build_parser
    from ocp_ingest.config import Settings, known_variables

    stack = DistributedStack()
    stack.ports = {"moto": 15000}
    stack.kms_key_id = "key-1"
    env = stack.topology_env()
    assert {n for n in env if n.startswith("OCP_INGEST_")} <= known_variables()
    for name in [n for n in os.environ if n.startswith("OCP_INGEST_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert (settings.ledger_backend, settings.sse_kms_key_id) == ("dynamodb", "key-1")
    assert settings.recordings_url.endswith("-{lob}") and settings.audit_url.startswith("s3://aws_default@")
    # Every ocp-ingest command the topology runs exists in the CLI.
    for command in (
        *distributed.SET_UP_COMMANDS["ocp-ingest"],
        distributed.RECEIVER_COMMAND,
        tenant.SIMULATOR_COMMAND,
    ):
        build_parser().parse_args(command)
