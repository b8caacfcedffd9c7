# The project's image: Airflow 3.3.2 (Python 3.11) + the pinned runtime requirements + the ocp_ingest package,
# with dags/ and plugins/ baked in. One image for every Airflow component in docker-compose.airflow.yml,
# for the receiver (`ocp-ingest receiver`) and for the KubernetesPodOperator download task
# (`ocp-ingest download-export`, OCP_INGEST_IMAGE; the tag must match what that setting names).
#
#   docker build -t ocp-ingest:latest .                          # production (the default target)
#   docker build --target dev -t ocp-ingest-dev:latest .         # + the dev harness (compose's simulator)
FROM apache/airflow:3.3.2-python3.11 AS production

# Dependencies first (a layer that changes only with the pins). The constraints file pins every transitive
# dependency resolved and tested with apache-airflow 3.3.2 on CPython 3.11; requirements.txt pins
# apache-airflow==3.3.2 itself, so pip never upgrades or downgrades the base image's Airflow.
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/ocp-ingest/
RUN pip install --no-cache-dir -r /opt/ocp-ingest/requirements.txt -c /opt/ocp-ingest/constraints.txt

# The library as a regular (non-editable) package: the triggerer imports triggers by class path and the
# download pod runs without the DAG folder, so the code must be importable from site-packages.
COPY --chown=airflow:0 pyproject.toml /opt/ocp-ingest/
# Only the production package: the dev harness (include/ocp_ingest_dev: simulator, demo, local stacks)
# stays out of the image and the download pod.
COPY --chown=airflow:0 include/ocp_ingest/ /opt/ocp-ingest/include/ocp_ingest/
RUN pip install --no-cache-dir --no-deps /opt/ocp-ingest && ocp-ingest --help > /dev/null

COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/

# Outside a checkout the embedded default home would be ~/.ocp-ingest; production sets the OCP_INGEST_* URLs
# (S3, DynamoDB), and this keeps any local spill (e.g. a SQLite ledger in a one-off run) in a known place.
ENV OCP_INGEST_HOME=/opt/airflow/ocp-ingest \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

# The dev harness on top (the OCP simulator, the demo): only compose's `--profile demo` simulator uses it.
FROM production AS dev
COPY --chown=airflow:0 include/ocp_ingest_dev/ /opt/ocp-ingest/include/ocp_ingest_dev/
RUN pip install --no-cache-dir --no-deps /opt/ocp-ingest && ocp-ingest simulator --help > /dev/null

# A plain `docker build` (no --target) builds the last stage: the production image, without the harness.
FROM production
