"""The generate_data job behind `generate_data.py`: teacher traces → step-wise training data
(docs/method.md §4).

It runs the teacher loop (IRCoT or Self-Ask) over a split's questions and writes, into the fixed
folder `cfg.out_dir` (so a rerun resumes, steper.jobs):

- `traces.jsonl`: one trace per question, appended (fsynced) as each question finishes, rewritten
  in question order at the end;
- `stepwise/train.jsonl`, `stepwise/validation.jsonl`: the first/mid/final/vanilla examples of the
  correct traces, split by question (steper.distill.stepwise), and `stepwise_hf/`, the same as a
  `datasets.DatasetDict`;
- `manifest.json`: counts per task and split, filter statistics, the teacher's EM/F1/Acc,
  gold-paragraph recall, failures. What differs from one run to the next (seconds, resumed
  traces, generator stats) is under its `run` key: the rest equals an uninterrupted run's;
- `run_key.json`: what the traces depend on (a rerun with other settings is refused);
- `run.json`: the run card (steper.runcard).

Failures: a request the generator answers with None ends its trace (`finish="error"`); after
everything is written the job fails if more than `max_failure_rate` of the traces did, or if no
trace was correct (no training data). A rerun retries failed requests (`retry_errors`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from steper.config import (
    FrameworkConfig,
    GenerateDataOptions,
    check_at_least,
    check_choice,
    validate_options,
    validate_section,
)
from steper.constants import FILTERS, FRAMEWORKS, QUESTION_SPLITS
from steper.errors import SteperError
from steper.io import folder_lock, write_json
from steper.jobs import JobProgress, ResumableRows, check_unique_qids
from steper.plain import to_plain
from steper.reasoning.loop import check_loop_settings
from steper.runcard import finish_card, write_card
from steper.secrets import scrub
from steper.tasks.cards import new_card

log = logging.getLogger(__name__)

TRACES = "traces.jsonl"
RUN_KEY = "run_key.json"
# Teacher settings that do not change what the teacher writes (ignored by the resume check).
RUNTIME_TEACHER_KEYS = frozenset(
    {"batch_size", "device", "concurrency", "timeout_s", "max_retries", "backoff_base_s", "backoff_max_s",
     "base_url", "api_key_env", "label"}
)  # fmt: skip


def check_config(cfg: DictConfig) -> DictConfig:
    """Validate the `framework` section and the job's top-level options (SteperError on a bad one)."""
    validate_options(cfg, GenerateDataOptions)
    with open_dict(cfg):
        cfg.framework = validate_section("framework", cfg.framework, FrameworkConfig)
    check_choice("framework.name", cfg.framework.name, FRAMEWORKS)
    check_at_least("framework.max_steps", cfg.framework.max_steps, 1)
    check_loop_settings(top_k=cfg.retriever.top_k, max_passages=cfg.framework.max_passages)
    check_at_least("framework.max_passages", cfg.framework.max_passages, 1)
    check_at_least("framework.n_demos", cfg.framework.n_demos, 0)
    check_choice("split", cfg.split, QUESTION_SPLITS)
    check_choice("filter", cfg.filter, FILTERS)
    if not 0.0 <= float(cfg.val_fraction) < 1.0:
        raise SteperError(f"val_fraction must be in [0, 1), got {cfg.val_fraction}")
    check_at_least("batch_size", cfg.batch_size, 1)
    check_at_least("limit", cfg.limit, 1, optional=True)
    if not 0.0 <= float(cfg.max_failure_rate) <= 1.0:
        raise SteperError(f"max_failure_rate must be in [0, 1], got {cfg.max_failure_rate}")
    return cfg


def run_key(cfg: DictConfig) -> dict[str, Any]:
    """What the traces depend on (a rerun into the same folder must match it)."""
    teacher = {k: v for k, v in (to_plain(cfg.teacher) or {}).items() if k not in RUNTIME_TEACHER_KEYS}
    return scrub(
        {
            "split": cfg.split,
            "dataset": to_plain(cfg.dataset),
            "retriever": to_plain(cfg.retriever) or {},
            "teacher": teacher,
            "framework": to_plain(cfg.framework),
        }
    )


def run_teacher(cfg: DictConfig, questions: list, job: ResumableRows) -> dict[str, Any]:
    """The teacher loop over the questions `job` has no trace of; returns the generator's stats."""
    from steper.data import load_questions
    from steper.distill.stepwise import trace_score
    from steper.generators import build_generator
    from steper.reasoning.demos import load_demos
    from steper.reasoning.loop import Trace, run_loop
    from steper.retrieval import load_retriever

    todo = job.todo(questions, retry_errors=bool(cfg.retry_errors))
    if not todo:
        return {}
    fw = cfg.framework
    pool = questions if cfg.split == "train" else load_questions(cfg.dataset, "train")
    demos = load_demos(cfg.dataset.name, fw.name, n=int(fw.n_demos), questions=pool)
    retriever = load_retriever(cfg.dataset, cfg.retriever, cfg.paths.cache_dir)
    generator = build_generator(cfg.teacher)
    if fw.name == "selfask" and cfg.teacher.name == "oracle":
        from steper.reasoning.selfask import SelfAskOracle

        generator = SelfAskOracle(generator)
    delay = float(cfg.trace_delay_s or 0.0)
    try:
        with JobProgress("teacher", len(questions), job.resumed, enabled=bool(cfg.progress)) as bar:

            def on_trace(trace: Trace) -> None:
                job.write(trace.to_dict())
                bar.add(trace_score(trace)["acc"])
                if delay:
                    time.sleep(delay)

            run_loop(todo, retriever, generator, framework=fw.name, top_k=int(cfg.retriever.top_k),
                     max_steps=int(fw.max_steps), max_passages=int(fw.max_passages), demos=demos,
                     batch_size=int(cfg.batch_size), on_trace=on_trace)  # fmt: skip
        return dict(getattr(generator, "stats", {}) or {})
    finally:
        generator.close()


def check_outcome(manifest: dict[str, Any], out_dir: Path, cfg: DictConfig) -> None:
    """Fail (everything written) on too many failed requests, when no trace gave data, or when the
    oracle's data have no reasoning step; warn when a model teacher's have none."""
    failures, n = manifest["failures"], manifest["questions"]
    if failures["rate"] > float(cfg.max_failure_rate):
        raise SteperError(
            f"{failures['failed_requests']} of {n} questions ({100 * failures['rate']:.1f}%) ended on a failed "
            f"generation request, more than max_failure_rate={cfg.max_failure_rate}. Everything is written to "
            f"{out_dir}; check the teacher server/model and rerun: questions that ended on a failed request "
            "are retried (retry_errors=true)."
        )
    finish = manifest.get("finish") or {}
    if manifest["filter"]["kept"] == 0 and finish.get("max_steps", 0) == n:
        raise SteperError(
            f"none of the {n} teacher traces reached an answer within framework.max_steps="
            f"{cfg.framework.max_steps} (every one ran out of steps; traces.jsonl shows them): a question of "
            f"k hops needs k chain sentences and one answer step. Raise framework.max_steps (e.g. to "
            f"{int(cfg.framework.max_steps) + 3}) or ask fewer hops (dataset.hops)"
        )
    if manifest["filter"]["kept"] == 0:
        raise SteperError(
            f"none of the {n} teacher traces was correct (filter={cfg.filter}; dropped: "
            f"{manifest['filter']['dropped']}), so {out_dir / 'stepwise'} holds no training data. Check the "
            "teacher (teacher=..., its model and prompts: traces.jsonl shows its answers), or keep "
            "answers that contain a gold one with filter=acc"
        )
    counts = [manifest["counts"][split] for split in ("train", "validation")]
    reasoning = sum(c.get("first", 0) + c.get("mid", 0) for c in counts)
    if reasoning > 0:
        return
    kept = manifest["filter"]["kept"]
    if cfg.teacher.name == "oracle":
        # the oracle writes each question's gold chain: none means the questions have none, and no
        # rerun can change that
        raise SteperError(
            f"the {kept} kept teacher traces have no reasoning step (0 first and 0 mid examples: every one "
            f"answered at its first step), so {out_dir / 'stepwise'} holds final-answer examples only, which "
            "is not step-wise data: the questions have no gold chain for the oracle (e.g. dataset.format=ircot "
            "rows without reasoning_steps). Use the official files (dataset.format=hotpot|2wiki|musique)"
        )
    # a model teacher that answered at once: the data are written (Vanilla-KD can train on them,
    # train.py method=steper refuses them); another model, prompt or more questions may do better
    log.warning(
        "NOT STEP-WISE DATA: the %d kept teacher traces have no reasoning step (0 first and 0 mid examples: "
        "every one answered at its first step); %s holds final-answer examples only, which method=steper "
        "cannot train on. Check the teacher's prompts and demos (traces.jsonl shows its answers), or keep "
        "more traces (more questions, filter=acc)",
        kept, out_dir / "stepwise",
    )  # fmt: skip


def generate_data(cfg: DictConfig) -> dict[str, Any]:
    """Run the teacher over `cfg.split` and write traces, step-wise data, manifest and run card."""
    out_dir = Path(str(cfg.out_dir))
    with folder_lock(out_dir, "generate_data.py"):  # two jobs into one folder would write every row twice
        return _generate_data_locked(cfg)


def _generate_data_locked(cfg: DictConfig) -> dict[str, Any]:
    from steper.data import load_questions
    from steper.data.loading import no_questions_message
    from steper.reasoning.loop import Trace
    from steper.tasks.teacher_data import summarize, write_stepwise

    t_start = time.perf_counter()
    check_config(cfg)
    out_dir = Path(str(cfg.out_dir))
    questions = load_questions(cfg.dataset, cfg.split)[: cfg.limit]
    if not questions:
        raise SteperError(no_questions_message(cfg.dataset, cfg.split))
    qids = check_unique_qids(questions, f"dataset {cfg.dataset.name!r}")
    card = new_card("generate_data", cfg, data={"dataset": cfg.dataset.name, "split": cfg.split,
                    "questions": len(questions)}, model={"teacher": to_plain(cfg.teacher)})  # fmt: skip
    with ResumableRows(out_dir, TRACES, RUN_KEY, run_key(cfg), what="traces") as job:
        write_card(out_dir, card)
        try:
            gen_stats = run_teacher(cfg, questions, job)
        except BaseException as e:
            finish_card(out_dir, card, error=f"{type(e).__name__}: {e}")
            raise
    # every output is rebuilt from the whole traces file, in question order
    traces = [Trace.from_dict(r) for r in job.finish(qids, keep_others=True)]
    n_error = sum(t.finish == "error" for t in traces)
    manifest = {
        "task": "generate_data",
        "out_dir": str(out_dir),
        "config": scrub(to_plain(cfg)),
        "questions": len(questions),
        **write_stepwise(traces, out_dir, cfg.filter, float(cfg.val_fraction), int(cfg.seed)),
        **summarize(traces),
        "failures": {"failed_requests": n_error, "rate": round(n_error / len(traces), 6),
                     "max_failure_rate": float(cfg.max_failure_rate)},
        "files": {"traces": TRACES, "train": "stepwise/train.jsonl", "validation": "stepwise/validation.jsonl",
                  "hf_dataset": "stepwise_hf"},
        # what differs from run to run; the rest equals an uninterrupted run's manifest
        "run": {"seconds": round(time.perf_counter() - t_start, 3), "resumed_traces": job.resumed,
                "new_traces": job.new, "generator_stats": gen_stats},
    }  # fmt: skip
    write_json(out_dir / "manifest.json", manifest)
    log.info(
        "%d traces → %d kept (%s); train %s, validation %s; teacher EM %.1f Acc %.1f; out: %s",
        len(traces), manifest["filter"]["kept"], cfg.filter, manifest["counts"]["train"],
        manifest["counts"]["validation"], manifest["teacher"]["em"] or 0.0, manifest["teacher"]["acc"] or 0.0,
        out_dir,
    )  # fmt: skip
    card.data.update(counts=manifest["counts"], filter=manifest["filter"])
    card.metrics = {**{k: manifest["teacher"][k] for k in ("em", "f1", "acc")}, "n": len(traces)}
    card.where = {**manifest["files"], "manifest": "manifest.json"}
    try:
        check_outcome(manifest, out_dir, cfg)
    except SteperError as e:
        finish_card(out_dir, card, error=str(e))
        raise
    finish_card(out_dir, card)
    return manifest
