"""The dev harness's one Airflow internal: Airflow 3.3 has no public API to parse a DAG folder."""

from __future__ import annotations

from typing import Any

from ocp_ingest_dev.checkout import project_root


def load_dag(dag_id: str) -> Any:
    """Parse dags/ the way the dag-processor does and return one DAG (``dag.test()`` needs it from there)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(project_root() / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag.dags[dag_id]
