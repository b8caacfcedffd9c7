"""The host name Airflow records for a task instance, per process of the distributed stack.

Both Celery workers of ``make run TOPOLOGY=distributed`` run on this one machine, where ``socket.getfqdn()``
is the same for both; in production each worker is its own host (pod). The stack gives each worker a name
of its own in ``OCP_STACK_HOST_NAME`` and points ``AIRFLOW__CORE__HOSTNAME_CALLABLE`` here, so the task
instances' ``hostname`` (REST API, UI) says which worker ran them. Unset: the machine's name, as Airflow's
default.
"""

from __future__ import annotations

import os
import socket

HOST_NAME_ENV = "OCP_STACK_HOST_NAME"


def host_name() -> str:
    """This process's host name for Airflow: ``OCP_STACK_HOST_NAME`` or the machine's FQDN."""
    return os.environ.get(HOST_NAME_ENV) or socket.getfqdn()
