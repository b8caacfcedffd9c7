-- Athena table over the daily ledger snapshot: every call's state as of the snapshot day (dt).
-- Render with `ocp-ingest audit ddl`. Always filter on one dt: each day holds a full copy.
CREATE EXTERNAL TABLE IF NOT EXISTS ledger_snapshot (
  dialog_id string,
  call_status string,
  call_start_ts timestamp,
  call_end_ts timestamp,
  duration_ms bigint,
  end_type string,
  ivr_end_reason string,
  dialog_group string,
  ocp_group string,
  account_id string,
  flow_name string,
  destination_uri string,
  lob string,
  has_cdr_end boolean,
  cdr_end_at timestamp,
  file_received boolean,
  file_received_at timestamp,
  post_process_ok boolean,
  post_process_at timestamp,
  s3_stored boolean,
  s3_stored_at timestamp,
  ingestion_source string,
  retry_count int,
  object_url string,
  sha256 string,
  size_bytes bigint,
  audio_format string,
  audio_duration_s double,
  export_id string,
  last_error string,
  last_attempt_id string,
  last_attempt_at timestamp,
  terminal_state string,
  terminal_reason string,
  terminal_at timestamp,
  version bigint,
  created_at timestamp,
  updated_at timestamp,
  state string
)
PARTITIONED BY (dt string)
STORED AS PARQUET
LOCATION '__LOCATION__/ledger_snapshot/'
TBLPROPERTIES (
  'parquet.compression' = 'ZSTD',
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2026-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS'
);
