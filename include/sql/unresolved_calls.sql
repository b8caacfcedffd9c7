-- Calls ended but neither stored nor closed with a reason, oldest first, from one ledger snapshot.
-- Parameter: the snapshot day ('YYYY-MM-DD').
SELECT
  dialog_id,
  lob,
  ocp_group,
  call_start_ts,
  call_end_ts,
  file_received,
  retry_count,
  export_id,
  last_error
FROM ledger_snapshot
WHERE dt = ? AND has_cdr_end AND NOT s3_stored AND terminal_state IS NULL
ORDER BY call_end_ts, dialog_id
