"""The daily completeness report: the auditor's view of one day of calls, measured from the ledger.

Population: calls that started on the day (UTC) and have their dialog_end (the ledger's window index).
Each is stored (by realtime or by reconciliation), terminal with a reason, or unresolved; unresolved calls
whose end is older than ``OCP_INGEST_REPORT_SLA_HOURS`` breach the SLA. Calls of the day whose dialog_end
never arrived are reported beside it (``without_dialog_end``): once older than
``OCP_INGEST_OPEN_CALL_TIMEOUT_S`` they are counted (stored, terminal or overdue), and overdue ones past the
SLA breach it too; younger ones may still be going on and are left out. The main table keeps the Athena
queries' population (``has_cdr_end``), so both agree. Time to storage is the time from
the end of the call to S3_STORED. Output: a JSON document and a self-contained HTML page (inline SVG).
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ocp_ingest.config import Settings
from ocp_ingest.ledger import IngestionSource, Ledger
from ocp_ingest.ledger.model import CallRecord

UNRESOLVED_LISTED = 200


class CompletenessSlaBreached(RuntimeError):
    """Unresolved calls are older than the SLA: someone must act (see the report's unresolved list)."""


def percentile(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (as DuckDB's quantile_cont and numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Tally:
    calls_ended: int = 0
    stored_realtime: int = 0
    stored_reconciliation: int = 0
    terminal_by_reason: Counter[str] = field(default_factory=Counter)
    unresolved: int = 0
    unresolved_past_sla: int = 0
    seconds_to_storage: list[float] = field(default_factory=list)

    def add(self, record: CallRecord, sla_cutoff: datetime) -> str:
        self.calls_ended += 1
        if record.s3_stored:
            if record.ingestion_source is IngestionSource.RECONCILIATION:
                self.stored_reconciliation += 1
            else:
                self.stored_realtime += 1
            if record.s3_stored_at and record.call_end_ts:
                self.seconds_to_storage.append((record.s3_stored_at - record.call_end_ts).total_seconds())
            return "stored"
        if record.terminal_state is not None:
            self.terminal_by_reason[record.terminal_state.value] += 1
            return "terminal"
        self.unresolved += 1
        ended = record.call_end_ts or record.cdr_end_at
        if ended is not None and ended < sla_cutoff:
            self.unresolved_past_sla += 1
            return "past_sla"
        return "unresolved"

    def to_dict(self) -> dict[str, Any]:
        stored = self.stored_realtime + self.stored_reconciliation
        settled = stored + sum(self.terminal_by_reason.values())
        return {
            "calls_ended": self.calls_ended,
            "stored": stored,
            "stored_realtime": self.stored_realtime,
            "stored_reconciliation": self.stored_reconciliation,
            "terminal": sum(self.terminal_by_reason.values()),
            "terminal_by_reason": dict(sorted(self.terminal_by_reason.items())),
            "unresolved": self.unresolved,
            "unresolved_past_sla": self.unresolved_past_sla,
            "completeness_pct": round(100.0 * settled / self.calls_ended, 2) if self.calls_ended else None,
            "time_to_storage_s": {
                name: _round(percentile(self.seconds_to_storage, p))
                for name, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
            },
        }


def human_duration(seconds: float | None) -> str:
    """``8344.92`` -> ``"2 h 19 min"``: a unit and the next one below it (rounded down); "-" for none."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{max(seconds, 0):.3g} s"
    units = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
    whole = int(seconds)
    for n, (unit, size) in enumerate(units):
        if whole >= size:
            text = f"{whole // size} {unit}"
            next_unit, next_size = units[n + 1]
            rest = whole % size // next_size
            return f"{text} {rest} {next_unit}" if rest else text
    return "0 s"  # pragma: no cover - seconds >= 60 always has a unit


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def build_report(
    ledger: Ledger, settings: Settings, day: date, now: datetime | None = None
) -> dict[str, Any]:
    """The report of ``day``: totals and per LOB, plus the unresolved calls (oldest first, first 200)."""
    now = now or datetime.now(UTC)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    cutoff = now - timedelta(hours=settings.report_sla_hours)
    open_cutoff = now - timedelta(seconds=settings.open_call_timeout_s)
    total = Tally()
    by_lob: defaultdict[str, Tally] = defaultdict(Tally)
    unresolved: list[CallRecord] = []
    without_end: Counter[str] = Counter()
    overdue: list[CallRecord] = []
    for record in ledger.calls_started_between(start, start + timedelta(days=1)):
        if not record.has_cdr_end:
            if record.is_open and (record.open_since or now) >= open_cutoff:
                continue  # may still be going on: not counted yet
            if record.s3_stored:
                without_end["stored"] += 1
            elif record.terminal_state is not None:
                without_end[f"terminal:{record.terminal_state.value}"] += 1
            else:
                without_end["overdue"] += 1
                overdue.append(record)
            continue
        verdict = total.add(record, cutoff)
        by_lob[record.lob or "none"].add(record, cutoff)
        if verdict in ("unresolved", "past_sla"):
            unresolved.append(record)
    unresolved.sort(key=lambda r: (r.call_end_ts or r.cdr_end_at or now, r.dialog_id))
    return {
        "date": day.isoformat(),
        "generated_at": now.isoformat(),
        "population": "calls started on the date (UTC) with a dialog_end",
        "sla_hours": settings.report_sla_hours,
        "total": total.to_dict(),
        "by_lob": {lob: tally.to_dict() for lob, tally in sorted(by_lob.items())},
        "unresolved_calls": [
            {
                "dialog_id": r.dialog_id,
                "lob": r.lob,
                "ocp_group": r.ocp_group,
                "call_end_ts": r.call_end_ts.isoformat() if r.call_end_ts else None,
                "retry_count": r.retry_count,
                "past_sla": (r.call_end_ts or r.cdr_end_at or now) < cutoff,
                "last_error": r.last_error,
            }
            for r in unresolved[:UNRESOLVED_LISTED]
        ],
        "without_dialog_end": {
            "counts": dict(sorted(without_end.items())),
            "open_timeout_s": settings.open_call_timeout_s,
            "overdue_past_sla": sum(1 for r in overdue if (r.open_since or now) < cutoff),
            "overdue_calls": [
                {
                    "dialog_id": r.dialog_id,
                    "lob": r.lob,
                    "ocp_group": r.ocp_group,
                    "call_start_ts": r.call_start_ts.isoformat() if r.call_start_ts else None,
                    "retry_count": r.retry_count,
                    "past_sla": (r.open_since or now) < cutoff,
                }
                for r in sorted(overdue, key=lambda r: (r.open_since or now, r.dialog_id))[:UNRESOLVED_LISTED]
            ],
        },
    }


def sla_breach_message(report: dict[str, Any]) -> str | None:
    """The failure message when unresolved calls are past the SLA, else None."""
    late = report["total"]["unresolved_past_sla"]
    no_end = report.get("without_dialog_end") or {}
    late_open = no_end.get("overdue_past_sla", 0)
    if not late and not late_open:
        return None
    ids = [c["dialog_id"] for c in report["unresolved_calls"] if c["past_sla"]]
    ids += [c["dialog_id"] for c in no_end.get("overdue_calls", []) if c["past_sla"]]
    return (
        f"completeness SLA breached for {report['date']}: {late + late_open} call(s) older than "
        f"{report['sla_hours']:g} h are neither stored nor closed with a reason"
        f"{f' ({late_open} of them never got a dialog_end)' if late_open else ''}: {', '.join(ids)}"
    )


# -------------------------------------------------------------------------------------------- HTML
_NONE = "<p class='none'>none</p>"
_COLOURS = {
    "stored_realtime": "#2e7d32",
    "stored_reconciliation": "#1565c0",
    "terminal": "#9e9e9e",
    "unresolved": "#c62828",
}


def _stacked_bars(rows: list[tuple[str, dict[str, Any]]]) -> str:
    width, bar_h, label_w = 640, 22, 110
    height = bar_h * len(rows) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    ]
    for i, (label, tally) in enumerate(rows):
        y, x = 10 + i * bar_h, label_w
        total = tally["calls_ended"] or 1
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{html.escape(label)}</text>')
        for key, colour in _COLOURS.items():
            w = (width - label_w - 60) * tally[key] / total
            if w > 0:
                title = f"{key}: {tally[key]}"
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h - 4}" fill="{colour}">'
                    f"<title>{html.escape(title)}</title></rect>"
                )
            x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 15}" font-size="12">{tally["calls_ended"]}</text>')
    legend_y = 10 + len(rows) * bar_h + 16
    for j, (key, colour) in enumerate(_COLOURS.items()):
        parts.append(f'<rect x="{j * 150}" y="{legend_y - 10}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{j * 150 + 14}" y="{legend_y}" font-size="11">{key}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _latency_bars(rows: list[tuple[str, dict[str, Any]]]) -> str:
    values = [v for _, t in rows for v in t["time_to_storage_s"].values() if v is not None]
    if not values:
        return _NONE
    top = max(values, default=0) or 1
    width, label_w, bar_h = 640, 110, 14
    height = len(rows) * bar_h * 3 + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    ]
    y = 5
    for label, tally in rows:
        for name, value in tally["time_to_storage_s"].items():
            w = (width - label_w - 80) * (value or 0) / top
            parts.append(f'<text x="0" y="{y + 11}" font-size="11">{html.escape(label)} {name}</text>')
            parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 3}" fill="#6a1b9a"/>')
            shown = human_duration(value)
            parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 11}" font-size="11">{shown}</text>')
            y += bar_h
    parts.append("</svg>")
    return "".join(parts)


def _without_end_html(section: dict[str, Any] | None) -> str:
    if not section:
        return ""
    counts = ", ".join(f"{k}: {v}" for k, v in section["counts"].items()) or "none"
    overdue = "".join(
        f"<tr><td>{c['dialog_id']}</td><td>{html.escape(str(c['lob']))}</td><td>{c['call_start_ts']}</td>"
        f"<td>{c['retry_count']}</td><td>{'yes' if c['past_sla'] else 'no'}</td></tr>"
        for c in section["overdue_calls"]
    )
    table = (
        "<table><tr><th>dialog id</th><th>LOB</th><th>started</th><th>attempts</th><th>past SLA</th></tr>"
        f"{overdue}</table>"
        if overdue
        else ""  # the counts line above already says "none"
    )
    since = human_duration(section["open_timeout_s"])
    return (
        f"<h2>Calls without a dialog_end (started more than {since} ago)</h2>"
        f"<p>{html.escape(counts)}</p>{table}"
    )


def render_html(report: dict[str, Any]) -> str:
    """A self-contained page: tables and inline SVG charts, no scripts, no external resources."""
    rows = [("TOTAL", report["total"]), *report["by_lob"].items()]
    head = (
        "<tr><th>LOB</th><th>ended</th><th>stored realtime</th><th>stored reconciliation</th>"
        "<th>terminal (by reason)</th><th>unresolved</th><th>past SLA</th><th>complete %</th>"
        "<th>time to storage p50 / p95 / p99</th></tr>"
    )
    body = []
    for label, t in rows:
        reasons = ", ".join(f"{k}: {v}" for k, v in t["terminal_by_reason"].items()) or "-"
        lat = " / ".join(human_duration(v) for v in t["time_to_storage_s"].values())
        body.append(
            f"<tr><td>{html.escape(label)}</td><td>{t['calls_ended']}</td><td>{t['stored_realtime']}</td>"
            f"<td>{t['stored_reconciliation']}</td><td>{t['terminal']} ({html.escape(reasons)})</td>"
            f"<td>{t['unresolved']}</td><td>{t['unresolved_past_sla']}</td><td>{t['completeness_pct']}</td>"
            f"<td>{lat}</td></tr>"
        )
    unresolved_rows = "".join(
        f"<tr><td>{c['dialog_id']}</td><td>{html.escape(str(c['lob']))}</td><td>{c['call_end_ts']}</td>"
        f"<td>{c['retry_count']}</td><td>{'yes' if c['past_sla'] else 'no'}</td>"
        f"<td>{html.escape(c['last_error'] or '')}</td></tr>"
        for c in report["unresolved_calls"]
    )
    unresolved = (
        "<table><tr><th>dialog id</th><th>LOB</th><th>ended</th><th>attempts</th><th>past SLA</th>"
        f"<th>last error</th></tr>{unresolved_rows}</table>"
        if unresolved_rows
        else _NONE
    )
    by_outcome = (
        f"{_stacked_bars(rows)}<table>{head}{''.join(body)}</table>"
        if report["total"]["calls_ended"]
        else _NONE
    )
    title = f"OCP call recordings: completeness {report['date']}"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em;"
        "overflow-wrap:anywhere}"
        # A wide table scrolls inside its own box: on a phone the page keeps the screen's width.
        "table{border-collapse:collapse;display:block;max-width:100%;overflow-x:auto}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;overflow-wrap:normal}"
        "svg{max-width:100%;height:auto}.none{color:#666;font-style:italic}"
        "@media (max-width:600px){body{margin:1em}}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(report['population'])}; generated "
        f"{html.escape(report['generated_at'])}; SLA {human_duration(report['sla_hours'] * 3600)}.</p>"
        f"<h2>Calls by outcome</h2>{by_outcome}"
        f"<h2>Time from end of call to storage</h2>{_latency_bars(rows)}"
        f"{_without_end_html(report.get('without_dialog_end'))}"
        f"<h2>Unresolved calls (oldest first, at most {UNRESOLVED_LISTED})</h2>{unresolved}"
        "</body></html>"
    )


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=1, sort_keys=True)
