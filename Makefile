# graphrec developer entry points. `make demo` and `make test` work on a fresh clone with
# Python 3.11 and access to the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.graphrec-installed

.PHONY: demo demo-ray test test-quick docs bench clean

# torch first, pinned, so nothing afterwards can pull another torch. TORCH_PIP_ARGS picks where the
# CPU build comes from: empty where the local pip configuration provides it (this project's
# machines and CI); on an ordinary machine use
#   make demo TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# or pip takes the multi-GB CUDA build from PyPI.
TORCH_PIP_ARGS ?=
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install --quiet -e ".[dev,distributed]"
	@touch $(STAMP)

# The main job on the bundled dataset with the embedded SQLite store (./graphrec.db):
# load the graph, train the friend-recommendation model, recommend friends for user 0.
demo: $(STAMP)
	$(BIN)/graphrec db upgrade
	$(BIN)/graphrec import ego-facebook
	$(BIN)/graphrec stats
	$(BIN)/graphrec train linkpred --seed 0
	$(BIN)/graphrec recommend --user 0 -k 10

# The distributed path on the bundled graph: the demo bots, a bot model, then the nightly job and a
# batch of recommendations on a local Ray cluster (2 CPUs). The venv has the distributed extra.
demo-ray: demo
	$(BIN)/graphrec import ego-facebook --with-demo-bots
	$(BIN)/graphrec train bots --include-synthetic
	$(BIN)/graphrec score --engine ray --workers 2 --replace
	seq 0 99 > users-100.txt
	$(BIN)/graphrec recommend --users-file users-100.txt --output recs-100.jsonl --engine ray --workers 2

# The type check (mypy over graphrec/ and generative/, settings in pyproject.toml), then the tests.
# Debian's chromium first (installed with apt-get when missing and we are root; never fails the
# run): tests/test_reports.py renders the HTML report in it, and is skipped, saying why, without it.
test: $(STAMP)
	$(BIN)/python -m mypy
	bash scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -q

# The same without the tests marked slow (models that must learn, full CLI flows): about a minute.
test-quick: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The API reference from the docstrings (mkdocs + mkdocstrings) into build/docs; the test suite
# builds it too (tests/test_first_hour_serving.py), so a broken docstring reference fails `make test`.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict -f docs/mkdocs.yml

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_import.py
	$(BIN)/python benchmarks/bench_linkpred.py

clean:
	rm -rf $(VENV) graphrec.db graphrec.db-wal graphrec.db-shm graphrec-home users-100.txt recs-100.jsonl
