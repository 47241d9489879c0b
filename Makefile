# servelab — the two commands of the quick start: `make demo` (the pipeline, then the adaptive
# gateway demo) and `make test`.
# The virtual environment is created and the project installed on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/servelab demo
	$(BIN)/servelab demo --adaptive
	$(BIN)/servelab report --quick

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy core sim servelab workloads loadgen ffi servers calibrate meta gateway analysis
	$(BIN)/python -m pytest -rs  # -rs: say which tests skipped and why (e.g. no chromium)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy core sim servelab workloads loadgen ffi servers calibrate meta gateway analysis

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
