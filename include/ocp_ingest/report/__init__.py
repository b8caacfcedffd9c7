"""Completeness report, where it is kept, and storage verification.

Domain code: it names no Airflow API; object storage is reached through :mod:`ocp_ingest.storage`.
"""
