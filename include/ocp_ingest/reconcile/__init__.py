"""Stage 2, reconciliation: find every call that has no stored recording and bring it back from OCP exports.

No Airflow here (the DAG's tasks are thin adapters in :mod:`ocp_ingest.airflow`). One run, top-down:

* :mod:`~ocp_ingest.reconcile.detect`: the pending and open calls (or a backfill window's);
* :mod:`~ocp_ingest.reconcile.plan`: per OCP group, hour-aligned export windows of 1 h .. 2 days;
  :mod:`~ocp_ingest.reconcile.sweep` adds each swept group's never-diffed settled hours;
* :mod:`~ocp_ingest.reconcile.exports`: the one export lifecycle (request or adopt, remember, re-create
  when expired, metadata, milestones), used by the Airflow sensor and by the downloader;
* :mod:`~ocp_ingest.reconcile.download`: the downloader (listing, manifest diff, the download pool),
  in-process or in a pod;
* :mod:`~ocp_ingest.reconcile.close`: results matched to plans, attempts counted, escalation, the summary.

:mod:`~ocp_ingest.reconcile.windows` holds the hour and ISO 8601 helpers they share.
"""
