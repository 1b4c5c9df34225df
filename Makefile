# The two README commands. Both only need Python 3.11+ (scripts/dev.py does the rest).
PYTHON ?= python3

.PHONY: run test lint ci
run:
	$(PYTHON) scripts/dev.py run

test:
	$(PYTHON) scripts/dev.py test $(ARGS)

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

# Everything CI runs: the suite on SQLite and PostgreSQL, Django checks, lint. See .ci/run.
ci:
	.ci/run
