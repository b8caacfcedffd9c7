"""A real browser on the operator's pages: headless Chromium on a private ``airflow standalone``.

Used by ``tools/screenshots.py`` (the README's screenshots) and ``tests/dev/test_browser.py`` (the same
pages, with assertions). Chromium is Debian's (``apt-get install chromium``), driven by Playwright's
Python client with ``executable_path``: Playwright's own browser download is never used.

The Airflow 3 UI is a React app: every step waits for an element or a text, never for a fixed time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ocp_ingest_dev.stack.standalone import airflow_environment, airflow_health, is_healthy
from ocp_ingest_dev.stack.supervise import stop_groups

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Playwright

    from ocp_ingest.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
RECONCILIATION = "ocp_reconciliation"
REPORT = "ocp_completeness_report"
# As root, on a closed network: no sandbox (root), no GPU, and none of Chromium's own network traffic
# (its background fetches are refused here, many at a time). Playwright adds --headless and a fresh
# --user-data-dir of its own.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}  # a common phone's CSS viewport
T = TypeVar("T")


def chromium_path() -> str | None:
    """``OCP_INGEST_CHROMIUM``, else Debian's ``chromium`` on the PATH; None when there is none."""
    explicit = os.environ.get("OCP_INGEST_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch_chromium(playwright: Playwright, executable: str) -> Browser:
    return playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS), headless=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Callable[[], T | None], timeout_s: float, what: str, poll_s: float = 1.0) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll_s)
    raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")


# ------------------------------------------------------------------------------------ the private stack
@dataclass
class Standalone:
    """A running private ``airflow standalone``: its URL, home and admin login."""

    base_url: str
    home: Path
    username: str
    password: str
    log: Path

    def http(self) -> httpx.Client:
        """An HTTP client of the REST API with the admin's token (close it, or use it in ``with``)."""
        token = httpx.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=30,
        )
        token.raise_for_status()
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=120,  # an api-server sharing 2 busy cores with the scheduler and the tasks
        )


@contextmanager
def private_standalone(
    workdir: Path, timeout_s: float = 600.0, environment: Mapping[str, str] | None = None
) -> Iterator[Standalone]:
    """``airflow standalone`` with its own AIRFLOW_HOME under ``workdir``, a free port, this project's
    dags/ and plugins/, every DAG paused (nothing runs unless asked); stopped (its process group) on exit.
    ``environment`` is applied last (e.g. DAGs unpaused, scheduled runs on).

    The OCP_INGEST_* environment of the caller (its ledger, audit area) is the tasks' environment.
    Yields once the api-server is healthy, the admin password is written and both DAGs are parsed.
    """
    port = _free_port()
    home = workdir / "airflow_home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **airflow_environment(ROOT, port, home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # Only the runs asked for: no scheduled or continuous runs competing for the CPU.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
        **(environment or {}),
    }
    log_path = workdir / "standalone.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("airflow")), "standalone"],
            env=env,
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            def healthy() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"airflow standalone exited ({proc.returncode}); see {log_path}")
                return is_healthy(airflow_health(port))

            _wait(healthy, timeout_s, f"airflow standalone on port {port} (log: {log_path})")
            passwords = home / "simple_auth_manager_passwords.json.generated"
            _wait(passwords.exists, 60, "the generated admin password")
            users = json.loads(passwords.read_text())
            username = "admin" if "admin" in users else next(iter(users))
            stack = Standalone(f"http://localhost:{port}", home, username, users[username], log_path)
            with stack.http() as http:
                for dag_id in (RECONCILIATION, REPORT):
                    url = f"/api/v2/dags/{dag_id}"
                    _wait(partial(_answers, http, url), 120, f"{dag_id} parsed")
            yield stack
        finally:
            _stop(proc)


def _answers(http: httpx.Client, url: str) -> bool:
    try:
        return http.get(url).status_code == 200
    except httpx.TimeoutException:
        return False


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    """SIGTERM the standalone's process group, then SIGKILL whatever of it is left: its scheduler (and the
    executor's workers) can outlive the leader, and must not outlive the test."""
    stop_groups([(proc, signal.SIGTERM)], grace_s)


@contextmanager
def temporary_workdir(keep: Path | None = None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="ocp-ingest-browser-") as tmp:
        yield Path(tmp)


# ------------------------------------------------------------------------------------ report data
def _fixed(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def seed_report_day(ledger: Ledger, day: date) -> dict[str, int]:
    """A small, varied day of calls in ``ledger`` (deterministic): stored by realtime within a minute,
    by reconciliation hours later, closed with no recording expected, escalated, and two still unresolved
    late in the day (23:10 and 23:30: past a 24 h SLA from 23:13 the next day on). Returns counts by
    outcome."""
    from ocp_ingest.ledger import IngestionSource, TerminalState
    from ocp_ingest.ledger.transitions import (
        AttemptFailed,
        CallIdentity,
        CdrEnd,
        CdrStart,
        MarkTerminal,
        Stored,
    )

    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    lobs = ("retail", "cards", "insurance", "mortgages")
    counts: dict[str, int] = {}
    clock = ledger.clock
    try:
        for n in range(48):
            lob = lobs[n % len(lobs)]
            begin = start + timedelta(minutes=13 + n * 27)  # 00:13 .. 21:22
            end = begin + timedelta(seconds=95 + 37 * (n % 9))
            dialog_id = f"{n + 1:032X}"
            identity = CallIdentity(ocp_group=f"ocp-{lob}", lob=lob, flow_name=f"{lob}_main")
            if n in (46, 47):  # the unresolved ones: moved to the day's last hour
                begin = start + timedelta(hours=23, minutes=10 + 20 * (n - 46))
                end = begin + timedelta(minutes=3)
            ledger.clock = _fixed(begin)
            ledger.apply(CdrStart(dialog_id, begin, identity))
            ledger.apply(
                CdrEnd(dialog_id, end, int((end - begin).total_seconds() * 1000), "NORMAL", identity)
            )
            if n in (46, 47):
                ledger.clock = _fixed(end + timedelta(minutes=20))
                ledger.apply(AttemptFailed(dialog_id, "manual__browser", "not in the export's listing yet"))
                outcome = "unresolved"
            elif n % 11 == 5:
                ledger.apply(MarkTerminal(dialog_id, TerminalState.NO_RECORDING_EXPECTED, "tel: origin"))
                outcome = "no_recording_expected"
            elif n == 40:
                ledger.apply(MarkTerminal(dialog_id, TerminalState.UNRECOVERABLE_MAX_ATTEMPTS, "5 attempts"))
                outcome = "escalated"
            else:
                late = n % 5 == 2  # pushed audio lost: recovered from an OCP export hours later
                stored_at = end + (
                    timedelta(minutes=35 + 3 * n) if late else timedelta(seconds=4 + 3 * (n % 7))
                )
                ledger.clock = _fixed(stored_at)
                source = IngestionSource.RECONCILIATION if late else IngestionSource.REALTIME
                url = f"file:///recordings/{lob}/{dialog_id}.wav"
                ledger.apply(Stored(dialog_id, url, f"{n:064x}", 480_000, source, identity=identity))
                outcome = source.value.lower()
            counts[outcome] = counts.get(outcome, 0) + 1
    finally:
        ledger.clock = clock
    return counts


def write_report(day: date) -> dict[str, Any]:
    """The report task's own code (``ocp_completeness_report``'s ``completeness_report``) for ``day``,
    after seeding the day into the configured ledger: its return value (URLs and totals)."""
    from ocp_ingest.airflow.tasks import report as report_tasks
    from ocp_ingest.config import Settings
    from ocp_ingest.ledger import open_ledger

    with open_ledger(Settings.from_env()) as ledger:
        seed_report_day(ledger, day)
    return report_tasks.report(day)


# ------------------------------------------------------------------------------------ pages
def login(page: Page, stack: Standalone, path: str) -> None:
    """The simple auth manager's login page, filled in like a person would; ends on ``path``."""
    page.goto(f"{stack.base_url}{path}")
    page.get_by_label("Username").fill(stack.username)
    page.get_by_label("Password").fill(stack.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{path}")


def open_trigger_form(page: Page, stack: Standalone, dag_id: str, first_title: str) -> Locator:
    """The DAG's page, its Trigger button, the dialog; returns the dialog once ``first_title`` shows."""
    page.goto(f"{stack.base_url}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.locator("[role=dialog][data-scope=dialog][data-part=content]")  # not a picker's popover
    dialog.get_by_text(first_title, exact=True).wait_for()
    return dialog


def field_helper_texts(dialog: Locator) -> list[str]:
    return [t.strip() for t in dialog.locator("[data-part=helper-text]").all_inner_texts()]


def close_popups(dialog: Locator) -> None:
    """Closes an open list or picker by clicking the dialog's title (Escape would close the dialog)."""
    dialog.get_by_text(re.compile(r"^Trigger Dag")).click()


def open_multi_select(page: Page, dialog: Locator) -> list[str]:
    """Opens the (only) multi-select of the form; its choices as shown."""
    dialog.get_by_role("combobox", name="Select one or multiple values").click()
    options = page.get_by_role("option")
    options.first.wait_for()
    return [t.strip() for t in options.all_inner_texts()]


def open_date_picker(page: Page, dialog: Locator, index: int) -> Locator:
    """Opens the ``index``-th date-time picker of the dialog (0: the logical date); the open picker."""
    dialog.get_by_test_id("datetime-input").nth(index).click()
    picker = page.locator("[data-scope=popover][data-part=content]:visible")
    picker.get_by_placeholder("YYYY/MM/DD").wait_for()
    return picker


def type_into_date_picker(page: Page, dialog: Locator, index: int, text: str) -> Locator:
    """Types ``text`` into the date field of the ``index``-th date-time picker; the open picker."""
    picker = open_date_picker(page, dialog, index)
    date_input = picker.get_by_placeholder("YYYY/MM/DD")
    date_input.fill(text)
    date_input.press("Tab")
    return picker


def trigger_with_conf(page: Page, dialog: Locator, conf_json: str) -> Locator:
    """Advanced Options: the run's configuration JSON replaced by ``conf_json`` (pasted, as a person
    would: typing into the editor auto-closes brackets), "Unpause on trigger" cleared, then Trigger.
    Returns the dialog's error alert."""
    unpause = dialog.get_by_role("checkbox", name=re.compile(r"^Unpause "))
    if unpause.count() and unpause.is_checked():
        dialog.get_by_text(re.compile(r"^Unpause .* on trigger$")).click()
        assert not unpause.is_checked()
    dialog.get_by_role("button", name="Advanced Options").click()
    editor = dialog.locator("[data-mode-id=json] .view-lines")
    editor.click()
    page.evaluate("text => navigator.clipboard.writeText(text)", conf_json)
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.press("ControlOrMeta+V")
    dialog.get_by_text(conf_json.splitlines()[1].strip()).first.wait_for()  # the pasted text is shown
    dialog.get_by_test_id("trigger-dag-submit").click()
    alert = dialog.get_by_test_id("error-alert")
    alert.wait_for()
    return alert


def open_report_task(page: Page, stack: Standalone, run_id: str) -> Locator:
    """The report run's ``completeness_report`` task page, once its log shows the report's URL; that line.

    Airflow 3.3's UI draws an extra link only for http(s) and mailto URLs: the "Completeness report"
    button appears for reports on S3 (the S3 console), not for local storage's ``file://`` URL, which the
    task's log, its XCom and ``GET .../taskInstances/completeness_report/links`` carry.
    """
    page.goto(f"{stack.base_url}/dags/{REPORT}/runs/{run_id}/tasks/completeness_report")
    line = page.get_by_text(re.compile(r"report: (file|s3)://"))
    line.wait_for()
    return line


def page_layout(page: Page) -> dict[str, Any]:
    """What a phone check needs: the viewport meta, the layout viewport, the widest content, the h1."""
    return dict(
        page.evaluate(
            """() => {
                const meta = document.querySelector('meta[name=viewport]');
                const h1 = document.querySelector('h1');
                const box = h1 ? h1.getBoundingClientRect() : null;
                return {
                    viewport_meta: meta ? meta.getAttribute('content') : null,
                    inner_width: window.innerWidth,
                    client_width: document.documentElement.clientWidth,
                    scroll_width: document.scrollingElement.scrollWidth,
                    h1: h1 ? h1.innerText : null,
                    h1_left: box ? box.left : null,
                    h1_right: box ? box.right : null,
                };
            }"""
        )
    )
