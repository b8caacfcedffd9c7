-- Athena table over the audit trail: one row per applied ledger transition (and export milestone).
-- Render with `ocp-ingest audit ddl` (fills in the location and the LOB values from the configuration).
-- Partition projection: dt is a date range (no MSCK REPAIR, no Glue partitions); lob is an ENUM of the
-- routing file's LOBs plus "none", so queries may group across LOBs (an injected lob would force every
-- query to name one). Re-render and ALTER TABLE SET TBLPROPERTIES when a LOB is added to the routing.
CREATE EXTERNAL TABLE IF NOT EXISTS audit_events (
  event_id string,
  event_ts timestamp,
  event_type string,
  dialog_id string,
  ocp_group string,
  dialog_group string,
  source string,
  actor string,
  transition string,
  call_start_ts timestamp,
  call_end_ts timestamp,
  object_url string,
  sha256 string,
  size_bytes bigint,
  export_id string,
  retry_count int,
  terminal_state string,
  detail string,
  ledger_version bigint
)
PARTITIONED BY (dt string, lob string)
STORED AS PARQUET
LOCATION '__LOCATION__/audit_events/'
TBLPROPERTIES (
  'parquet.compression' = 'ZSTD',
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2026-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.lob.type' = 'enum',
  'projection.lob.values' = '__LOB_VALUES__'
);
