-- Share of stored recordings that reconciliation recovered, by LOB, from the audit trail.
-- Parameters: first and last event day ('YYYY-MM-DD').
SELECT
  lob,
  count(DISTINCT dialog_id) AS stored,
  count(DISTINCT CASE WHEN source = 'RECONCILIATION' THEN dialog_id END) AS recovered,
  round(
    100.0 * count(DISTINCT CASE WHEN source = 'RECONCILIATION' THEN dialog_id END) / count(DISTINCT dialog_id),
    2
  ) AS recovered_pct
FROM audit_events
WHERE dt BETWEEN ? AND ? AND event_type = 'STORED'
GROUP BY lob
ORDER BY lob
