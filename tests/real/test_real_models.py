"""Real pretrained checkpoints through every path a researcher's first run takes: the chat
template and EOS of a real tokenizer, full fine-tuning and LoRA (real target module names),
bf16 autocast and gradient checkpointing, the export evaluated by evaluate.py, and a real model
as generate_data.py's teacher. On CPU, sized to minutes (few examples, few steps)."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, compose_cfg, subprocess_env

# Short toy data: 2 passages per step keep prompts near 200-400 tokens on SmolLM2's tokenizer.
TOY = ["dataset=toy", "retriever.top_k=2"]


def run(cmd: list[str], timeout: int = 600, ok: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run an entry point; it must succeed, or fail with exit 2 and one of the `ok` messages."""
    r = subprocess.run(
        [sys.executable, *cmd],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    expected_error = r.returncode == 2 and any(m in r.stderr for m in ok)
    assert r.returncode == 0 or expected_error, r.stderr[-4000:]
    return r


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> Path:
    """Oracle teacher data on 30 toy questions: <root>/data/stepwise/toy-oracle-ircot/stepwise."""
    root = tmp_path_factory.mktemp("real-toy")
    run(["generate_data.py", *TOY, "teacher=oracle", "limit=30", f"paths.root_dir={root}",
         f"hydra.run.dir={root / 'gen'}"])  # fmt: skip
    return root


def train_cfg(root: Path, name: str, *overrides: str):
    return compose_cfg(
        "train",
        [
            *TOY,
            "model=smollm2-135m",
            f"paths.root_dir={root}",
            "logger=csv",
            "training.batch_size=4",
            "training.max_length=320",
            "training.warmup_ratio=0.0",
            "stepwise.limit_train=12",
            "stepwise.limit_val=6",
            # An EOS after every step's target, as the tier was sized with: in 3-4 steps on 3 questions
            # the held-out mid-step loss without it (the default, eos_after=final) rose 0.67 -> 0.75-0.83
            # on the 2-3 mid examples of the validation slice. The default's own training is measured
            # by `make demo` (mid 0.50 -> 0.10 over 25 steps, 11 mid validation examples).
            "stepwise.eos_after=every",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "trainer.log_every_n_steps=1",
            "callbacks.progress_bar=null",
            *overrides,
        ],  # fmt: skip
        root / name,
    )


def val_losses(run_dir: Path) -> dict[str, list[float]]:
    rows = list(csv.DictReader(open(next(run_dir.rglob("metrics.csv")))))
    return {
        task: [float(r[f"val/loss_{task}"]) for r in rows if r.get(f"val/loss_{task}")]
        for task in ("first", "mid", "final")
    }


def test_chat_template_generation_answers_a_passage_question(smollm2_dir, qwen_coder_dir):
    """Both architectures, through steper's hf backend and each tokenizer's chat template."""
    from steper.data.schema import Paragraph
    from steper.generators import build_generator
    from steper.generators.base import GenerationRequest
    from steper.reasoning.prompts import format_passage

    passages = [
        Paragraph("Zorvak Telu", "Zorvak Telu is a 1998 film directed by Mirel Okana."),
        Paragraph("Mirel Okana", "Mirel Okana is a film director born in Dresavo Pint."),
    ]
    # a direct question (the untrained model narrates its plan when asked to reason step by step)
    prompt = (
        "\n\n".join(map(format_passage, passages))
        + "\n\nQuestion: Who directed the film Zorvak Telu? Answer in one sentence."
    )
    request = GenerationRequest(prompt)
    for name in ("smollm2-135m", "qwen2.5-coder-0.5b"):  # the registry name resolves to the folder
        generator = build_generator({"name": "hf", "model_name_or_path": name, "max_new_tokens": 24})
        assert generator.chat, f"{name}: the chat template was not used"
        rendered = generator.render(request.prompt)
        assert "<|im_start|>assistant" in rendered and rendered.endswith("\n")
        [answer] = generator.generate([request])
        assert answer is not None and "Mirel Okana" in answer, (name, answer)
        generator.close()


@pytest.fixture(scope="module")
def lora_run(toy_root) -> tuple[Path, dict]:
    """SmolLM2 + LoRA (all-linear: q/k/v/o/gate/up/down_proj), 4 steps, evaluated in the loop at the end."""
    from steper.tasks.train import train

    cfg = train_cfg(
        toy_root, "lora", "peft=lora", "training.lr=2e-3", "trainer.max_steps=4", "training.max_epochs=10",
        "trainer.num_sanity_val_steps=-1", "eval.enabled=true", "eval.limit=4", "eval.val_limit=0",
        "eval.batch_size=4", "eval.max_new_tokens=32", "eval.progress=false",
    )  # fmt: skip
    return toy_root / "lora", train(cfg)


def test_lora_lowers_every_task_validation_loss(lora_run):
    run_dir, _ = lora_run
    for task, values in val_losses(run_dir).items():
        assert len(values) >= 2 and values[-1] < 0.9 * values[0], (task, values)
    adapter = json.loads((run_dir / "student" / "adapter_config.json").read_text())
    assert {"q_proj", "v_proj", "down_proj"} <= set(adapter["target_modules"])


def test_full_fine_tuning_lowers_every_task_validation_loss(toy_root):
    from steper.tasks.train import train

    cfg = train_cfg(
        toy_root, "full", "training.lr=1e-4", "trainer.max_steps=3", "training.max_epochs=10",
        "trainer.num_sanity_val_steps=-1", "eval.enabled=false", "export=false",
    )  # fmt: skip
    train(cfg)
    for task, values in val_losses(toy_root / "full").items():
        assert len(values) >= 2 and values[-1] < 0.9 * values[0], (task, values)


def test_export_evaluated_by_evaluate_py_equals_the_end_of_job_evaluation(lora_run, tmp_path):
    run_dir, metrics = lora_run
    out = tmp_path / "standalone"
    run(["evaluate.py", *TOY, "target=student", f"target.path={run_dir / 'student'}", "limit=4",
         "target.max_new_tokens=32", "batch_size=4", "progress=false", "logger=none", f"out_dir={out}",
         f"paths.root_dir={run_dir.parent}", f"hydra.run.dir={tmp_path / 'eval-run'}"])  # fmt: skip

    def answers(path: Path) -> list[tuple]:
        return [(r["qid"], r["prediction"], r["reasoning"]) for r in map(json.loads, open(path))]

    trained = answers(run_dir / "eval" / "predictions.jsonl")
    assert len(trained) == 4 and answers(out / "predictions.jsonl") == trained
    standalone = json.loads((out / "metrics.json").read_text())
    assert [standalone[k] for k in ("em", "f1", "acc")] == [metrics[k] for k in ("em", "f1", "acc")]


def test_bf16_autocast_and_gradient_checkpointing_on_cpu(toy_root):
    """Full FT of SmolLM2 under bf16-mixed with activation checkpointing; LoRA + checkpointing on
    Qwen2 (the input-grad hook peft needs when the embeddings are frozen)."""
    from steper.tasks.train import train

    for name, extra in (
        ("bf16-ckpt", ["trainer.precision=bf16-mixed", "model.gradient_checkpointing=true", "stepwise.limit_val=3"]),
        ("qwen-lora-ckpt", ["model=qwen2.5-coder-0.5b", "peft=lora", "model.gradient_checkpointing=true",
                            "training.max_length=256", "training.batch_size=1", "stepwise.limit_val=2"]),
    ):  # fmt: skip
        cfg = train_cfg(toy_root, name, "trainer.max_steps=2", "eval.enabled=false", "export=false", *extra)
        metrics = train(cfg)
        assert math.isfinite(metrics["val/loss_mean"]), (name, metrics)
        losses = [float(r["train/loss"]) for r in csv.DictReader(open(next((toy_root / name).rglob("metrics.csv"))))
                  if r.get("train/loss")]  # fmt: skip
        assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses), (name, losses)


def test_generate_data_with_a_real_hf_teacher(tmp_path):
    root = tmp_path / "gen"
    # a 135M teacher may get all 3 questions wrong: then the job says so (exit 2) after writing
    # everything, which is what this plumbing test reads
    run(["generate_data.py", *TOY, "teacher=hf", "teacher.model_name_or_path=smollm2-135m", "limit=3",
         "teacher.max_new_tokens=32", "progress=false", f"paths.root_dir={root}",
         f"hydra.run.dir={tmp_path / 'gen-run'}"], ok=("teacher traces was correct",))  # fmt: skip
    out = root / "data" / "stepwise" / "toy-hf-ircot"
    traces = [json.loads(line) for line in open(out / "traces.jsonl")]
    assert len(traces) == 3 and all(t["steps"] for t in traces)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["questions"] == 3 and manifest["failures"]["failed_requests"] == 0
    assert manifest["run"]["generator_stats"]["generated_tokens"] > 0  # the model really generated
