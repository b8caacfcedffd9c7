"""The local stacks behind ``make run``: the embedded default and the production topology, all local.

local (``make run``: simulator, receiver and ``airflow standalone``), distributed (``make run
TOPOLOGY=distributed``: Postgres, Redis, moto, Airflow with Celery workers, receivers behind haproxy),
supervise (their processes: spawn, health, stop, fail fast), standalone (Airflow standalone's environment
and health), watch (progress until every call is settled, then the report), tally (where the calls stand),
airflow_api (the REST calls the stacks need), reports (the completeness report once settled), moto_endpoint
(moto's server with atomic DynamoDB writes), hostname (a host name per Celery worker).
"""

from ocp_ingest_dev.stack.local import LOCAL_CADENCE, LocalStack

__all__ = ["LOCAL_CADENCE", "LocalStack"]
