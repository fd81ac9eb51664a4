#!/usr/bin/env bash
# The GPU check (`make gpu-check`): steper's bf16-mixed training of a Qwen2.5-0.5B-shaped model
# (random weights) without and with gradient checkpointing, through StepwiseDistillationModule and
# a Lightning Trainer (tokens/s, MFU, peak memory), then generation throughput of the hf backend
# at micro-batch 1 and 32. One CUDA GPU, no network; about 2-3 min on an H100 by estimate (see
# benchmarks/gpu_check.py), under the 8-minute budget. Writes gpu_check.json to $OUT when it is
# set, else to outputs/gpu_check/ (or --out FILE).
#
#   bash scripts/gpu_check.sh            # GPU mode
#   bash scripts/gpu_check.sh --dry      # the same code path on CPU, tiny sizes (tests/real)
#
# Python packages: torch (a CUDA build for the GPU mode), transformers >= 5, lightning >= 2.6,
# tokenizers, numpy, and, beyond those and their own dependencies, only
#   omegaconf  antlr4-python3-runtime        (steper.config, imported by steper.data / steper.distill)
# peft is not needed (no LoRA here). Checked by blocking every other installed package: W&B, hydra,
# bm25s, PyStemmer, openai, datasets, matplotlib and gguf are not imported on this path.
# Without network, put the wheels in a folder and point WHEELS at it (default: .whl/, or
# shared/wheels/ when that exists): what is missing is installed from there with --no-index.
#   pip download omegaconf antlr4-python3-runtime -d .whl   # on a machine with network
# Python: $PYTHON, else .venv/bin/python when present, else python3.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if [ -z "${WHEELS:-}" ]; then
    if [ -d shared/wheels ]; then WHEELS=shared/wheels; else WHEELS=.whl; fi
fi

# module -> distribution, for what this check imports
declare -A DIST=(
    [torch]=torch [transformers]=transformers [lightning]=lightning [tokenizers]=tokenizers
    [numpy]=numpy [omegaconf]=omegaconf [antlr4]=antlr4-python3-runtime [safetensors]=safetensors
)
missing=()
for mod in "${!DIST[@]}"; do
    "$PY" -c "import $mod" 2>/dev/null || missing+=("${DIST[$mod]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ -d "$WHEELS" ]; then
        echo "installing from $WHEELS (offline): ${missing[*]}"
        "$PY" -m pip install -q --no-index --find-links "$WHEELS" "${missing[@]}"
    else
        echo "missing Python packages: ${missing[*]}" >&2
        echo "put their wheels in $WHEELS (pip download ${missing[*]} -d $WHEELS) or set WHEELS=<folder>" >&2
        exit 1
    fi
fi

exec "$PY" benchmarks/gpu_check.py "$@"
