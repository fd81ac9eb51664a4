#!/usr/bin/env bash
# `make study`: Vanilla-KD vs StepER-uniform vs StepER-adaptive at a matched budget (the same number
# of optimizer steps, training.budget=steps), SmolLM2-135M + LoRA with the demo's settings, several
# seeds, on
#   gated  the toy world whose evidence arrives step by step (dataset.evidence=gated),
#   open   the original toy world (dataset.evidence=open),
# each trained on the oracle teacher's traces of toy worlds 0, 1, 2 together and tested on the
# STUDY_TEST test questions of world 100 (names no student saw); then
#   2wiki  real 2WikiMultihopQA rows: the oracle's traces of ../shared/data/real/2wiki/train.sample.json
#          train the students, tested on its dev.sample.json rows.
# Then one report per part (CIs per run, mean ± std over seeds, paired differences).
#
# Resumable: one folder per student under STUDY_ROOT; a finished student (run card `done`) is
# skipped, an interrupted one resumes from its last checkpoint (ckpt_path=last) or, with none yet,
# starts again. Run it again after a SIGKILL or a reboot: nothing finished is redone.
#
# Settings (environment): STUDY_ROOT (study/), STUDY_PARTS ("gated open 2wiki"), STUDY_SEEDS
# ("0 1 2 3 4"; 2wiki: STUDY_2WIKI_SEEDS "0 1"), STUDY_QUESTIONS training questions per world (10),
# STUDY_STEPS optimizer steps per student (25), STUDY_TEST test questions (200; 2wiki: all 100 dev rows),
# STUDY_OVERRIDES extra train.py overrides for every student (e.g. on a GPU: "model=qwen0.5b trainer=gpu
# training.precision=bf16-mixed eval.batch_size=100"; not measured on a GPU yet).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ROOT=${STUDY_ROOT:-study}
PARTS=${STUDY_PARTS:-gated open 2wiki}
SEEDS=${STUDY_SEEDS:-0 1 2 3 4}
SEEDS_2WIKI=${STUDY_2WIKI_SEEDS:-0 1}
QUESTIONS=${STUDY_QUESTIONS:-10}
STEPS=${STUDY_STEPS:-25}
TEST=${STUDY_TEST:-200}
read -r -a EXTRA <<<"${STUDY_OVERRIDES:-}"
REAL=${STEPER_REAL_DATA:-../shared/data/real}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export WANDB_SILENT=${WANDB_SILENT:-true} WANDB_MODE=${WANDB_MODE:-offline}
if ! $PY -m steper.models path smollm2-135m >/dev/null 2>&1; then
  echo "error: the study's student SmolLM2-135M is not fetched: run \`make models\` first" >&2
  exit 2
fi
mkdir -p "$ROOT"
start=$(date +%s)
say() { printf '\n\033[1m== %s\033[0m  (%ss)\n' "$1" "$(($(date +%s) - start))"; }
status() { $PY -c 'import json,sys; print(json.load(open(sys.argv[1])).get("status", "?"))' "$1" 2>/dev/null || echo none; }

# The students of one part: `student <part> <seed> <method> <weighting> <overrides...>`
MATCHED=(experiment=demo training.budget=steps "training.max_steps=$STEPS" trainer.num_sanity_val_steps=0
  trainer.val_check_interval=null eval.val_limit=0 eval.batch_size=50 logger=csv)
student() {
  local part=$1 seed=$2 method=$3 weighting=$4
  shift 4
  local dir="$ROOT/$part/runs/$method-$weighting/seed$seed"
  local state
  state=$(status "$dir/run.json")
  if [ "$state" = done ]; then return 0; fi
  local resume=()
  if [ -f "$dir/checkpoints/last.ckpt" ]; then
    resume=(ckpt_path=last)
  elif [ -d "$dir" ]; then
    rm -rf "$dir"  # interrupted before its first checkpoint: nothing to keep
  fi
  say "$part: $method $weighting seed $seed${resume:+ (resuming)}"
  local t0=$(date +%s)
  $PY train.py "${MATCHED[@]}" method="$method" weighting="$weighting" seed="$seed" "$@" "${EXTRA[@]}" \
    "${resume[@]}" hydra.run.dir="$dir" tags="[study,$part]"
  echo "$part $method-$weighting seed$seed $(($(date +%s) - t0))s" >>"$ROOT/timings.txt"
}
students() {
  local part=$1 seeds=$2
  shift 2
  for seed in $seeds; do
    student "$part" "$seed" vanilla uniform "$@"
    student "$part" "$seed" steper uniform "$@"
    student "$part" "$seed" steper adaptive module.weighting_lr=1e-2 "$@"
  done
  say "$part: report"
  $PY -m steper.report "$ROOT/$part/runs" --out "$ROOT/$part/report"
}

toy_part() {
  local evidence=$1
  local data="$ROOT/data/toy-$evidence-worlds012"
  if [ ! -f "$data/stepwise/train.jsonl" ]; then
    for world in 0 1 2; do
      say "$evidence: teacher data of toy world $world ($QUESTIONS training questions)"
      $PY generate_data.py dataset=toy dataset.seed="$world" dataset.evidence="$evidence" dataset.paragraphs=facts \
        retriever.top_k=2 teacher=oracle limit="$QUESTIONS" progress=false paths.root_dir="$ROOT" \
        out_dir="$ROOT/data/toy-$evidence-world$world" hydra.run.dir="$ROOT/data/runs/$evidence-$world"
    done
    # the three worlds' step-wise examples as one training set (question ids name their world)
    mkdir -p "$data/stepwise.tmp"
    for split in train validation; do
      cat "$ROOT"/data/toy-"$evidence"-world[012]/stepwise/$split.jsonl >"$data/stepwise.tmp/$split.jsonl"
    done
    rm -rf "$data/stepwise" && mv "$data/stepwise.tmp" "$data/stepwise"
  fi
  students "$evidence" "$SEEDS" dataset=toy dataset.seed=100 dataset.evidence="$evidence" dataset.paragraphs=facts \
    dataset.n_test="$TEST" eval.limit="$TEST" retriever.top_k=2 stepwise.data_dir="$data/stepwise" \
    paths.root_dir="$ROOT"
}

wiki_part() {
  local train="$REAL/2wiki/train.sample.json" dev="$REAL/2wiki/dev.sample.json"
  if [ ! -f "$dev" ]; then
    echo "error: no real 2Wiki rows at $REAL/2wiki (set STEPER_REAL_DATA)" >&2
    exit 2
  fi
  local ids="$ROOT/data/2wiki-dev.ids"
  mkdir -p "$ROOT/data"
  $PY -c 'import json,sys; print("\n".join(r["_id"] for r in json.load(open(sys.argv[1]))))' "$dev" >"$ids"
  local data="$ROOT/data/2wiki-oracle"
  local real=(dataset=2wiki "dataset.train_path=$train" "dataset.dev_path=$dev" "dataset.test_ids_path=$ids"
    retriever.top_k=2 paths.root_dir="$ROOT")
  if [ ! -f "$data/stepwise/train.jsonl" ]; then
    say "2wiki: teacher data (the oracle over the 500 real train rows)"
    $PY generate_data.py "${real[@]}" teacher=oracle limit=null progress=false out_dir="$data" \
      hydra.run.dir="$ROOT/data/runs/2wiki"
  fi
  students 2wiki "$SEEDS_2WIKI" "${real[@]}" stepwise.data_dir="$data/stepwise" training.max_length=512 \
    eval.limit=null
}

for part in $PARTS; do
  case $part in
    gated | open) toy_part "$part" ;;
    2wiki) wiki_part ;;
    *) echo "error: unknown study part $part (STUDY_PARTS: gated open 2wiki)" >&2; exit 2 ;;
  esac
done
say "done: reports in $ROOT/{$(echo "$PARTS" | tr ' ' ',')}/report; per-student wall times in $ROOT/timings.txt"
