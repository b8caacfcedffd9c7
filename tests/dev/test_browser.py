"""The operator's pages in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright)
on one private ``airflow standalone``, signed in through the UI's login page.

* ``ocp_reconciliation``'s trigger form shows every param's title and description, date-time pickers for
  the window and the routing file's LOBs as choices;
* a bad date is refused twice before any run exists: by the picker, and (typed into the run's
  configuration JSON) by Airflow's validation, whose HTTP 400 the dialog shows;
* the completeness report, written by the report task's own code over a seeded ledger, has the viewport
  meta and fits a 390 px phone screen: no horizontal scrolling of the page, its headline inside.

Without Chromium the module is skipped, unless ``CI`` is set: then it fails (CI must install it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ocp_ingest.airflow.params import lob_choices
from ocp_ingest.config import Settings
from ocp_ingest_dev import browser

pytestmark = pytest.mark.slow

TITLES = (
    "Window start (UTC)",
    "Window end (UTC)",
    "OCP groups",
    "Lines of business",
    "Grace period (s)",
    "Dry run",
)


def _unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (requirements-test.txt)"
    if browser.chromium_path() is None:
        return "no Chromium: apt-get install chromium (or set OCP_INGEST_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def chromium_executable() -> str:
    reason = _unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the browser check cannot run: {reason}")
        pytest.skip(reason)
    path = browser.chromium_path()
    assert path is not None
    return path


@pytest.fixture(scope="module")
def ingest_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private OCP_INGEST_HOME for the whole module (Airflow's tasks and the report share it)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("OCP_INGEST_")}
    for name in saved:
        del os.environ[name]
    home = tmp_path_factory.mktemp("browser") / "ingest"
    os.environ["OCP_INGEST_HOME"] = str(home)
    if "OCP_INGEST_CHROMIUM" in saved:
        os.environ["OCP_INGEST_CHROMIUM"] = saved["OCP_INGEST_CHROMIUM"]
    yield home
    for name in [k for k in os.environ if k.startswith("OCP_INGEST_")]:
        del os.environ[name]
    os.environ.update(saved)


@pytest.fixture(scope="module")
def stack(
    chromium_executable: str, ingest_env: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[browser.Standalone]:
    with browser.private_standalone(tmp_path_factory.mktemp("standalone")) as running:
        yield running


@pytest.fixture(scope="module")
def chrome(chromium_executable: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = browser.launch_chromium(playwright, chromium_executable)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def signed_in(chrome: Any, stack: browser.Standalone) -> Iterator[Any]:
    """A page signed in through the login form (the session cookie is the browser context's)."""
    context = chrome.new_context(
        viewport={"width": 1280, "height": 1400}, permissions=["clipboard-read", "clipboard-write"]
    )
    context.set_default_timeout(60_000)  # a React app served by an api-server sharing 2 busy cores
    page = context.new_page()
    browser.login(page, stack, f"/dags/{browser.RECONCILIATION}")
    yield page
    context.close()


def test_the_trigger_form_shows_titles_date_time_pickers_and_lob_choices(
    signed_in: Any, stack: browser.Standalone
) -> None:
    page = signed_in
    dialog = browser.open_trigger_form(page, stack, browser.RECONCILIATION, TITLES[0])
    labels = [text.rstrip(" *\n") for text in dialog.locator("label").all_inner_texts()]
    assert all(title in labels for title in TITLES), labels  # "*": Dry run is required (a boolean)
    helpers = " ".join(browser.field_helper_texts(dialog))
    assert "empty means all" in helpers and "OCP_INGEST_PENDING_GRACE_S" in helpers
    assert "window_start" not in dialog.inner_text()  # no raw names where titles belong
    # The logical date's picker and the window's two.
    assert dialog.get_by_test_id("datetime-input").count() == 3
    picker = browser.open_date_picker(page, dialog, 1)
    assert picker.get_by_text("UTC", exact=True).is_visible()
    browser.close_popups(dialog)
    choices = browser.open_multi_select(page, dialog)
    assert choices == lob_choices(Settings.from_env()) and "retail" in choices


def test_a_bad_date_is_refused_by_the_form_and_by_airflow_before_any_run(
    signed_in: Any, stack: browser.Standalone
) -> None:
    page = signed_in
    dialog = browser.open_trigger_form(page, stack, browser.RECONCILIATION, TITLES[0])
    picker = browser.type_into_date_picker(page, dialog, 1, "yesterday")
    picker.get_by_text("Invalid date format.").wait_for()
    page.reload()

    dialog = browser.open_trigger_form(page, stack, browser.RECONCILIATION, TITLES[0])
    conf = json.dumps({"window_start": "yesterday", "window_end": None, "dry_run": True}, indent=2)
    alert = browser.trigger_with_conf(page, dialog, conf)
    text = alert.inner_text()
    assert "400" in text and "'yesterday' is not a 'date-time'" in text, text
    with stack.http() as http:
        runs = http.get(f"/api/v2/dags/{browser.RECONCILIATION}/dagRuns").json()
        dag = http.get(f"/api/v2/dags/{browser.RECONCILIATION}").json()
    assert runs["total_entries"] == 0, runs
    assert dag["is_paused"] is True  # "Unpause on trigger" was cleared: nothing else started either


def test_the_report_has_a_viewport_and_fits_a_phone(chrome: Any, ingest_env: Path) -> None:
    # The seeded day's two unresolved calls end at 23:13 and 23:33: inside the 24-h SLA only while less
    # than a day old, so from 23:00 UTC on the report is of today (yesterday's would fail its SLA).
    now = datetime.now(UTC)
    day = (now if now.hour >= 23 else now - timedelta(days=1)).date()
    result = browser.write_report(day)
    assert result["calls_ended"] == 48 and result["unresolved"] == 2
    for viewport, mobile in ((browser.PHONE, True), (browser.DESKTOP, False)):
        context = chrome.new_context(viewport=viewport, is_mobile=mobile, has_touch=mobile)
        page = context.new_page()
        page.goto(result["html_url"])
        page.get_by_role("heading", level=1).wait_for()
        layout = browser.page_layout(page)
        context.close()
        width = viewport["width"]
        assert layout["viewport_meta"] == "width=device-width, initial-scale=1"
        # The meta is honoured (a mobile browser lays out at the screen's width, not 980 px) and nothing
        # makes the page wider than the screen: a wide table scrolls inside its own box.
        assert layout["client_width"] == width and layout["inner_width"] == width, layout
        assert layout["scroll_width"] <= width, layout
        assert f"completeness {day}" in layout["h1"]
        assert layout["h1_left"] >= 0 and layout["h1_right"] <= width, layout


def test_stopping_a_standalone_leaves_none_of_its_process_group(tmp_path) -> None:
    """The leader exits on SIGTERM, as `airflow standalone` does, while a child (its scheduler, say) stays:
    nothing of the group may outlive the stop."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import signal, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); "
        "time.sleep(600)'], stdout=sys.stdout)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "1"  # the child ignores SIGTERM now
    browser._stop(proc, grace_s=1.0)  # type: ignore[arg-type]
    assert proc.returncode == -signal.SIGTERM
    time.sleep(0.5)  # SIGKILL is delivered asynchronously
    assert not _running_in_group(proc.pid)


def _running_in_group(pgid: int) -> list[int]:
    """The processes of group ``pgid`` still running (zombies waiting to be reaped do not count)."""
    import os

    running = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            running.append(int(entry))
    return running
