-- Time from the end of a call (dialog_end) to its recording being stored, in seconds, by LOB and path.
-- Parameters: first and last event day ('YYYY-MM-DD'). approx_percentile is Athena's; the local DuckDB
-- connection defines a macro of the same name (exact quantile), so the text is the same.
SELECT
  lob,
  source,
  count(*) AS stored,
  approx_percentile(date_diff('millisecond', call_end_ts, event_ts) / 1000.0, 0.5) AS p50_s,
  approx_percentile(date_diff('millisecond', call_end_ts, event_ts) / 1000.0, 0.95) AS p95_s,
  approx_percentile(date_diff('millisecond', call_end_ts, event_ts) / 1000.0, 0.99) AS p99_s
FROM audit_events
WHERE dt BETWEEN ? AND ? AND event_type = 'STORED' AND call_end_ts IS NOT NULL
GROUP BY lob, source
ORDER BY lob, source
