"""The production topology as plain processes on loopback: ``make run TOPOLOGY=distributed``.

What a platform engineer deploys, each part started by this module on a free port, each health-checked
before the next step, all under one run directory and all stopped on Ctrl-C / SIGTERM:

- **PostgreSQL** (a throw-away cluster: ``initdb`` in the run directory) as Airflow's metadata DB;
- **Redis** as the Celery broker;
- **moto's server** standing in for S3, DynamoDB and KMS: a KMS key (SSE-KMS requested on every put),
  buckets for landing, quarantine, audit and one recordings bucket per LOB, the DynamoDB ledger table;
- **Airflow 3 with the CeleryExecutor**: ``airflow db migrate``, api-server, scheduler, dag-processor,
  triggerer and two ``airflow celery worker`` processes, each with its own working directory, scratch
  space (TMPDIR) and OCP_INGEST_HOME, so no task can read what another worker left on its local disk;
- **two receivers** behind **haproxy** (round robin, ``option httpchk GET /healthz``), on the DynamoDB
  ledger and the S3 landing bucket;
- the **OCP simulator** as the tenant, pushing to haproxy as OCP pushes to a load balancer.

Every failure to start is one line naming the component and its log (or the missing binary and its
Debian package, or the bad setting), and whatever had started is stopped first.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ocp_ingest_dev.checkout import project_root
from ocp_ingest_dev.stack.hostname import HOST_NAME_ENV
from ocp_ingest_dev.stack.standalone import airflow_health, is_healthy
from ocp_ingest_dev.stack.supervise import (
    Processes,
    StackError,
    free_port,
    raise_interrupt,
    require_binary,
)
from ocp_ingest_dev.stack.tenant import simulator_command

#: Where Debian's PostgreSQL keeps its server binaries (not on PATH; initdb may be linked there).
POSTGRES_BIN_DIRS = tuple(str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
#: The AWS region of the stand-in endpoint (any works with moto; the compose file uses the same).
REGION = "eu-west-1"
#: Bucket names: compose's (ocp-landing, ocp-quarantine, ocp-audit), and a recordings bucket per LOB
#: (ocp-recordings-{lob}) as the README's production layout.
BUCKET_PREFIX = "ocp"
LEDGER_TABLE = "ocp_call_ledger"
#: What each part runs (the command after the ``airflow`` / ``ocp-ingest`` binary, before this machine's
#: ports and names): the deployment artifacts (compose) run the same commands.
SET_UP_COMMANDS = {"airflow": [["db", "migrate"]], "ocp-ingest": [["ledger", "init"]]}
AIRFLOW_COMPONENTS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer"],
}
WORKER_COMMAND = ["celery", "worker"]
#: What every part needs is there (buckets, the ledger table): run once provisioning is done.
PREFLIGHT_COMMAND = ["check"]
RECEIVER_COMMAND = ["receiver"]
#: Stop order: the simulator first, then Airflow and the ingress, then the services they use.
TIER_SERVICES, TIER_COMPONENTS, TIER_TENANT = 0, 1, 2


def render_haproxy_config(port: int, stats_port: int, receivers: list[tuple[str, int]]) -> str:
    """haproxy's configuration: round robin over the receivers, each health-checked on /healthz, and a
    CSV stats page (pushes answered per receiver)."""
    servers = "\n".join(
        f"    server {name} 127.0.0.1:{rport} check inter 1s fall 2 rise 1" for name, rport in receivers
    )
    return f"""# Written by the distributed dev stack: the load balancer before the receivers (an ALB in AWS).
global
    maxconn 2048

defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    option http-server-close

frontend ocp_push
    bind 127.0.0.1:{port}
    default_backend receivers

backend receivers
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
{servers}

listen stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
"""


def haproxy_server_stats(csv_text: str, backend: str = "receivers") -> dict[str, dict[str, str]]:
    """Rows of haproxy's CSV stats for the servers of ``backend``, by server name."""
    lines = csv_text.strip().splitlines()
    if not lines:
        return {}
    header = lines[0].lstrip("# ").split(",")
    rows = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND"):
            rows[row["svname"]] = row
    return rows


def quiet_client_logs() -> None:
    """The harness's own AWS and HTTP clients log nothing below a warning on the terminal."""
    import logging

    for name in ("botocore", "aiobotocore", "boto3", "s3fs", "httpx", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


def recordings_sse(stack: DistributedStack, settings: Any) -> dict[str, Any]:
    """How many stored recordings S3 holds encrypted with the run's KMS key (the buckets have no default
    encryption, so each such object's writer asked for SSE-KMS)."""
    from ocp_ingest_dev.demo.verdict import recordings_roots

    s3 = stack._aws_client("s3")
    objects = with_key = 0
    for root in recordings_roots(settings.recordings_url, stack.lobs()):
        bucket = root.split("@", 1)[-1].removeprefix("s3://").split("/", 1)[0]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                head = s3.head_object(Bucket=bucket, Key=item["Key"])
                objects += 1
                key = str(head.get("SSEKMSKeyId") or "")
                with_key += head.get("ServerSideEncryption") == "aws:kms" and key.endswith(
                    str(stack.kms_key_id)
                )
    return {"objects": objects, "with_the_key": with_key, "key_id": stack.kms_key_id}


@dataclass
class DistributedStack:
    """The processes of the production topology on this machine (see the module's docstring)."""

    #: The run directory (default ``<project>/var/distributed``); emptied of a previous run's parts.
    home: Path | None = None
    port: int = 0  # Airflow's api-server (0: a free port)
    calls: int = 2000
    window_hours: float = 3.0
    mean_duration_s: float = 30.0
    push_rate: float = 10.0
    seed: int | None = None
    #: Share of audio pushes the simulator drops (the demo's --push-loss).
    push_loss: float = 0.10
    api_error_share: float = 0.02
    broken_download_share: float = 0.02
    #: More simulator options (e.g. the demo's fault shares and durations), appended to its command.
    simulator_args: list[str] = field(default_factory=list)
    workers: int = 2
    receivers: int = 2
    #: Celery task slots per worker (two workers on a 2-core machine: a few each).
    worker_concurrency: int = 4
    #: OCP_INGEST_* defaults (e.g. LOCAL_CADENCE); the environment wins for these, never for the topology.
    settings_env: dict[str, str] = field(default_factory=dict)
    #: Seconds each component may take to become healthy.
    timeouts: dict[str, float] = field(
        default_factory=lambda: {
            "postgres": 60.0,
            "redis": 30.0,
            "moto": 60.0,
            "airflow db migrate": 600.0,
            "airflow": 300.0,
            "celery workers": 180.0,
            "receiver": 60.0,
            "haproxy": 30.0,
            "simulator": 60.0,
        }
    )
    root: Path = field(default_factory=project_root)
    processes: Processes = field(default_factory=Processes)
    #: Bytecode cache of every process (default ``<project>/var/pycache``).
    pycache: Path | None = None
    #: Printed as each step is healthy (None: quiet).
    progress: Any = None
    ports: dict[str, int] = field(default_factory=dict)
    push_secret: str | None = field(default=None, repr=False)
    admin_password: str | None = field(default=None, repr=False)
    kms_key_id: str | None = None
    postgres_version: str | None = None
    #: Where the PostgreSQL cluster lives (in the run directory unless its user cannot reach it there).
    postgres_dir: Path | None = None
    _postgres_outside: bool = False
    _haproxy_baseline: dict[str, int] = field(default_factory=dict)

    # -- layout ----------------------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return (self.home or self.root / "var" / "distributed").resolve()

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def truth_path(self) -> Path:
        return self.run_dir / "ground_truth.json"

    @property
    def airflow_home(self) -> Path:
        return self.run_dir / "airflow"

    @property
    def password_file(self) -> Path:
        return self.airflow_home / "simple_auth_manager_passwords.json.generated"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['airflow']}"

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['moto']}"

    @property
    def push_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['haproxy']}"

    def worker_names(self) -> list[str]:
        return [f"worker-{n}" for n in range(1, self.workers + 1)]

    def receiver_names(self) -> list[str]:
        return [f"receiver-{n}" for n in range(1, self.receivers + 1)]

    def _say(self, text: str) -> None:
        if self.progress is not None:
            self.progress.write(text + "\n")
            self.progress.flush()

    # -- start / stop ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start every part, each once what it needs is healthy; on any failure stop what started and raise
        :class:`StackError` (one line: the component and its log, the missing binary, the bad setting)."""
        try:
            self._start()
        except StackError:
            self.stop()
            raise
        except Exception as exc:  # e.g. a set-up call to the stand-in AWS endpoint: still one line
            self.stop()
            raise StackError(f"distributed stack: {type(exc).__name__}: {exc} (logs in {self.logs})") from exc
        except BaseException:  # Ctrl-C while starting
            self.stop()
            raise

    def _start(self) -> None:
        if self.workers < 1 or self.receivers < 1:
            raise StackError("distributed stack: workers and receivers must be at least 1")
        binaries = {
            "initdb": require_binary("postgres", "initdb", "postgresql", POSTGRES_BIN_DIRS),
            "postgres": require_binary("postgres", "postgres", "postgresql", POSTGRES_BIN_DIRS),
            "redis-server": require_binary("redis", "redis-server", "redis-server"),
            "haproxy": require_binary("haproxy", "haproxy", "haproxy", ("/usr/sbin",)),
        }
        self._fresh_run_dir()
        self.ports = {
            name: free_port()
            for name in (
                "postgres",
                "redis",
                "moto",
                "airflow",
                "haproxy",
                "haproxy_stats",
                "simulator",
                "trigger_logs",
                *self.worker_names(),
                *self.receiver_names(),
            )
        }
        if self.port:
            self.ports["airflow"] = self.port
        self.push_secret = secrets.token_urlsafe(32)
        self._check_settings()
        # A part starts once what it needs is healthy; parts that need nothing of each other start
        # together (services; the receivers while Airflow migrates and boots).
        moto_healthy = self._start_moto()  # first: the slowest to import
        redis_healthy = self._start_redis(binaries["redis-server"])
        postgres_healthy = self._start_postgres(binaries["initdb"], binaries["postgres"])
        postgres_healthy()
        redis_healthy()
        moto_healthy()  # then the KMS key, the buckets and the ledger table
        receivers_healthy = self._start_receivers()
        airflow_healthy = self._start_airflow(self._migrate_airflow())
        receivers_healthy()
        self._start_haproxy(binaries["haproxy"])
        airflow_healthy()  # api-server, scheduler, dag-processor, triggerer; both workers seen
        if self.calls > 0:
            self._start_simulator()

    def stop(self, grace_s: float = 15.0) -> None:
        """Stop every process group (simulator, then Airflow and the ingress, then the services).

        A Celery worker's warm shutdown waits for its running tasks (the continuous realtime DAG always has
        one): ``grace_s`` per tier bounds it; every task is idempotent against the ledger."""
        self.processes.stop(grace_s)
        if self._postgres_outside and self.postgres_dir is not None:
            shutil.rmtree(self.postgres_dir, ignore_errors=True)

    def alive(self) -> bool:
        return self.processes.alive()

    def _fresh_run_dir(self) -> None:
        run = self.run_dir
        run.mkdir(parents=True, exist_ok=True)
        # Only what a previous run of this stack made: a wrong --home never loses anything else.
        for name in ("postgres", "redis", "airflow", "workers", "receivers", "logs", "harness"):
            shutil.rmtree(run / name, ignore_errors=True)
        for name in ("haproxy.cfg", "ground_truth.json"):
            (run / name).unlink(missing_ok=True)
        self.logs.mkdir()

    # -- environment -----------------------------------------------------------------------------------

    def lobs(self) -> tuple[str, ...]:
        from ocp_ingest.routing import LobRouter

        routing = self.settings_env.get("OCP_INGEST_LOB_ROUTING_FILE")
        return LobRouter.load(Path(routing) if routing else None).lobs

    def bucket(self, purpose: str) -> str:
        return f"{BUCKET_PREFIX}-{purpose}"

    def topology_env(self) -> dict[str, str]:
        """OCP_INGEST_* and AWS settings of every part: DynamoDB ledger, s3:// storage, SSE-KMS.

        The names are the production image's (docker-compose.airflow.yml); only the endpoint is moto's.
        """
        aws_conn = {"conn_type": "aws", "extra": {"region_name": REGION, "endpoint_url": self.moto_url}}
        env = {
            "OCP_INGEST_LEDGER_BACKEND": "dynamodb",
            "OCP_INGEST_DYNAMODB_TABLE": LEDGER_TABLE,
            "OCP_INGEST_DYNAMODB_ENDPOINT_URL": self.moto_url,
            "OCP_INGEST_RECORDINGS_URL": f"s3://aws_default@{self.bucket('recordings')}-{{lob}}",
            "OCP_INGEST_LANDING_URL": f"s3://aws_default@{self.bucket('landing')}",
            "OCP_INGEST_QUARANTINE_URL": f"s3://aws_default@{self.bucket('quarantine')}",
            "OCP_INGEST_AUDIT_URL": f"s3://aws_default@{self.bucket('audit')}",
            "OCP_INGEST_DOWNLOAD_MODE": "inprocess",
            "AWS_DEFAULT_REGION": REGION,
            # moto accepts any key; in AWS the worker's role (IRSA) and no keys at all.
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws_conn),
        }
        if self.kms_key_id:
            env["OCP_INGEST_SSE_KMS_KEY_ID"] = self.kms_key_id
        return env

    def _base_env(self) -> dict[str, str]:
        """The parent's environment (PYTHONPATH kept), the cadence defaults, the topology's settings."""
        env = dict(os.environ)
        for name, value in self.settings_env.items():
            env.setdefault(name, value)
        if self.calls > 0:
            from ocp_ingest_dev.simulator.calls import FLOWS

            env.setdefault("OCP_INGEST_SWEEP_OCP_GROUPS", ",".join(sorted({f.ocp_group for f in FLOWS})))
        env.update(self.topology_env())
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        # Compiled bytecode, as in any image: every Celery task process imports Airflow and this package.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        # (Kept across runs: a cache, never data.)
        env["PYTHONPYCACHEPREFIX"] = str(self.pycache or self.root / "var" / "pycache")
        return env

    def _private_env(self, base: dict[str, str], name: str) -> tuple[dict[str, str], Path]:
        """A process's own working directory, scratch space and OCP_INGEST_HOME (nothing shared on disk)."""
        kind = "workers" if name.startswith("worker") else "receivers" if name.startswith("receiver") else ""
        work = self.run_dir / kind / name if kind else self.run_dir / "harness" / name
        (work / "tmp").mkdir(parents=True, exist_ok=True)
        env = {**base, "TMPDIR": str(work / "tmp"), "OCP_INGEST_HOME": str(work / "ocp_ingest_home")}
        return env, work

    def _check_settings(self) -> None:
        """Every OCP_INGEST_* value the parts will read, validated once here: one line naming the setting."""
        from ocp_ingest.config import Settings, SettingsError

        env = self._base_env()
        saved = dict(os.environ)
        try:
            os.environ.clear()
            os.environ.update(env)
            Settings.from_env()
        except SettingsError as exc:
            raise StackError(f"settings: {str(exc).splitlines()[0]}") from None
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def _run(self, component: str, command: list[str], env: dict[str, str], timeout_s: float) -> None:
        """Run one set-up command to its end; its output to the component's log."""
        log = self.logs / f"{component.replace(' ', '-')}.log"
        with open(log, "ab") as out:
            try:
                done = subprocess.run(
                    command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s, check=False
                )
            except subprocess.TimeoutExpired:
                raise StackError(f"{component} did not finish within {timeout_s:g} s (see {log})") from None
        if done.returncode != 0:
            raise StackError(f"{component} failed with exit code {done.returncode} (see {log})")

    def _timed(self, component: str, since: float, detail: str = "") -> None:
        self._say(f"  {component:<16} healthy in {time.monotonic() - since:5.1f} s  {detail}".rstrip())

    # -- PostgreSQL ------------------------------------------------------------------------------------

    def _as_postgres_user(self, command: list[str]) -> list[str]:
        # PostgreSQL refuses to run as root: as root, run it as the 'postgres' user (Debian's package
        # creates it) or, failing that, 'nobody'.
        if os.geteuid() != 0:
            return command
        runuser = require_binary("postgres", "runuser", "util-linux", ("/usr/sbin", "/sbin"))
        return [runuser, "-u", self._postgres_user(), "--", *command]

    @staticmethod
    def _postgres_user() -> str:
        import pwd

        for name in ("postgres", "nobody"):
            try:
                pwd.getpwnam(name)
                return name
            except KeyError:
                continue
        raise StackError("postgres: running as root and neither a 'postgres' nor a 'nobody' user exists")

    def _postgres_directory(self) -> Path:
        """The cluster's directory, owned by the user PostgreSQL runs as; in the run directory when that
        user can reach it (a root-only parent, e.g. pytest's tmp, cannot be: then a private temp dir)."""
        wanted = self.run_dir / "postgres"
        wanted.mkdir(mode=0o700)
        if os.geteuid() != 0:
            return wanted
        import pwd

        user = pwd.getpwnam(self._postgres_user())
        os.chown(wanted, user.pw_uid, user.pw_gid)
        reachable = subprocess.run(
            self._as_postgres_user(["test", "-w", str(wanted)]), check=False
        ).returncode
        if reachable == 0:
            return wanted
        outside = Path(tempfile.mkdtemp(prefix="ocp-ingest-pg-"))
        os.chown(outside, user.pw_uid, user.pw_gid)
        self._postgres_outside = True
        (wanted / "WHERE").write_text(f"this run's cluster is in {outside} (its user cannot reach here)\n")
        return outside

    def _start_postgres(self, initdb: str, postgres: str) -> Callable[[], None]:
        since = time.monotonic()
        self.postgres_dir = pg = self._postgres_directory()
        data = pg / "data"
        env = {**os.environ, "LC_ALL": "C.UTF-8"}
        self._run(
            "postgres initdb",
            self._as_postgres_user(
                [initdb, "-D", str(data), "-U", "airflow", "-A", "trust", "-E", "UTF8", "--no-sync"]
            ),
            env,
            self.timeouts["postgres"],
        )
        port = self.ports["postgres"]
        self.processes.spawn(
            "postgres",
            self._as_postgres_user(
                [
                    postgres,
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(pg),  # its socket in the cluster's directory, never /var/run/postgresql
                    # A throw-away cluster: durability costs time and buys nothing here.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=300",
                ]
            ),
            env,
            log_path=self.logs / "postgres.log",
            tier=TIER_SERVICES,
        )

        def healthy() -> None:
            self.processes.wait_healthy(
                "postgres", self._postgres_ready, self.timeouts["postgres"], watch=("postgres",)
            )
            import psycopg2  # type: ignore[import-untyped]

            conn = psycopg2.connect(host="127.0.0.1", port=port, user="airflow", dbname="postgres")
            try:
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("CREATE DATABASE airflow")
                    cur.execute("SHOW server_version")
                    row = cur.fetchone()
                    self.postgres_version = str(row[0]).split()[0] if row else "?"
            finally:
                conn.close()
            self._timed("postgres", since, f"(PostgreSQL {self.postgres_version} on :{port})")

        return healthy

    def _postgres_ready(self) -> bool:
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1",
            port=self.ports["postgres"],
            user="airflow",
            dbname="postgres",
            connect_timeout=2,
        )
        conn.close()
        return True

    def metadata_url(self, scheme: str = "postgresql+psycopg2") -> str:
        return f"{scheme}://airflow@127.0.0.1:{self.ports['postgres']}/airflow"

    # -- Redis -----------------------------------------------------------------------------------------

    def _start_redis(self, redis_server: str) -> Callable[[], None]:
        since = time.monotonic()
        folder = self.run_dir / "redis"
        folder.mkdir()
        port = self.ports["redis"]
        self.processes.spawn(
            "redis",
            [
                redis_server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(folder),
            ],
            dict(os.environ),
            log_path=self.logs / "redis.log",
            tier=TIER_SERVICES,
        )

        def healthy() -> None:
            def ping() -> bool:
                import redis

                client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
                try:
                    return bool(client.ping())
                finally:
                    client.close()

            self.processes.wait_healthy("redis", ping, self.timeouts["redis"], watch=("redis",))
            self._timed("redis", since, f"(broker on :{port})")

        return healthy

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['redis']}/0"

    # -- moto: S3, DynamoDB, KMS -----------------------------------------------------------------------

    def _start_moto(self) -> Callable[[], None]:
        since = time.monotonic()
        self.processes.spawn(
            "moto",
            [sys.executable, "-m", "ocp_ingest_dev.stack.moto_endpoint", "--port", str(self.ports["moto"])],
            self._base_env(),
            log_path=self.logs / "moto.log",
            tier=TIER_SERVICES,
        )

        def healthy() -> None:
            self.processes.wait_healthy(
                "moto",
                lambda: httpx.get(f"{self.moto_url}/moto-api/", timeout=2.0).status_code == 200,
                self.timeouts["moto"],
                watch=("moto",),
            )
            self._provision_aws()
            self._preflight()
            self._timed(
                "moto",
                since,
                f"(S3, DynamoDB, KMS on :{self.ports['moto']}; {len(self.lobs())} recordings buckets)",
            )

        return healthy

    def _aws_client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.moto_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def _provision_aws(self) -> None:
        """The KMS key, the buckets and the ledger table, as the infrastructure code would create them."""
        kms = self._aws_client("kms")
        self.kms_key_id = kms.create_key(Description="ocp-ingest recordings")["KeyMetadata"]["KeyId"]
        s3 = self._aws_client("s3")
        buckets = [self.bucket(p) for p in ("landing", "quarantine", "audit")]
        buckets += [f"{self.bucket('recordings')}-{lob}" for lob in self.lobs()]
        for name in buckets:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        # No bucket default encryption here (production has it): an object encrypted with the key then
        # proves that its writer asked for SSE-KMS, which the demo's verdict checks on every recording.
        # The ledger table through the production CLI (what airflow-init runs in compose).
        env, _ = self._private_env(self._base_env(), "ledger-init")
        self._run(
            "ledger init",
            [str(Path(sys.executable).with_name("ocp-ingest")), *SET_UP_COMMANDS["ocp-ingest"][0]],
            env,
            self.timeouts["moto"],
        )

    def _preflight(self) -> None:
        """``ocp-ingest check`` with every part's settings, as an operator runs it: whatever provisioning left
        missing (a bucket, the table or one of its indexes) stops the stack here, in one line naming the
        setting, rather than in a receiver's or a task's traceback later."""
        env, _ = self._private_env(self._base_env(), "preflight")
        log = self.logs / "preflight.log"
        command = [str(Path(sys.executable).with_name("ocp-ingest")), *PREFLIGHT_COMMAND]
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=self.timeouts["moto"], check=False
            )
        except subprocess.TimeoutExpired:
            raise StackError(f"preflight did not finish within {self.timeouts['moto']:g} s") from None
        log.write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            failures = [line for line in done.stderr.splitlines() if line.startswith("ocp-ingest: ")]
            if not failures:
                raise StackError(f"preflight failed with exit code {done.returncode} (see {log})")
            more = f" (and {len(failures) - 1} more, see {log})" if len(failures) > 1 else ""
            raise StackError(f"preflight: {failures[0].removeprefix('ocp-ingest: ')}{more}")

    # -- Airflow ---------------------------------------------------------------------------------------

    def airflow_env(self) -> dict[str, str]:
        """Every Airflow component's environment: CeleryExecutor on Postgres and Redis, shared secrets."""
        from cryptography.fernet import Fernet

        from ocp_ingest_dev.simulator.auth import SIMULATOR_PAT

        if not hasattr(self, "_airflow_secrets"):
            # Generated per run and handed over by environment only: never printed, never in a file.
            self._airflow_secrets = {
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            }
        api = self.ports["airflow"]
        ocp_conn = {
            "conn_type": "ocp",
            "host": "127.0.0.1",
            "port": self.ports["simulator"],
            "schema": "http",
            "password": SIMULATOR_PAT,
        }
        return {
            **self._base_env(),
            **self._airflow_secrets,
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.root / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.root / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.password_file),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "ocp_ingest_dev.stack.hostname.host_name",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_url(),
            "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": self.metadata_url("db+postgresql"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api),
            # Workers (and the triggerer) reach the api-server's execution API: it must follow the port.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api}",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            # Task logs on one shared folder: the logs volume of compose, remote logging in AWS.
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs / "airflow"),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.ports["trigger_logs"]),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            # A task's calls to the execution API: the 5 s default times out while the api-server is busy
            # (seen on 2 shared cores: a task failed its first try and waited out its retry delay).
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            # A task whose worker died (SIGKILL, a lost node) stays "running" until its heartbeat is this old;
            # then the scheduler fails it into its retry. Production's 300 s would outlast a dev run.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "40",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # A restarted scheduler adopts the tasks of the one that died (once that one's heartbeat is 30 s
            # old): checked every 30 s instead of 300.
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "30",
            # A task left "queued" with no Celery message behind it (the scheduler, or PostgreSQL, died while
            # it was being sent; the next scheduler adopts it as PENDING) waits this long before it is sent
            # again: 180 s instead of 600, which a dev run would outlast (seen in the process-fault run). Two
            # workers of 4 slots keep a task's legitimate wait in the queue well under it.
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "180",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "15",
            "AIRFLOW_CONN_OCP_DEFAULT": os.environ.get("AIRFLOW_CONN_OCP_DEFAULT", json.dumps(ocp_conn)),
        }

    def _migrate_airflow(self) -> dict[str, str]:
        """Airflow's metadata DB on Postgres; the environment every Airflow component runs with."""
        since = time.monotonic()
        self.airflow_home.mkdir(parents=True)
        self.admin_password = secrets.token_urlsafe(16)
        # The simple auth manager keeps what it finds here and generates (and prints) only what is missing.
        self.password_file.touch(mode=0o600)
        self.password_file.write_text(json.dumps({"admin": self.admin_password}) + "\n")
        env = self.airflow_env()
        airflow = str(Path(sys.executable).with_name("airflow"))
        migrate = [airflow, *SET_UP_COMMANDS["airflow"][0]]
        self._run("airflow db migrate", migrate, env, self.timeouts["airflow db migrate"])
        self._timed("airflow db", since, "(migrated on PostgreSQL)")
        return env

    def _start_airflow(self, env: dict[str, str]) -> Callable[[], None]:
        since = time.monotonic()
        airflow = str(Path(sys.executable).with_name("airflow"))
        for component, command in (
            (
                "api-server",
                [
                    *AIRFLOW_COMPONENTS["api-server"],
                    "--port",
                    str(self.ports["airflow"]),
                    "--host",
                    "127.0.0.1",
                ],
            ),
            ("scheduler", AIRFLOW_COMPONENTS["scheduler"]),
            ("dag-processor", AIRFLOW_COMPONENTS["dag-processor"]),
            ("triggerer", AIRFLOW_COMPONENTS["triggerer"]),
        ):
            self.processes.spawn(
                component,
                [airflow, *command],
                env,
                cwd=self.airflow_home,
                log_path=self.logs / f"{component}.log",
                tier=TIER_COMPONENTS,
            )

        def healthy() -> None:
            components = ("api-server", "scheduler", "dag-processor", "triggerer")
            self.processes.wait_healthy(
                "airflow",
                lambda: (
                    is_healthy(health := airflow_health(self.ports["airflow"]))
                    and health is not None
                    and all(k in health for k in ("scheduler", "triggerer", "dag_processor"))
                ),
                self.timeouts["airflow"],
                watch=components,
                log_path=self.logs / "api-server.log",
            )
            self._timed("airflow", since, f"(api-server, scheduler, dag-processor, triggerer; {self.ui_url})")
            # Workers once the api-server answers: a task they ran before could not reach the execution
            # API and would fail its first try.
            seen_since = time.monotonic()
            self._spawn_workers(env)
            self.processes.wait_healthy(
                "celery workers",
                lambda: set(self.worker_names()) <= self.celery_workers_seen(),
                self.timeouts["celery workers"],
                watch=tuple(self.worker_names()),
                log_path=self.logs / f"{self.worker_names()[0]}.log",
            )
            self._timed(
                "celery workers", seen_since, f"({', '.join(self.worker_names())} answer ping via Redis)"
            )

        return healthy

    def _spawn_workers(self, env: dict[str, str]) -> None:
        """The Celery workers, each with its own name, working directory, scratch space and log server."""
        airflow = str(Path(sys.executable).with_name("airflow"))
        for name in self.worker_names():
            worker_env, work = self._private_env(env, name)
            worker_env[HOST_NAME_ENV] = name
            worker_env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(self.ports[name])
            self.processes.spawn(
                name,
                [
                    airflow,
                    *WORKER_COMMAND,
                    "--celery-hostname",
                    f"{name}@%h",
                    "--concurrency",
                    str(self.worker_concurrency),
                ],
                worker_env,
                cwd=work,
                log_path=self.logs / f"{name}.log",
                tier=TIER_COMPONENTS,
            )

    def celery_workers_seen(self) -> set[str]:
        """The workers answering a Celery ping through the broker (their names before '@')."""
        from celery import Celery  # type: ignore[import-untyped]

        app = Celery(broker=self.broker_url)
        try:
            replies = app.control.ping(timeout=1.0) or []
        finally:
            app.close()
        return {name.split("@", 1)[0] for reply in replies for name in reply}

    # -- receivers and haproxy -------------------------------------------------------------------------

    def _start_receivers(self) -> Callable[[], None]:
        since = time.monotonic()
        ocp_ingest = str(Path(sys.executable).with_name("ocp-ingest"))
        base = self._base_env()
        for name in self.receiver_names():
            env, work = self._private_env(base, name)
            env["OCP_INGEST_RECEIVER_SECRET"] = self.push_secret or ""
            self.processes.spawn(
                name,
                [ocp_ingest, *RECEIVER_COMMAND, "--host", "127.0.0.1", "--port", str(self.ports[name])],
                env,
                cwd=work,
                log_path=self.logs / f"{name}.log",
                tier=TIER_COMPONENTS,
            )

        def healthy() -> None:
            for name in self.receiver_names():
                url = f"http://127.0.0.1:{self.ports[name]}/healthz"
                self.processes.wait_healthy(
                    name,
                    lambda url=url: httpx.get(url, timeout=2.0).status_code == 200,  # type: ignore[misc]
                    self.timeouts["receiver"],
                    watch=(name,),
                )
            self._timed("receivers", since, f"({', '.join(self.receiver_names())} on the DynamoDB ledger)")

        return healthy

    def _start_haproxy(self, haproxy: str) -> None:
        since = time.monotonic()
        config = self.run_dir / "haproxy.cfg"
        config.write_text(
            render_haproxy_config(
                self.ports["haproxy"],
                self.ports["haproxy_stats"],
                [(name, self.ports[name]) for name in self.receiver_names()],
            )
        )
        self._run("haproxy check", [haproxy, "-c", "-f", str(config)], dict(os.environ), 30.0)
        self.processes.spawn(
            "haproxy",
            [haproxy, "-db", "-f", str(config)],  # -db: in the foreground, in our process group
            dict(os.environ),
            log_path=self.logs / "haproxy.log",
            tier=TIER_COMPONENTS,
            stop_signal=signal.SIGTERM,  # haproxy's hard stop (it ignores SIGINT in the foreground)
        )

        def every_receiver_up() -> bool:
            rows = self.haproxy_stats()
            up = all(rows.get(n, {}).get("status") == "UP" for n in self.receiver_names())
            return up and httpx.get(f"{self.push_url}/healthz", timeout=2.0).status_code == 200

        self.processes.wait_healthy(
            "haproxy", every_receiver_up, self.timeouts["haproxy"], watch=("haproxy",)
        )
        self._timed("haproxy", since, f"({self.push_url}, round robin over {self.receivers} receivers)")

    def haproxy_stats(self) -> dict[str, dict[str, str]]:
        text = httpx.get(f"http://127.0.0.1:{self.ports['haproxy_stats']}/stats;csv", timeout=2.0).text
        return haproxy_server_stats(text)

    def pushes_per_receiver(self) -> dict[str, int]:
        """Push requests each receiver answered through haproxy since the stack was up (its count of
        sessions per server, less the start-up's own health probe)."""
        return {
            name: int(row.get("stot") or 0) - self._haproxy_baseline.get(name, 0)
            for name, row in self.haproxy_stats().items()
        }

    # -- the tenant ------------------------------------------------------------------------------------

    def _start_simulator(self) -> None:
        since = time.monotonic()
        if self.seed is None:
            self.seed = int(time.time())
        env, work = self._private_env(self._base_env(), "simulator")
        env["OCP_INGEST_PUSH_SIGNING_SECRET"] = self.push_secret or ""
        port = self.ports["simulator"]
        self.processes.spawn(
            "simulator",
            simulator_command(
                port=port,
                calls=self.calls,
                seed=self.seed,
                api_error_share=self.api_error_share,
                broken_download_share=self.broken_download_share,
                window_hours=self.window_hours,
                mean_duration_s=self.mean_duration_s,
                push_url=self.push_url,
                push_rate=self.push_rate,
                truth_path=self.truth_path,
                extra=["--drop-share", str(self.push_loss), *self.simulator_args],
            ),
            env,
            cwd=work,
            log_path=self.logs / "simulator.log",
            tier=TIER_TENANT,
        )
        self.processes.wait_healthy(
            "simulator",
            lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0).status_code == 200,
            self.timeouts["simulator"],
            watch=("simulator",),
        )
        self._timed("simulator", since, f"({self.calls} calls, seed {self.seed}, pushing to haproxy)")

    # -- the harness's own view ------------------------------------------------------------------------

    def use_topology_here(self) -> None:
        """This process reads what the parts write (ledger, storage) with the same settings."""
        env = self._base_env()
        harness = self.run_dir / "harness" / "watcher"
        harness.mkdir(parents=True, exist_ok=True)
        for name in [k for k in os.environ if k.startswith("OCP_INGEST_")]:
            del os.environ[name]
        os.environ.update(
            {k: v for k, v in env.items() if k.startswith(("OCP_INGEST_", "AWS_", "AIRFLOW_CONN"))}
        )
        os.environ["OCP_INGEST_HOME"] = str(harness)
        if "airflow" not in sys.modules:  # Airflow reads its configuration once, at import
            os.environ["AIRFLOW_HOME"] = str(harness / "airflow_home")

    def api(self) -> Any:
        from ocp_ingest_dev.stack.airflow_api import AirflowApi

        return AirflowApi(self.ui_url, "admin", self.admin_password or "")

    def banner(self) -> str:
        receivers = ", ".join(f"{n} :{self.ports[n]}" for n in self.receiver_names())
        return (
            f"\nOCP ingest, production topology (plain processes on loopback) is up.\n"
            f"  Airflow UI:      {self.ui_url}  (user: admin; password in {self.password_file})\n"
            f"  Executor:        CeleryExecutor, {self.workers} workers ({', '.join(self.worker_names())}), "
            f"broker Redis :{self.ports['redis']}\n"
            f"  Metadata DB:     PostgreSQL {self.postgres_version} :{self.ports['postgres']}\n"
            f"  Ledger:          DynamoDB table {LEDGER_TABLE} (moto {self.moto_url})\n"
            f"  Storage:         s3://{self.bucket('recordings')}-{{lob}}, s3://{self.bucket('landing')}, "
            f"s3://{self.bucket('quarantine')}, s3://{self.bucket('audit')} (SSE-KMS key {self.kms_key_id})\n"
            f"  Push endpoint:   {self.push_url} (haproxy; stats http://127.0.0.1:{self.ports['haproxy_stats']}"
            f"/stats) -> {receivers}\n"
            f"  OCP simulator:   http://127.0.0.1:{self.ports['simulator']}  ({self.calls} calls, seed "
            f"{self.seed})\n"
            f"  Run directory:   {self.run_dir}  (component logs in {self.logs})\n"
            f"Press Ctrl-C to stop everything.\n"
        )

    def run_forever(self, progress_interval_s: float = 5.0) -> int:
        """``make run TOPOLOGY=distributed``: start, print progress until every call is settled, run the
        report, then wait for Ctrl-C / SIGTERM (or a component dying)."""
        from ocp_ingest_dev.stack.watch import report_settled, watch_calls

        signal.signal(signal.SIGTERM, raise_interrupt)
        started = time.monotonic()
        self.progress = self.progress or sys.stdout
        self._say(f"Starting the production topology in {self.run_dir} ...")
        quiet_client_logs()
        try:
            self.start()
            self.use_topology_here()
            print(self.banner(), flush=True)
            if self.calls > 0:
                done = watch_calls(self.truth_path, self.alive, started, progress_interval_s, sys.stdout)
                if done is not None:
                    report_settled(*done, time.monotonic() - started, sys.stdout, self.api(), self.ui_url)
                    print(f"  tasks per worker: {self.tasks_per_worker()}", flush=True)
                    print(f"  realtime stores per worker: {self.realtime_stores_per_worker()}", flush=True)
                    print(f"  pushes per receiver (haproxy): {self.pushes_per_receiver()}", flush=True)
            while self.alive():
                time.sleep(1.0)
            dead = self.processes.dead()
            which = f"{dead.name} stopped unexpectedly ({dead.where()})" if dead else "a component stopped"
            print(f"{which}; shutting down.", file=sys.stderr)
            return 1
        except StackError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nStopping the production topology...", flush=True)
            return 0
        finally:
            self.stop()

    def tasks_per_worker(self) -> dict[str, int]:
        """Task instances that ran, by the worker that ran them (their ``hostname`` in the REST API)."""
        from collections import Counter

        api = self.api()
        counts: Counter[str] = Counter()
        try:
            for ti in api.task_instances():
                if ti.get("hostname") and ti.get("state") in ("success", "failed", "up_for_retry", "running"):
                    counts[str(ti["hostname"])] += 1
        finally:
            api.close()
        return dict(sorted(counts.items()))

    def realtime_stores_per_worker(self) -> dict[str, int]:
        """Recordings the realtime DAG stored, by the worker that stored them (each run's summary says)."""
        from collections import Counter

        api = self.api()
        counts: Counter[str] = Counter()
        try:
            for run in api.dag_runs("ocp_realtime_ingest"):
                summary = api.return_value("ocp_realtime_ingest", run["dag_run_id"], "summarize") or {}
                counts.update(summary.get("stored_by_worker") or {})
        finally:
            api.close()
        return dict(sorted(counts.items()))
