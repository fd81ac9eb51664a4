#!/usr/bin/env bash
# `make toy-fidelity`: Vanilla-KD vs StepER (uniform, adaptive) with the demo's pretrained student,
# trained on the teacher traces of toy worlds 0, 1, 2 and tested on world 100 (unseen names), then
# the report's tables with mean ± std over the three training worlds. FIDELITY_QUESTIONS training
# questions per world (default 30, as the demo); STEPER_ROOT: where it all goes (toy-fidelity/).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export STEPER_ROOT=${STEPER_ROOT:-toy-fidelity}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export WANDB_SILENT=${WANDB_SILENT:-true}
QUESTIONS=${FIDELITY_QUESTIONS:-30}
SWEEP="$STEPER_ROOT/outputs/toy_fidelity/$(date +%Y-%m-%d_%H-%M-%S)"
mkdir -p "$SWEEP"
start=$(date +%s)
say() { printf '\n\033[1m== %s\033[0m  (%ss)\n' "$1" "$(($(date +%s) - start))"; }

for world in 0 1 2; do
  say "teacher data of toy world $world ($QUESTIONS training questions)"
  $PY generate_data.py dataset=toy dataset.seed="$world" dataset.paragraphs=facts retriever.top_k=2 \
    teacher=oracle limit="$QUESTIONS" progress=false \
    out_dir="$STEPER_ROOT/data/stepwise/toy-world$world-facts-oracle-ircot" hydra.run.dir="$SWEEP/data-$world"
done
say "Vanilla-KD students, worlds 0-2, tested on world 100"
$PY train.py -m sweep=toy_fidelity method=vanilla weighting=uniform hydra.sweep.dir="$SWEEP/vanilla"
say "StepER students (uniform, adaptive), worlds 0-2, tested on world 100"
$PY train.py -m sweep=toy_fidelity method=steper weighting=uniform,adaptive hydra.sweep.dir="$SWEEP/steper"
say "report"
$PY -m steper.report "$SWEEP" --out "$SWEEP/report"
say "done: $SWEEP/report"
