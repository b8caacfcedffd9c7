"""Completeness report and storage verification (no Airflow)."""
