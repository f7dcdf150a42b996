# The two commands (DESIGN section 6): `make run` serves from a fresh clone, `make test` passes.
# Both keep their virtual environment in .venv (a contract: .venv/bin/curaway works after either).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install migrate bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(BIN)/curaway migrate

run: migrate
	$(BIN)/curaway serve

# One worker per core (pytest-xdist): most of the suite's time is real processes and real
# timeouts (leases, claims, the watchdog) waiting, so it overlaps well even on 2 cores.
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist worksteal $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/runtime_overhead.py --db sqlite

clean:
	rm -rf $(VENV) var .pytest_cache
