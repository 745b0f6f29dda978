# make demo: set up .venv and run the main job (on a throwaway local store unless REDIS_URL is set).
# make test: set up .venv and run lint plus the whole suite.
# make docs: build the documentation site into site/ (mkdocs.yml, docs/).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint bench serve docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "redtick needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/redtick demo

# ruff (style, complexity at most 12) and mypy (config in pyproject.toml: strict on the pure core)
lint: setup
	$(BIN)/ruff check redtick tests bench
	$(BIN)/mypy

# The series' tests run a second time with tick chunks stored raw (REDTICK_TICK_COMPRESSION=off).
# The suite opens every notebook in JupyterLab in headless Chromium (tests/test_jupyterlab.py;
# screenshots in reports/jupyterlab/).
# The docstring examples and notebooks run on the local store as users meet it, in a throwaway
# REDTICK_HOME (never the user's own), stopped and removed afterwards. tests/test_docs.py builds the
# documentation site with `mkdocs build --strict` into a temporary folder, so a broken reference fails.
test: lint
	$(BIN)/python -m pytest
	REDTICK_TICK_COMPRESSION=off $(BIN)/python -m pytest tests/test_series.py tests/test_windows.py tests/test_retention.py \
		tests/test_sealed_chunks.py tests/test_asof.py tests/test_fuzz.py -q -p no:randomly
	home=$$(mktemp -d -t redtick-test-XXXXXX); export REDTICK_HOME=$$home; \
	env -u REDIS_URL -u REDIS_HOST $(BIN)/python -m pytest --doctest-modules redtick docs/research.md --doctest-glob='*.md' -q && \
	env -u REDIS_URL -u REDIS_HOST $(BIN)/python -m pytest --nbval-lax notebooks -p no:randomly -q; \
	status=$$?; env -u REDIS_URL -u REDIS_HOST $(BIN)/redtick stop >/dev/null; rm -rf $$home; exit $$status

bench: setup
	$(BIN)/python bench/bench_series.py
	$(BIN)/python bench/bench_alerts.py
	$(BIN)/python bench/bench_metrics.py
	$(BIN)/python bench/bench_store.py
	$(BIN)/python bench/bench_live.py

serve: setup
	$(BIN)/redtick serve

# Strict: a broken link, a missing anchor or an API reference that no longer exists fails the build.
# `.venv/bin/mkdocs serve` serves the site on :8000 and rebuilds it on every change.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache .hypothesis
