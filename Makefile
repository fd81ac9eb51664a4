# steper — the two commands a researcher needs: `make install` then `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export WANDB_MODE := offline

.PHONY: install test test-slow lint bench demo clean

install: $(BIN)/.installed

# torch is pinned first: the CPU build lies on disk; an unpinned torch would pull a CUDA build.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# pytest's exit 5 (no test collected) is not a failure of the code.
test: install
	$(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then exit 0; else exit $$rc; fi

test-slow: install
	$(BIN)/python -m pytest -q -m slow

# The whole pipeline offline on CPU: teacher data -> five tiny students -> evaluation -> report.
demo: install
	bash scripts/demo.sh

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/bm25_bench.py

clean:
	rm -rf $(VENV) outputs multirun demo .pytest_cache
