# The two commands a newcomer needs: `make run` and `make test`. Both create/update .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8080
CALLS ?= 2000
DEMO_CALLS ?= 500
# embedded (SQLite, LocalExecutor, local disk) or distributed (Postgres, Celery, Redis, S3/DynamoDB, haproxy).
TOPOLOGY ?= embedded

.PHONY: install system-deps run test demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip uv

# Re-install only when the pins change; uv makes a fresh install take well under a minute.
$(STAMP): $(BIN)/python requirements.txt requirements-test.txt constraints.txt pyproject.toml
	$(BIN)/uv pip install --python $(BIN)/python --quiet -r requirements.txt -r requirements-test.txt -c constraints.txt
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Postgres, Redis, haproxy (apt) and dynalite (npm): what the tests and the distributed topology need beyond
# Python. Installs only what is missing (a no-op in well under a second otherwise); root or sudo only then.
system-deps:
	bash tools/system-deps.sh

test: system-deps
ifeq ($(TOPOLOGY),distributed)
run: system-deps
endif

run: $(STAMP)
	$(BIN)/ocp-ingest run --topology $(TOPOLOGY) --port $(PORT) --calls $(CALLS)

# The whole flow unattended: exits 0 only when every call is stored or terminal with a reason.
demo: $(STAMP)
	$(BIN)/ocp-ingest demo --calls $(DEMO_CALLS) --push-loss 0.1 --seed 1 --json demo-summary.json

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_validator.py
	$(BIN)/python benchmarks/bench_storage.py
	$(BIN)/python benchmarks/bench_events.py
	$(BIN)/python benchmarks/bench_ocp_download.py
	$(BIN)/python benchmarks/bench_realtime.py
	$(BIN)/python benchmarks/bench_reconciliation.py --runner standalone

clean:
	rm -rf $(VENV) airflow_home var
