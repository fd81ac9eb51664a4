#!/usr/bin/env bash
# `make demo-tiny`: the StepER pipeline end to end, offline, on CPU, in minutes:
#   teacher data (the gold-chain oracle running IRCoT with real BM25 retrieval over the toy world)
#   -> a sweep of tiny students (Vanilla-KD, and StepER with each weighting), each evaluated in the
#      same multi-step loop on the toy test questions
#   -> the report: the paper's tables printed here, plots written.
# DEMO_WEIGHTINGS picks the StepER weightings (default: all four); STEPER_ROOT where it all goes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export STEPER_ROOT=${STEPER_ROOT:-demo-tiny}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Two training lanes share the two cores: one thread each.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# W&B runs are offline (no key here) and listed at the end; keep its per-run chatter out of the way.
export WANDB_SILENT=${WANDB_SILENT:-true}
WEIGHTINGS=${DEMO_WEIGHTINGS:-uniform,first,last,adaptive}
SWEEP="$STEPER_ROOT/outputs/demo-tiny/$(date +%Y-%m-%d_%H-%M-%S)"
mkdir -p "$SWEEP"
start=$(date +%s)
say() { printf '\n\033[1m== %s\033[0m  (%ss)\n' "$1" "$(($(date +%s) - start))"; }

say "1/4 teacher data: the oracle teacher runs IRCoT over the toy world's training questions"
$PY generate_data.py dataset=toy teacher=oracle retriever.top_k=2

say "2/4 students: Vanilla-KD and StepER (weighting=$WEIGHTINGS), trained and evaluated in the loop"
# Split the sweep into two lanes that run side by side; lane B's output goes to a log file.
IFS=, read -r -a ws <<<"$WEIGHTINGS"
lane_a=() lane_b=()
for i in "${!ws[@]}"; do
  if ((i % 2 == 0)); then lane_a+=("${ws[$i]}"); else lane_b+=("${ws[$i]}"); fi
done
join() { local IFS=,; echo "$*"; }
(
  $PY train.py -m experiment=demo_tiny method=vanilla hydra.sweep.dir="$SWEEP/vanilla" callbacks.progress_bar=null
  if ((${#lane_b[@]})); then
    $PY train.py -m experiment=demo_tiny method=steper weighting="$(join "${lane_b[@]}")" \
      hydra.sweep.dir="$SWEEP/steper-b" callbacks.progress_bar=null
  fi
) >"$SWEEP/lane-b.log" 2>&1 &
lane_b_pid=$!
echo "(lane B: Vanilla-KD$( ((${#lane_b[@]})) && echo ", StepER $(join "${lane_b[@]}")") -> $SWEEP/lane-b.log)"
$PY train.py -m experiment=demo_tiny method=steper weighting="$(join "${lane_a[@]}")" hydra.sweep.dir="$SWEEP/steper-a"
if ! wait "$lane_b_pid"; then
  echo "lane B failed; its log:" >&2
  tail -n 40 "$SWEEP/lane-b.log" >&2
  exit 1
fi

say "3/4 the teacher in the same loop on the same test questions (the oracle, for reference)"
$PY evaluate.py target=oracle target.label=teacher retriever.top_k=2 limit=50 hydra.run.dir="$SWEEP/teacher"

say "4/4 report: tables and plots"
$PY -m steper.report "$SWEEP" --out "$SWEEP/report"

say "done: report in $SWEEP/report (report.md, *.csv, *.png); W&B offline runs under $SWEEP/*/*/wandb (upload: wandb sync <dir>)"
