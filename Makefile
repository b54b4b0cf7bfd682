# The two commands: `make run` and `make test`. Both set up what they need on a fresh machine
# that has only Python 3.11 and pip: uv comes from PyPI, everything else from uv.lock.
PYTHON ?= python3
UV := $(PYTHON) -m uv
STAMP := .venv/.dfj-synced

.PHONY: setup run test test-fast bench lint format clean

$(STAMP): pyproject.toml uv.lock libs/*/pyproject.toml services/*/pyproject.toml
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check "uv>=0.5"
	$(UV) sync --all-packages --locked
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(UV) run --no-sync python scripts/run.py

test: setup
	$(UV) run --no-sync pytest -q

test-fast: setup
	$(UV) run --no-sync pytest -q -m "not slow and not crossprocess"

bench: setup
	$(UV) run --no-sync python bench/bus.py
	$(UV) run --no-sync python bench/gateway.py
	$(UV) run --no-sync python bench/fanout.py
	$(UV) run --no-sync python bench/delivery.py
	$(UV) run --no-sync python bench/e2e.py

lint: setup
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync mypy libs services bench scripts deploy

format: setup
	$(UV) run --no-sync ruff format .
	$(UV) run --no-sync ruff check --fix .

clean:
	rm -rf .venv var .mypy_cache .ruff_cache
