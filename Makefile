# The two Quickstart commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/bnlint: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

demo: $(BIN)/bnlint
	@# Exit code 1 means "findings reported", which the broken examples are there to show.
	@# The probe gets 10 s per model (default 30 s) so the demo stays quick on a laptop CPU.
	$(BIN)/bnlint examples/ --probe-budget 10 || test $$? -eq 1

test: $(BIN)/bnlint
	@# -n auto: one pytest worker per core (pytest-xdist); the suite is about 650 tests.
	$(BIN)/python -m pytest -q -n auto

lint: $(BIN)/bnlint
	$(BIN)/ruff check bnlint tests bench examples
	$(BIN)/lint-imports

bench: $(BIN)/bnlint
	@# Each script prints its table; bench/RESULTS.md records them. Over an hour on 2 cores: the
	@# detection study (both sets, each model trained 3 times) took 43 min on 2 busy cores.
	@# studies.realbugs reads its committed ground truth (python -m bench.studies.realbugs.label).
	for script in benchmarks.speed benchmarks.probe_overhead benchmarks.fixes \
			calibration.gradient_flow calibration.papers studies.lalc studies.detection \
			studies.robustness studies.realbugs; do \
		$(BIN)/python -m bench.$$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
