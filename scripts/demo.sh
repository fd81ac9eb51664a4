#!/usr/bin/env bash
# `make demo`: StepER end to end with a pretrained student, offline, on a 2-core CPU:
#   teacher data (the gold-chain oracle running IRCoT with BM25 over the toy world)
#   -> SmolLM2-135M-Instruct fine-tuned with LoRA as Vanilla-KD and as StepER (weightings
#      DEMO_WEIGHTINGS, default uniform,adaptive), each evaluated in the same multi-step loop on
#      50 test questions
#   -> the teacher in the same loop, for reference
#   -> the report: Table 1 / Table 2 printed, plots written.
# Needs `make models` (the Makefile's demo target runs it). DEMO_QUESTIONS: training questions whose
# traces train the students (default 30); STEPER_ROOT: where it all goes (default demo/).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export STEPER_ROOT=${STEPER_ROOT:-demo}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# W&B runs are offline (no key here) and listed at the end; keep its per-run chatter out of the way.
export WANDB_SILENT=${WANDB_SILENT:-true}
WEIGHTINGS=${DEMO_WEIGHTINGS:-uniform,adaptive}
QUESTIONS=${DEMO_QUESTIONS:-30}
WORLD=(dataset=toy dataset.paragraphs=facts retriever.top_k=2)
SWEEP="$STEPER_ROOT/outputs/demo/$(date +%Y-%m-%d_%H-%M-%S)"
if ! $PY -m steper.models path smollm2-135m >/dev/null 2>&1; then
  echo "error: the demo's student SmolLM2-135M is not fetched: run \`make models\` first" >&2
  exit 2
fi
mkdir -p "$SWEEP"
start=$(date +%s)
say() { printf '\n\033[1m== %s\033[0m  (%ss)\n' "$1" "$(($(date +%s) - start))"; }

say "1/4 teacher data: the oracle teacher runs IRCoT over $QUESTIONS training questions of the toy world"
$PY generate_data.py "${WORLD[@]}" teacher=oracle limit="$QUESTIONS" \
  out_dir="$STEPER_ROOT/data/stepwise/toy-facts-oracle-ircot-$QUESTIONS" hydra.run.dir="$SWEEP/teacher-data"
DATA=(stepwise.data_dir="$STEPER_ROOT/data/stepwise/toy-facts-oracle-ircot-$QUESTIONS/stepwise")

say "2/4 students: SmolLM2-135M + LoRA as Vanilla-KD, then StepER (weighting=$WEIGHTINGS), each evaluated in the loop"
$PY train.py -m experiment=demo method=vanilla weighting=uniform "${DATA[@]}" hydra.sweep.dir="$SWEEP/vanilla"
$PY train.py -m experiment=demo method=steper weighting="$WEIGHTINGS" "${DATA[@]}" hydra.sweep.dir="$SWEEP/steper"

say "3/4 the teacher in the same loop on the same test questions (the oracle, for reference)"
$PY evaluate.py "${WORLD[@]}" target=oracle target.label=teacher limit=50 progress=false hydra.run.dir="$SWEEP/teacher"

say "4/4 report: tables and plots"
$PY -m steper.report "$SWEEP" --out "$SWEEP/report"

say "done: report in $SWEEP/report (report.md, *.csv, *.png); W&B offline runs under $SWEEP/*/*/wandb (upload: wandb sync <dir>)"
