-- Completeness by call day and LOB, from one ledger snapshot. Parameter: the snapshot day ('YYYY-MM-DD').
-- A call counts once it has its dialog_end; it is complete when stored or closed with a terminal reason.
SELECT
  CAST(call_start_ts AS DATE) AS call_day,
  lob,
  count(*) AS calls_ended,
  count_if(s3_stored) AS stored,
  count_if(s3_stored AND ingestion_source = 'REALTIME') AS stored_realtime,
  count_if(s3_stored AND ingestion_source = 'RECONCILIATION') AS stored_reconciliation,
  count_if(NOT s3_stored AND terminal_state IS NOT NULL) AS terminal,
  count_if(NOT s3_stored AND terminal_state IS NULL) AS unresolved,
  round(100.0 * count_if(s3_stored OR terminal_state IS NOT NULL) / count(*), 2) AS completeness_pct
FROM ledger_snapshot
WHERE dt = ? AND has_cdr_end
GROUP BY CAST(call_start_ts AS DATE), lob
ORDER BY call_day, lob
