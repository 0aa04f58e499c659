# novita-flux: `make demo` and `make test` work from a fresh clone with nothing installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: install demo test test-deep lint check-generated generate spec-diff check-spec spec-release \
	bench mutation clean docs

install: $(STAMP)

# Re-install whenever the dependency list changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "novita-flux needs Python >= 3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_QUIET) --upgrade pip
	$(BIN)/python -m pip install $(PIP_QUIET) -e '.[dev,testing,mcp,docs]'
	@touch $(STAMP)

# The documentation's example request, generated offline against the bundled reference server.
demo: $(STAMP)
	$(BIN)/python scripts/demo.py out

test: lint check-generated check-spec docs
	$(BIN)/python -m pytest -n auto

test-deep: $(STAMP)
	HYPOTHESIS_PROFILE=deep $(BIN)/python -m pytest -n auto

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The site under docs/ into site/: strict (a broken link, anchor or reference fails) and offline
# (the hook in scripts/mkdocs_hooks.py cuts the build off from the network). Its examples run in
# the test suite (tests/docs/).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --quiet

generate: $(STAMP)
	$(BIN)/python scripts/generate.py

check-generated: $(STAMP)
	$(BIN)/python scripts/generate.py --check

# The working spec against the last release in openapi/released/: what changed, for whom, and
# the value that proves each break.
spec-diff: $(STAMP)
	$(BIN)/python -m scripts.spec_diff

# Fails when the version is not raised as far as the changes need, or the changelog lacks it.
check-spec: $(STAMP)
	$(BIN)/python -m scripts.spec_diff --check

# Keeps the working spec as openapi/released/<version>.yaml (after the same checks).
spec-release: $(STAMP)
	$(BIN)/python -m scripts.spec_diff --release

bench: $(STAMP)
	$(BIN)/python scripts/bench.py

# Mutation testing of the core modules ([tool.mutmut] in pyproject.toml); not part of `make test`
# (README says how long it takes). Starts from nothing, so no earlier verdict is reused.
MUTATION_STAMP := $(VENV)/.mutation-stamp
$(MUTATION_STAMP): $(STAMP)
	$(BIN)/python -m pip install $(PIP_QUIET) -e '.[dev,testing,mcp,docs,mutation]'
	@touch $(MUTATION_STAMP)

mutation: $(MUTATION_STAMP)
	rm -rf mutants
	$(BIN)/mutmut run --max-children $$(nproc 2>/dev/null || echo 2) || true
	$(BIN)/python scripts/mutmut_table.py --check tests/mutation-survivors.md

clean:
	rm -rf $(VENV) build dist out site mutants .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
