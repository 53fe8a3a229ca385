# graphrec developer entry points. `make demo` and `make test` work on a fresh clone with
# Python 3.11 and access to the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.graphrec-installed

.PHONY: demo test bench clean

# torch first, pinned to the CPU build, so nothing afterwards can pull a CUDA torch.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

# The main job on the bundled dataset with the embedded SQLite store (./graphrec.db):
# load the graph, train the friend-recommendation model, recommend friends for user 0.
demo: $(STAMP)
	$(BIN)/graphrec db upgrade
	$(BIN)/graphrec import ego-facebook
	$(BIN)/graphrec stats
	$(BIN)/graphrec train linkpred --seed 0
	$(BIN)/graphrec recommend --user 0 -k 10

# The type check (mypy over graphrec/ and generative/, settings in pyproject.toml), then the tests.
test: $(STAMP)
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_import.py
	$(BIN)/python benchmarks/bench_linkpred.py

clean:
	rm -rf $(VENV) graphrec.db graphrec.db-wal graphrec.db-shm graphrec-home
