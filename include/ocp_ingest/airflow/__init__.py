"""Thin Airflow adapters (triggers, sensors, task callables) around the domain library.

Triggers live here, in the installed package, because the triggerer imports them by class path and
cannot import from ``dags/``.
"""
