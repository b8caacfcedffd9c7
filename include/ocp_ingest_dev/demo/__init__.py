"""``ocp-ingest demo`` and its engine, :class:`Flow` (also the engine of the fault scenarios).

config (what a run plays), airflow_env (its private Airflow), flow (the engine), verdict (figures and
invariants), progress (the progress line), cli (the subcommand).
"""

from ocp_ingest_dev.demo.airflow_env import airflow_environment, prepare_airflow
from ocp_ingest_dev.demo.cli import run_demo
from ocp_ingest_dev.demo.config import FlowConfig
from ocp_ingest_dev.demo.flow import Flow
from ocp_ingest_dev.demo.progress import Progress

__all__ = ["Flow", "FlowConfig", "Progress", "airflow_environment", "prepare_airflow", "run_demo"]
