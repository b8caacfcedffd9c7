"""The local stack behind ``make run``: simulator, receiver and ``airflow standalone``, all local.

local (the processes, start to stop), standalone (Airflow's environment and health), tally (where the
calls stand), airflow_api (the REST calls the stack needs), reports (the completeness report once settled).
"""

from ocp_ingest_dev.stack.local import LOCAL_CADENCE, LocalStack

__all__ = ["LOCAL_CADENCE", "LocalStack"]
