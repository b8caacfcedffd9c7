"""The HTML report reads well: durations for humans, a phone-sized viewport, "none" for empty sections."""

from __future__ import annotations

import pytest

from ocp_ingest.report.completeness import Tally, human_duration, render_html

REPORT = {
    "date": "2026-11-20",
    "generated_at": "2026-11-21T02:00:05+00:00",
    "population": "calls started on the date (UTC) with a dialog_end",
    "sla_hours": 24.0,
    "total": Tally().to_dict(),
    "by_lob": {},
    "unresolved_calls": [],
    "without_dialog_end": {"counts": {}, "open_timeout_s": 7200, "overdue_past_sla": 0, "overdue_calls": []},
}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.412, "0.412 s"),
        (45.32, "45.3 s"),
        (61, "1 min 1 s"),
        (3600, "1 h"),
        (8344.92, "2 h 19 min"),
        (2 * 86400 + 3700, "2 d 1 h"),
    ],
)
def test_human_durations(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text


def test_an_empty_day_says_none_and_fits_a_phone() -> None:
    page = render_html(REPORT)
    assert "<meta name='viewport' content='width=device-width, initial-scale=1'>" in page
    assert page.count("<p class='none'>none</p>") == 3  # outcomes, time to storage, unresolved calls
    assert "<th>dialog id</th>" not in page  # no bare table headers
    assert "SLA 1 d." in page and "started more than 2 h ago" in page


def test_durations_in_the_table_and_charts_are_human() -> None:
    tally = Tally(calls_ended=1, stored_realtime=1, seconds_to_storage=[8344.92])
    report = {**REPORT, "total": tally.to_dict(), "by_lob": {"cards": tally.to_dict()}}
    page = render_html(report)
    assert "2 h 19 min" in page and "8344.92" not in page
    assert 'viewBox="0 0 640' in page  # the charts scale down with the page
