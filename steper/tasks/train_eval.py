"""The student's answers during and after training: the same multi-step loop as evaluate.py,
with the in-memory model (docs/method.md §6)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def generation_options(cfg: DictConfig) -> dict[str, Any]:
    """How the student generates when train.py evaluates it (`eval.*`), as evaluate.py would."""
    ev = cfg.eval
    return {
        "max_new_tokens": int(ev.max_new_tokens),
        "stop": list(ev.stop),
        "batch_size": int(ev.batch_size),
        "prompt_cache": bool(ev.get("prompt_cache", True)),
        "stop_at_unit": bool(ev.get("stop_at_unit", True)),
    }


def loop_settings(cfg: DictConfig) -> dict[str, Any]:
    """The loop the student is evaluated in: the job's framework and retriever, `eval.mode`."""
    return {
        "framework": cfg.framework.name,
        "mode": str(cfg.eval.mode),
        "top_k": int(cfg.retriever.top_k),
        "max_steps": int(cfg.framework.max_steps),
        "max_passages": int(cfg.framework.max_passages),
        "batch_size": int(cfg.eval.batch_size),
    }


@contextmanager
def lora_merged(model: Any) -> Iterator[Any]:
    """A LoRA PeftModel with its adapter merged into the base weights while the block runs, then
    unmerged; any other model as it is.

    A merged adapter is one matmul per linear layer instead of three, which makes the final
    evaluation ~1.3x faster (benchmarks/README.md), and it is what evaluate.py target=student
    evaluates (its `merge: true`), so both paths score the same weights. Unmerging subtracts the
    same delta, which restores the base weights up to float rounding: only the final evaluation,
    after the export, merges; validation during training leaves the weights alone."""
    merge = getattr(model, "merge_adapter", None)
    if merge is None or getattr(model, "peft_type", None) is None:
        yield model
        return
    merge()
    try:
        yield model
    finally:
        model.unmerge_adapter()


class ValidationAnswers:
    """The answer metrics of each validation: the student in the real loop on the first
    `eval.val_limit` dev questions, logged as val/em, val/f1, val/acc (rank 0 evaluates)."""

    def __init__(self, cfg: DictConfig, dm, out_dir: Path):
        self.cfg, self.dm, self.out_dir = cfg, dm, out_dir
        self.questions = None
        self.retriever = None
        self.calls = 0

    def __call__(self, model, tokenizer) -> dict[str, float]:
        from lightning.pytorch.utilities import rank_zero_only

        if rank_zero_only.rank != 0:
            return {}
        from steper.data import load_questions
        from steper.evaluation.runner import evaluate_generator
        from steper.generators.hf import HFGenerator
        from steper.retrieval import load_retriever

        cfg, ev = self.cfg, self.cfg.eval
        if self.questions is None:
            self.questions = load_questions(cfg.dataset, "dev")[: int(ev.val_limit)]
            self.retriever = load_retriever(cfg.dataset, cfg.retriever, cfg.paths.cache_dir)
        generator = HFGenerator.from_pretrained_objects(
            model, tokenizer, chat=bool(self.dm.use_chat), **generation_options(cfg)
        )
        self.calls += 1
        result = evaluate_generator(
            self.questions,
            self.retriever,
            generator,
            out_dir=self.out_dir / f"{self.calls:03d}",
            progress=False,
            **loop_settings(cfg),
        )
        return {k: float(result[k]) for k in ("em", "f1", "acc")}


def evaluate_student(
    cfg: DictConfig, trainer, module, tokenizer, dm, export_dir: Path | None, out_dir: Path
) -> dict:
    """Run the trained student through the multi-step loop on the test questions (eval.*), as
    `evaluate.py target=student target.path=<run dir>/student` would; returns its metrics (the
    schema of evaluate.py's metrics.json).

    The in-memory model is used (greedy, same rendering as the export), except under sharded
    strategies (FSDP, DeepSpeed ZeRO-3), where the gathered export is loaded instead.
    """
    from steper.data import load_questions
    from steper.evaluation.reporting import print_report
    from steper.evaluation.runner import evaluate_generator
    from steper.generators.hf import HFGenerator
    from steper.retrieval import load_retriever, retriever_params

    ev = cfg.eval
    questions = load_questions(cfg.dataset, ev.split)
    if ev.limit is not None:
        questions = questions[: int(ev.limit)]
    opts = generation_options(cfg)
    sharded = type(trainer.strategy).__name__.startswith(("FSDP", "DeepSpeed"))
    if sharded and export_dir is not None:
        from steper.evaluation.targets import build_target

        generator = build_target({"name": "student", "path": str(export_dir), **opts}).generator
    else:
        generator = HFGenerator.from_pretrained_objects(
            module.model, tokenizer, chat=bool(dm.use_chat), **opts
        )
    log.info("evaluating the student on %d %s questions of %s", len(questions), ev.split, cfg.dataset.name)
    try:
        retriever = load_retriever(cfg.dataset, cfg.retriever, cfg.paths.cache_dir)
        with lora_merged(generator.model):
            result = evaluate_generator(
                questions,
                retriever,
                generator,
                out_dir=out_dir,
                progress=bool(ev.progress),
                **loop_settings(cfg),
                run_key={
                    "dataset": cfg.dataset.name,
                    "split": ev.split,
                    "retriever": retriever_params(cfg.retriever),
                }
            )
    finally:
        generator.close()
    print_report(result, title=f"{cfg.dataset.name} {ev.split} · student · {cfg.framework.name}/{ev.mode}")
    return result
