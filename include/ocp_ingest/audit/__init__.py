"""The audit trail: every ledger transition as an immutable Parquet row, the daily ledger snapshot, and the
Athena/DuckDB tables over them."""
