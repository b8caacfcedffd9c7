"""The README's screenshots of the operator's pages, taken by headless Chromium on a private Airflow.

    .venv/bin/python tools/screenshots.py [--out docs/screenshots] [--keep DIR]

Starts ``airflow standalone`` with its own AIRFLOW_HOME and OCP_INGEST_HOME in a temporary directory (a
free port, this project's dags/ and plugins/, DAGs paused, no scheduled runs), seeds yesterday's calls
into that ledger, runs ``ocp_completeness_report`` for that day through the REST API, then signs in
through the UI's login page with the generated admin password and saves:

  trigger-form.png            ocp_reconciliation's trigger form: titles, descriptions, the LOB choices
  trigger-date-picker.png     the window's date-time picker (UTC)
  trigger-bad-date.png        "yesterday" typed into the picker: refused by the form
  trigger-bad-date-api.png    "yesterday" in the run's configuration JSON: refused by Airflow (HTTP 400),
                              no run created
  report-task.png             the report run's task: success, and its log line with the report's URL
  report-desktop.png          that report (the link's file URL) at 1280 px
  report-phone.png            the same report on a phone (390 px, touch, the page's viewport meta honoured)

Needs Debian's chromium (``apt-get install chromium``; ``OCP_INGEST_CHROMIUM`` names another binary) and
the Python ``playwright`` package (requirements-test.txt), which drives it; nothing is downloaded. Most of
its time is Airflow starting and the report run; the browser part takes about a minute. Everything it
started is stopped when it ends. It lives
in tools/ rather than benchmarks/ because it measures nothing: it makes the docs' pictures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include")]  # the dev harness without an install (an editable one also works)

from ocp_ingest_dev import browser  # noqa: E402

BAD_CONF = json.dumps({"window_start": "yesterday", "window_end": None, "dry_run": True}, indent=2)
SIZE_BUDGET = 150_000  # bytes per PNG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--keep", type=Path, help="work directory to keep (Airflow's log, the report)")
    args = parser.parse_args(argv)
    chromium = browser.chromium_path()
    if chromium is None:
        print("no Chromium: apt-get install chromium (or set OCP_INGEST_CHROMIUM)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with browser.temporary_workdir(args.keep) as work:
        os.environ["OCP_INGEST_HOME"] = str(work / "ingest")
        day = (datetime.now(UTC) - timedelta(days=1)).date()
        from ocp_ingest.config import Settings
        from ocp_ingest.ledger import open_ledger

        with open_ledger(Settings.from_env()) as ledger:
            print(f"seeded {day}: {browser.seed_report_day(ledger, day)}")
        with browser.private_standalone(work) as stack:
            print(f"airflow standalone up at {stack.base_url} after {time.monotonic() - started:.0f} s")
            run_id, report_url = _run_report(stack, day)
            print(f"report run {run_id}: {report_url}")
            saved = _shoot(stack, chromium, args.out, run_id, report_url)
    for path in saved:
        size = path.stat().st_size
        flag = "" if size <= SIZE_BUDGET else f"  (over {SIZE_BUDGET // 1000} KB)"
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"saved {shown}: {size // 1000} KB{flag}")
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0


def _run_report(stack: browser.Standalone, day: object) -> tuple[str, str]:
    """``ocp_completeness_report`` for ``day`` through the REST API (unpaused for it); its run id and
    the task's "Completeness report" extra link."""
    dag = browser.REPORT
    with stack.http() as http:
        conf = {"date": str(day)}
        made = http.post(f"/api/v2/dags/{dag}/dagRuns", json={"logical_date": None, "conf": conf})
        made.raise_for_status()
        run_id = made.json()["dag_run_id"]
        http.patch(f"/api/v2/dags/{dag}", json={"is_paused": False}).raise_for_status()
        deadline = time.monotonic() + 900
        state = ""
        while time.monotonic() < deadline:
            try:
                state = http.get(f"/api/v2/dags/{dag}/dagRuns/{run_id}").json()["state"]
            except httpx.TimeoutException:
                continue  # a busy machine: ask again
            if state in ("success", "failed"):
                break
            time.sleep(2)
        http.patch(f"/api/v2/dags/{dag}", json={"is_paused": True}).raise_for_status()
        if state != "success":
            raise RuntimeError(f"report run {run_id}: {state or 'not finished'}; see {stack.log}")
        links = http.get(f"/api/v2/dags/{dag}/dagRuns/{run_id}/taskInstances/completeness_report/links")
        links.raise_for_status()
        return run_id, links.json()["extra_links"]["Completeness report"]


def _shoot(stack: browser.Standalone, chromium: str, out: Path, run_id: str, report_url: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    saved: list[Path] = []

    def keep(name: str) -> Path:
        saved.append(out / name)
        return out / name

    with sync_playwright() as playwright:
        chrome = browser.launch_chromium(playwright, chromium)
        try:
            # Tall enough for the whole trigger dialog; clipboard for pasting the configuration JSON.
            context = chrome.new_context(
                viewport={"width": 1280, "height": 1400}, permissions=["clipboard-read", "clipboard-write"]
            )
            context.set_default_timeout(120_000)  # the UI's api-server shares 2 busy cores
            page = context.new_page()
            browser.login(page, stack, f"/dags/{browser.RECONCILIATION}")

            dialog = browser.open_trigger_form(page, stack, browser.RECONCILIATION, "Window start (UTC)")
            print("LOB choices:", browser.open_multi_select(page, dialog))
            dialog.screenshot(path=keep("trigger-form.png"))
            browser.close_popups(dialog)

            picker = browser.open_date_picker(page, dialog, 1)
            picker.get_by_placeholder("YYYY/MM/DD").fill("2026/11/24")
            picker.get_by_placeholder("HH:mm").fill("09:00")
            dialog.get_by_text("Nov 24, 2026 09:00").wait_for()  # the field shows the picked value
            dialog.screenshot(path=keep("trigger-date-picker.png"))

            page.reload()
            dialog = browser.open_trigger_form(page, stack, browser.RECONCILIATION, "Window start (UTC)")
            picker = browser.type_into_date_picker(page, dialog, 1, "yesterday")
            picker.get_by_text("Invalid date format.").wait_for()
            dialog.screenshot(path=keep("trigger-bad-date.png"))

            page.reload()
            dialog = browser.open_trigger_form(page, stack, browser.RECONCILIATION, "Window start (UTC)")
            alert = browser.trigger_with_conf(page, dialog, BAD_CONF)
            alert.get_by_text("is not a 'date-time'", exact=False).wait_for()
            dialog.screenshot(path=keep("trigger-bad-date-api.png"))
            with stack.http() as http:
                runs = http.get(f"/api/v2/dags/{browser.RECONCILIATION}/dagRuns").json()["total_entries"]
            print(f"runs of {browser.RECONCILIATION} after the refused trigger: {runs}")

            page.set_viewport_size(browser.DESKTOP)
            line = browser.open_report_task(page, stack, run_id)
            print("the report task's log:", line.inner_text().strip())
            page.screenshot(path=keep("report-task.png"))
            context.close()

            # The extra link's URL (REST API): a file:// URL with local storage, which Airflow's UI does not
            # draw as a button (it draws http(s) and mailto links only); a browser opens it directly.
            desktop = chrome.new_context(viewport=browser.DESKTOP)
            page = desktop.new_page()
            page.goto(report_url)
            page.get_by_role("heading", level=1).wait_for()
            print("report at 1280 px:", browser.page_layout(page))
            page.screenshot(path=keep("report-desktop.png"), full_page=True)
            desktop.close()

            phone = chrome.new_context(viewport=browser.PHONE, is_mobile=True, has_touch=True)
            page = phone.new_page()
            page.goto(report_url)
            page.get_by_role("heading", level=1).wait_for()
            print("report at 390 px:", browser.page_layout(page))
            page.screenshot(path=keep("report-phone.png"))  # the first screen, as a phone shows it
            phone.close()
        finally:
            chrome.close()
    return saved


if __name__ == "__main__":
    sys.exit(main())
