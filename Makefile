# The two Quickstart commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/bnlint: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

demo: $(BIN)/bnlint
	@# Exit code 1 means "findings reported", which the broken examples are there to show.
	$(BIN)/bnlint examples/ || test $$? -eq 1

test: $(BIN)/bnlint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
