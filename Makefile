# Every target creates or reuses the local virtual environment by itself.
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
export DAGSTER_HOME ?= $(CURDIR)/.dagster
PYTEST_WORKERS ?= 2

.PHONY: help install manifest demo test test-fast test-browser test-slow test-postgres test-spark lint dev docs chaos bench lock clean

help:
	@echo "make demo   - generate sample data and run two nights of the pipeline end to end"
	@echo "make test   - lint, dbt unit tests and the test suite but its slow, browser and PostgreSQL parts"
	@echo "make test-fast - the unit tests alone (tests/unit), for the edit-and-test loop"
	@echo "make test-browser - Chromium reads the Dagster UI after the demo's two nights"
	@echo "make test-slow - chaos (killed senders), webhook load, a long catch-up, hostile Dagster runs, lost states"
	@echo "make test-postgres - the state on a real PostgreSQL server (Debian's postgresql)"
	@echo "make test-spark - the dbt project on Spark and PostgreSQL, every table compared with DuckDB's"
	@echo "make dev    - the Dagster UI on http://127.0.0.1:3000"
	@echo "make docs   - dbt docs as one page: dbt_project/target/docs/static_index.html"
	@echo "make lint   - ruff and sqlfluff"
	@echo "make chaos  - kill the sender 20 times in 100,000 messages; attack the webhook on loopback"
	@echo "make bench  - time nights at 10,000 to 1,000,000 contacts (and L extrapolated) against plain DuckDB"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# constraints.txt pins every transitive package: a fresh clone installs what CI tested.
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

manifest: install
	$(BIN)/python -c "from models.manifest import ensure_manifest; ensure_manifest()"

# The project's settings and its Dagster storage (pipelines/run.py: project_settings).
$(DAGSTER_HOME)/dagster.yaml: dagster.yaml pipelines/dagster_storage.py | $(STAMP)
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/python -c "from pipelines.run import project_settings; print(project_settings(), end='')" > $@.draft
	mv $@.draft $@

demo: manifest $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/nightjar demo

# Slower suites have targets of their own, each run by .ci/run.
test: lint manifest
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=10 \
		-m "not browser and not slow and not postgres and not engines"

# The unit tests alone: no night runs, so well under a minute; make test runs them too.
test-fast: manifest
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --durations=5 -m "not slow" tests/unit

test-slow: manifest
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -m slow

# The state on a real PostgreSQL server each test worker starts (Debian's postgresql, which
# .ci/run installs): exactly-once when the local replica is lost, a night run again.
test-postgres: manifest
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m postgres tests/integration/test_state_postgres.py \
		tests/integration/test_dagster_on_postgres.py

# The dbt project built on a local Spark (pyspark, which needs Java: Debian's
# openjdk-17-jre-headless) and on a PostgreSQL server the test starts, every published table
# compared with DuckDB's (tests/integration/test_engines.py). pyspark is installed here only;
# pip keeps its built wheel in its cache (~/.cache/pip) for the next run.
SPARK_STAMP := $(VENV)/.spark-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
$(SPARK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,spark]"
	rm -f $(VENV)/.spark-* && touch $@

test-spark: manifest $(SPARK_STAMP)
	$(BIN)/python -m pytest -m engines --durations=5 tests/integration/test_engines.py

# Needs Debian's chromium (.ci/run installs it).
test-browser: manifest
	$(BIN)/python -m pytest -m browser tests/browser/test_browser.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# the four floors (pyproject.toml [tool.importlinter])
	$(BIN)/lint-imports
	# dbt attaches Nightjar's state read-only: an empty one serves the templater
	$(BIN)/python -c "import duckdb; duckdb.connect('$(VENV)/lint-state.duckdb').close()"
	cd dbt_project && NIGHTJAR_WAREHOUSE=:memory: NIGHTJAR_STATE=$(CURDIR)/$(VENV)/lint-state.duckdb \
		../$(BIN)/sqlfluff lint models tests macros

docs: manifest
	$(BIN)/nightjar docs

chaos: install
	$(BIN)/python -m tests.tools.chaos --messages 100000 --kills 20
	$(BIN)/python -m tests.tools.webhook_load --idle 1000 --slow 50 --posts 300 --stored 1000000

# BENCH_SCALES=XS for the smallest scale alone; L is extrapolated from S and M (tests/tools/bench.py);
# the landings are cached in ~/.cache/nightjar-bench
BENCH_SCALES ?= XS,S,M,L
bench: manifest
	$(BIN)/python -m tests.tools.bench --scales $(BENCH_SCALES)

dev: manifest $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

lock: install
	$(BIN)/python -m pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf $(VENV) .dagster data dbt_project/target dbt_project/logs .pytest_cache
