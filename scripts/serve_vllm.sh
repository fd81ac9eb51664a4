#!/usr/bin/env bash
# Serve a checkpoint with vLLM (CPU build, .venv-vllm) on 127.0.0.1, in the foreground.
#
#   bash scripts/serve_vllm.sh MODEL [PORT]        (make serve SERVE_MODEL=... SERVE_PORT=...)
#
# MODEL: a registry name (smollm2-135m, qwen2.5-coder-0.5b: fetched by `make models`) or a model
# folder. The server answers at http://127.0.0.1:PORT/v1 under the served model name MODEL's
# registry name (the folder's name for a folder), so the client side is
#   teacher=openai teacher.base_url=http://127.0.0.1:PORT/v1 teacher.model=<that name>
#
# Settings for a laptop CPU, each overridable from the environment:
# - VLLM_DTYPE=float32: the hf backend runs float32 on CPU (dtype=auto), and greedy decoding only
#   agrees token for token when both sides compute in the same precision; in bfloat16 near-ties of
#   the top two logits flip and the continuations diverge from there. The registry checkpoints are
#   stored in float32, and at 135M-500M parameters float32 is fast enough on a CPU.
# - VLLM_MAX_MODEL_LEN=4096: the context window (the toy prompts with three demonstrations fit
#   well inside); a smaller window means a smaller KV cache and a faster start.
# - VLLM_CPU_KVCACHE_SPACE=1 (GiB): vLLM's CPU KV cache, preallocated; its default (4 GiB) is a
#   lot on a shared 24 GiB machine.
# - VLLM_SERVE_ARGS: extra arguments for the api_server, appended as they are.
# - VLLM_ENFORCE_EAGER=1: no torch.compile. Compiling the model on a 2-core CPU adds about
#   1.5 minutes to every cold start (measured: 156 s to ready with it, see benchmarks/README.md),
#   and eager PyTorch runs the same operators as the hf backend. VLLM_ENFORCE_EAGER=0 compiles.
# Flags: --generation-config auto (the default) reads the checkpoint's generation_config.json,
# as transformers' generate does on the hf side; the `vllm` console script does not work under
# the vllm-cpu distribution name, so the module entry point is run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV=${VLLM_VENV:-$ROOT/.venv-vllm}

usage() { echo "usage: $0 MODEL [PORT]   (MODEL: a registry name such as smollm2-135m, or a model folder)" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
MODEL=$1
PORT=${2:-8000}
case "$PORT" in ''|*[!0-9]*) echo "error: port must be a number, got '$PORT'" >&2; exit 2;; esac

if [ ! -f "$VENV/.installed" ]; then
    echo "error: $VENV is not set up: run \`make vllm-env\` (bash scripts/vllm_env.sh) first" >&2
    exit 2
fi

# A folder is served as it is; anything else is a registry name, resolved by the project's venv.
if [ -d "$MODEL" ]; then
    MODEL_DIR=$(cd "$MODEL" && pwd)
    NAME=${SERVED_NAME:-$(basename "$MODEL_DIR")}
else
    if ! MODEL_DIR=$("$ROOT/.venv/bin/python" -m steper.models path "$MODEL" 2>&1); then
        why=$(printf '%s' "$MODEL_DIR" | tail -n 1)
        echo "error: cannot serve '$MODEL': not a folder, and not a fetched registry model (${why#error: }; make models)" >&2
        exit 2
    fi
    MODEL_DIR=$(printf '%s\n' "$MODEL_DIR" | tail -n 1)  # the path is the last line
    NAME=${SERVED_NAME:-$MODEL}
fi
if [ ! -f "$MODEL_DIR/config.json" ]; then
    echo "error: $MODEL_DIR has no config.json: not a transformers model folder" >&2
    exit 2
fi

# A busy port: say so now, not after a minute of loading when the bind fails deep in uvicorn.
if ! "$VENV/bin/python" - "$PORT" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
# as the server binds (uvicorn sets SO_REUSEADDR): connections of a server that just stopped,
# left in TIME_WAIT, do not count; a socket listening there does
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
then
    echo "error: port $PORT on 127.0.0.1 is already in use: stop what listens there, or choose another port (make serve SERVE_PORT=...)" >&2
    exit 2
fi

export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
export VLLM_TARGET_DEVICE=cpu
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
# vLLM's engine talks to its API process over local sockets; keep them on the loopback too.
export VLLM_HOST_IP=127.0.0.1
EAGER=()
[ "${VLLM_ENFORCE_EAGER:-1}" = 1 ] && EAGER=(--enforce-eager)
echo "serving $MODEL_DIR as '$NAME' on http://127.0.0.1:$PORT/v1 (dtype ${VLLM_DTYPE:-float32})" >&2
# exec: the server gets this shell's pid, so whoever started this script can stop the server.
# shellcheck disable=SC2086
exec "$VENV/bin/python" -m vllm.entrypoints.openai.api_server \
    --model "$MODEL_DIR" \
    --served-model-name "$NAME" \
    --host 127.0.0.1 --port "$PORT" \
    --dtype "${VLLM_DTYPE:-float32}" \
    --max-model-len "${VLLM_MAX_MODEL_LEN:-4096}" \
    --generation-config auto \
    "${EAGER[@]}" \
    ${VLLM_SERVE_ARGS:-}
