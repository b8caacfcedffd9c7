"""Airflow task callables: context in, a domain call, a small JSON result out."""
