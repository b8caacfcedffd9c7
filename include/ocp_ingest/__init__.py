"""OCP call-recording ingestion: ledger, storage, audio validation, OCP client, Airflow adapters."""

__version__ = "0.1.0"
