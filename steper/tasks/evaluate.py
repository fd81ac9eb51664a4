"""The evaluate job behind `evaluate.py` (docs/method.md §6): a target (a trained student, the
teacher, an untrained baseline, the oracle) through the reasoning loop on a split's questions.

Writes into `out_dir`: `predictions.jsonl`, `metrics.json`, `eval_key.json`
(steper.evaluation.runner) and the run card `run.json` (steper.runcard); prints the metrics table
and a `CSV:` line, and logs one W&B run. A rerun with the same out_dir resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from steper.config import (
    EvaluateOptions,
    FrameworkConfig,
    GeneratorConfig,
    check_at_least,
    check_choice,
    validate_options,
    validate_section,
)
from steper.constants import FRAMEWORKS, MODES, QUESTION_SPLITS
from steper.errors import SteperError
from steper.evaluation.targets import TARGETS
from steper.io import folder_lock
from steper.reasoning.loop import check_loop_settings
from steper.runcard import finish_card, write_card
from steper.tasks.cards import new_card


def check_config(cfg: Any) -> Any:
    """Validate the sections and top-level options evaluate.py uses (SteperError on a bad one)."""
    from omegaconf import open_dict

    validate_options(cfg, EvaluateOptions)
    with open_dict(cfg):
        cfg.framework = validate_section("framework", cfg.framework, FrameworkConfig)
        cfg.target = validate_section("target", cfg.target, GeneratorConfig)
    check_choice("framework.name", cfg.framework.name, FRAMEWORKS)
    check_choice("target", cfg.target.name, TARGETS)
    check_choice("split", cfg.split, QUESTION_SPLITS)
    check_choice("mode", cfg.mode, MODES)
    check_at_least("batch_size", cfg.batch_size, 1)
    check_at_least("limit", cfg.limit, 1, optional=True)
    check_at_least("n_demos", cfg.get("n_demos"), 0, optional=True)
    check_at_least("framework.max_steps", cfg.framework.max_steps, 1)
    check_at_least("framework.max_passages", cfg.framework.max_passages, 1)
    check_loop_settings(top_k=cfg.retriever.top_k, max_passages=cfg.framework.max_passages)
    loggers = {k for k, v in (cfg.get("logger") or {}).items() if v}
    other = sorted(loggers - {"wandb"})
    if other and "wandb" not in loggers:  # logger=wandb brings csv along for train.py: that is fine
        # only train.py writes a training history; an evaluation's numbers are metrics.json
        raise SteperError(
            f"logger={other[0]} logs nothing in evaluate.py: it writes metrics.json and predictions.jsonl "
            "itself and logs to W&B with logger=wandb; use logger=wandb or logger=none"
        )
    if not 0.0 <= float(cfg.max_failure_rate) <= 1.0:
        raise SteperError(f"max_failure_rate must be in [0, 1], got {cfg.max_failure_rate}: set e.g. max_failure_rate=0.05")
    return cfg


def failed_requests_error(
    metrics: dict[str, Any],
    max_rate: float,
    out_dir: Path,
    *,
    key: str = "max_failure_rate",
    rerun: str = "rerun the same command: those questions are retried (retry_errors=true)",
) -> str | None:
    """The error when more than `max_rate` of the questions ended on a failed request (None within it)."""
    n, failed = int(metrics.get("n") or 0), int(metrics.get("failures") or 0)
    if not n or failed / n <= float(max_rate):
        return None
    return (
        f"{failed} of {n} questions ({100 * failed / n:.1f}%) ended on a failed generation request, more than "
        f"{key}={max_rate}: their metrics are not answers. Everything is written to {out_dir}; check the "
        f"target (target.base_url, the server's log) and {rerun}"
    )


def _demos(cfg: Any, target: Any) -> tuple[str, int]:
    """The few-shot demonstrations: `n_demos`, or the framework's for ICL targets and none for a
    student or the oracle (docs/method.md §3)."""
    from steper.data import load_questions
    from steper.reasoning.demos import load_demos

    n = cfg.get("n_demos")
    n = int(cfg.framework.n_demos if target.demos else 0) if n is None else int(n)
    pool = load_questions(cfg.dataset, "train") if n and cfg.dataset.get("format") == "toy" else None
    return load_demos(cfg.dataset.name, cfg.framework.name, n=n, questions=pool), n


def card_model(cfg: Any, target: Any) -> dict[str, Any]:
    """The card's `model`: what was loaded, the label as given (None = the report names the row),
    the model's name in tables, and for a trained student its method, weighting and seed."""
    from steper.runcard import read_card

    info = dict(target.info)
    kind = cfg.target.name
    trained: dict[str, Any] = {}
    if kind == "student":
        trained = info.get("export") or {}
        trained = {**trained, "name": trained.get("model")}
    elif kind == "checkpoint":
        try:  # the train job's own card, beside its checkpoints/
            trained = read_card(Path(str(info["ckpt_path"])).parent.parent).model
        except SteperError:
            trained = {}
    name = {"hf": info.get("model"), "openai": info.get("model"), "oracle": None}.get(kind, trained.get("name"))
    return {
        **info,
        "target": kind,
        "label": cfg.target.get("label"),
        "display": target.label,
        "name": name,
        **{k: trained.get(k) for k in ("method", "weighting", "seed")},
    }


def _run(cfg: Any, questions: list, target: Any, demos: str, stats: dict[str, Any]) -> dict[str, Any]:
    from steper.evaluation.runner import evaluate_generator
    from steper.evaluation.targets import target_key
    from steper.plain import to_plain
    from steper.retrieval import load_retriever, retriever_params

    generator = target.generator
    try:
        retriever = load_retriever(cfg.dataset, cfg.retriever, cfg.paths.cache_dir)  # built on first use
        if cfg.framework.name == "selfask" and cfg.target.name == "oracle":
            from steper.reasoning.selfask import SelfAskOracle

            generator = SelfAskOracle(generator)
        fw = cfg.framework
        key = {
            "dataset": to_plain(cfg.dataset),
            "split": cfg.split,
            "retriever": retriever_params(cfg.retriever),
            "target": target_key(cfg.target),
        }
        return evaluate_generator(
            questions, retriever, generator, out_dir=Path(str(cfg.out_dir)), framework=fw.name, mode=cfg.mode,
            top_k=int(cfg.retriever.top_k), max_steps=int(fw.max_steps), max_passages=int(fw.max_passages),
            batch_size=int(cfg.batch_size), demos=demos, progress=bool(cfg.progress),
            retry_errors=bool(cfg.retry_errors), run_key=key, row_delay_s=float(cfg.row_delay_s or 0.0),
            run_stats=stats,
        )  # fmt: skip
    finally:
        generator.close()


def evaluate_run(cfg: Any) -> dict[str, Any]:
    """evaluate.py's body: evaluate `cfg.target` on `cfg.split` of `cfg.dataset` into `cfg.out_dir`."""
    out_dir = Path(str(cfg.out_dir))
    with folder_lock(out_dir, "evaluate.py"):  # two jobs into one folder would write every row twice
        return _evaluate_run_locked(cfg)


def _evaluate_run_locked(cfg: Any) -> dict[str, Any]:
    from steper.data import load_questions
    from steper.data.loading import no_questions_message
    from steper.evaluation.predictions import METRICS, PREDICTIONS
    from steper.evaluation.reporting import csv_line, log_predictions_to_wandb, print_report
    from steper.evaluation.targets import build_target

    check_config(cfg)
    out_dir = Path(str(cfg.out_dir))
    questions = load_questions(cfg.dataset, cfg.split)[: cfg.limit]
    if not questions:
        raise SteperError(no_questions_message(cfg.dataset, cfg.split))
    # the target first: a wrong path fails before a long first-time index build
    target = build_target(cfg.target, batch_size=int(cfg.batch_size))
    demos, n_demos = _demos(cfg, target)
    fw, mode = cfg.framework.name, cfg.mode
    card = new_card(
        "evaluate",
        cfg,
        data={"dataset": cfg.dataset.name, "split": cfg.split, "questions": len(questions),
              "framework": fw, "mode": mode, "n_demos": n_demos},
        model=card_model(cfg, target),
        where={"metrics": METRICS, "predictions": PREDICTIONS},
    )  # fmt: skip
    write_card(out_dir, card)
    try:
        card.data["run"] = {}
        metrics = _run(cfg, questions, target, demos, card.data["run"])
    except BaseException as e:
        finish_card(out_dir, card, error=f"{type(e).__name__}: {e}")
        raise
    card.metrics = metrics
    failed = failed_requests_error(metrics, float(cfg.max_failure_rate), out_dir)
    finish_card(out_dir, card, error=failed)
    if failed:
        raise SteperError(failed)
    print_report(metrics, title=f"{cfg.dataset.name} {cfg.split} · {target.label} · {fw}/{mode}")
    print(csv_line(metrics, dataset=cfg.dataset.name, split=cfg.split, target=target.label, framework=fw,
                   mode=mode), flush=True)  # fmt: skip
    print(f"predictions and metrics: {out_dir}", flush=True)
    log_predictions_to_wandb(cfg, metrics, out_dir / PREDICTIONS, label=target.label)
    return metrics
