"""The generate_data job: teacher traces → step-wise training data (method.md §4).

`generate_data(cfg)` runs the teacher loop (IRCoT or Self-Ask) over a split's questions and writes,
into the fixed folder `cfg.out_dir` (so a rerun resumes):

- `traces.jsonl`: one trace per question, appended (fsynced) as each question finishes;
- `stepwise/train.jsonl`, `stepwise/validation.jsonl`: the first/mid/final/vanilla examples of
  the correct traces, split by question (`steper.distill.stepwise`);
- `stepwise_hf/`: the same as a `datasets.DatasetDict` (`save_to_disk`, written atomically);
- `manifest.json`: config (secrets scrubbed), counts per task and split, filter statistics, the
  teacher's EM/F1/Acc, gold-paragraph recall, failures, versions. Everything that differs from
  one run to the next (seconds, how many traces were resumed, this run's generator stats) is under
  its `run` key: the rest equals an uninterrupted run's;
- `run_key.json`: what the traces depend on; a rerun with a different dataset/retriever/teacher/
  framework setting into the same folder stops with an error instead of mixing traces.

Resume: the valid lines already in traces.jsonl are kept (a torn last line is cut), their
questions are skipped, the rest run in question order; at the end traces.jsonl is rewritten in
question order (atomically) and the step-wise files and the manifest are rebuilt from it, so they
equal those of an uninterrupted run (timings aside).

Failures: a request the generator answers with None ends its trace (`finish="error"`). After
everything is written, the job raises a SteperError (exit status 2) if the share of such traces
exceeds `max_failure_rate`. A rerun retries them (`retry_errors=true`; the later line of a qid in
traces.jsonl wins).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from steper.config import validate_section
from steper.errors import SteperError
from steper.io import JsonlAppender, iter_jsonl, write_json, write_jsonl
from steper.secrets import scrub

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
FILTERS = ("em", "acc")
FRAMEWORKS = ("ircot", "selfask")
EXAMPLE_FIELDS = ("qid", "task", "step", "prompt", "prefix", "target")
# Teacher settings that do not change what the teacher writes (ignored by the resume check).
_RUNTIME_TEACHER_KEYS = frozenset(
    {
        "batch_size",
        "device",
        "concurrency",
        "timeout_s",
        "max_retries",
        "backoff_base_s",
        "backoff_max_s",
        "base_url",
        "api_key_env",
    }
)


@dataclass
class FrameworkConfig:
    """Schema of the `framework` section (conf/framework/*.yaml)."""

    name: str = "ircot"  # ircot | selfask
    max_steps: int = 5  # S: generated units before giving up (Self-Ask needs 2 per hop + 1)
    max_passages: int = 15  # cap of the accumulated passages (IRCoT's)
    n_demos: int = 3  # teacher few-shot demonstrations (the student gets none)


# ------------------------------------------------------------------------------------------------
# config helpers
# ------------------------------------------------------------------------------------------------


def check_config(cfg: DictConfig) -> DictConfig:
    """Validate the `framework` section and the job's top-level options (SteperError on a bad one)."""
    fw = validate_section("framework", cfg.framework, FrameworkConfig)
    with open_dict(cfg):
        cfg.framework = fw
    if cfg.framework.name not in FRAMEWORKS:
        raise SteperError(
            f"framework.name must be one of {', '.join(FRAMEWORKS)}, got {cfg.framework.name!r}"
        )
    if cfg.framework.max_steps < 1 or cfg.framework.max_passages < 1 or cfg.framework.n_demos < 0:
        raise SteperError("framework.max_steps and framework.max_passages must be >= 1, n_demos >= 0")
    if cfg.split not in SPLITS:
        raise SteperError(f"split must be one of {', '.join(SPLITS)}, got {cfg.split!r}")
    if cfg.filter not in FILTERS:
        raise SteperError(f"filter must be one of {', '.join(FILTERS)}, got {cfg.filter!r}")
    if not 0.0 <= float(cfg.val_fraction) < 1.0:
        raise SteperError(f"val_fraction must be in [0, 1), got {cfg.val_fraction}")
    if int(cfg.batch_size) < 1:
        raise SteperError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if cfg.limit is not None and int(cfg.limit) < 1:
        raise SteperError(f"limit must be null or >= 1, got {cfg.limit}")
    if not 0.0 <= float(cfg.max_failure_rate) <= 1.0:
        raise SteperError(f"max_failure_rate must be in [0, 1], got {cfg.max_failure_rate}")
    return cfg


def _plain(node: Any) -> Any:
    if node is None:
        return None
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def run_key(cfg: DictConfig) -> dict[str, Any]:
    """What the traces depend on (a rerun into the same folder must match it)."""
    teacher = {k: v for k, v in (_plain(cfg.teacher) or {}).items() if k not in _RUNTIME_TEACHER_KEYS}
    retriever = _plain(cfg.retriever) or {}
    return scrub(
        {
            "split": cfg.split,
            "dataset": _plain(cfg.dataset),
            "retriever": retriever,
            "teacher": teacher,
            "framework": _plain(cfg.framework),
        }
    )


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for pkg in ("steper", "transformers", "torch", "bm25s", "datasets"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


# ------------------------------------------------------------------------------------------------
# outputs
# ------------------------------------------------------------------------------------------------


def read_traces(path: Path) -> dict[str, dict]:
    """qid → trace dict of the valid lines of a traces file (a later line of a qid, a retry,
    replaces an earlier one)."""
    out: dict[str, dict] = {}
    if not path.is_file():
        return out
    skipped: list[int] = []
    for _, row in iter_jsonl(path, strict=False, skipped=skipped):
        qid = row.get("qid")
        if qid is not None:
            out[str(qid)] = row
    if skipped:
        log.warning("%s: skipped %d malformed line(s): %s", path, len(skipped), skipped[:10])
    return out


def save_hf(train: Sequence[dict], validation: Sequence[dict], out: Path) -> None:
    """The step-wise splits as a `datasets.DatasetDict` at `out`, written atomically."""
    from datasets import Dataset, DatasetDict, Features, Value

    features = Features(
        {
            "qid": Value("string"),
            "task": Value("string"),
            "step": Value("int64"),
            "prompt": Value("string"),
            "prefix": Value("string"),
            "target": Value("string"),
        }
    )

    def ds(rows: Sequence[dict]) -> Dataset:
        return Dataset.from_dict({k: [r[k] for r in rows] for k in EXAMPLE_FIELDS}, features=features)

    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    dd = DatasetDict({"train": ds(train), "validation": ds(validation)})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old = out.with_name(f".{out.name}.old")
    bars_were_off = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        dd.save_to_disk(str(tmp))
        if old.exists():
            shutil.rmtree(old)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if not bars_were_off:
            enable_progress_bars()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def summarize(traces: Sequence[Any]) -> dict[str, Any]:
    """Teacher metrics, finish reasons and gold-paragraph recall over traces (percentages)."""
    from steper.distill.stepwise import trace_score

    n = len(traces)
    scores = [trace_score(t) for t in traces]
    found = [t.all_gold_found for t in traces if t.gold_titles]
    acc_found = [s["acc"] for t, s in zip(traces, scores) if t.gold_titles and t.all_gold_found]
    acc_missed = [s["acc"] for t, s in zip(traces, scores) if t.gold_titles and not t.all_gold_found]
    recall = [len(t.gold_found) / len(t.gold_titles) for t in traces if t.gold_titles]

    def pct(vals: Sequence[float]) -> float | None:
        return round(100.0 * sum(vals) / len(vals), 4) if vals else None

    return {
        "teacher": {
            "em": pct([s["em"] for s in scores]),
            "f1": pct([s["f1"] for s in scores]),
            "acc": pct([s["acc"] for s in scores]),
            "count": n,
        },
        "finish": dict(sorted(Counter(t.finish for t in traces).items())),
        "mean_steps": round(sum(len(t.steps) for t in traces) / n, 4) if n else None,
        "retrieval": {
            "questions_with_gold_titles": len(found),
            "all_gold_found": pct([float(f) for f in found]),
            "gold_recall": pct(recall),
            # the oracle-style view: the teacher's Acc where retrieval found every gold paragraph
            "acc_when_all_gold_found": pct(acc_found),
            "acc_when_gold_missed": pct(acc_missed),
        },
    }


# ------------------------------------------------------------------------------------------------
# the job
# ------------------------------------------------------------------------------------------------


class _Progress:
    """A rich progress bar: questions done, questions/s, running teacher accuracy."""

    def __init__(self, total: int, done: int, enabled: bool = True):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.enabled = enabled and total > done
        self.t0 = time.perf_counter()
        self.new = 0
        self.correct = 0.0
        self.scored = 0
        self.bar = Progress(
            TextColumn("[bold]teacher"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[qps]:.1f} q/s"),
            TextColumn("acc {task.fields[acc]:.1f}%"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
            disable=not self.enabled,
        )
        self.task = self.bar.add_task("generate", total=total, completed=done, qps=0.0, acc=0.0)

    def add(self, trace: Any, acc: float) -> None:
        self.new += 1
        self.scored += 1
        self.correct += acc
        dt = max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(self.task, advance=1, qps=self.new / dt, acc=100.0 * self.correct / self.scored)

    def __enter__(self) -> _Progress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


def generate_data(cfg: DictConfig) -> dict[str, Any]:
    """Run the teacher over `cfg.split` and write traces, step-wise data and manifest to `cfg.out_dir`."""
    from steper.data import load_questions
    from steper.distill.stepwise import build_stepwise, split_by_question, task_counts, trace_score
    from steper.generators import build_generator
    from steper.reasoning.demos import load_demos
    from steper.reasoning.loop import Trace, run_loop
    from steper.retrieval import load_retriever

    t_start = time.perf_counter()
    check_config(cfg)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    traces_path = out_dir / "traces.jsonl"

    key = run_key(cfg)
    key_path = out_dir / "run_key.json"
    if key_path.is_file() and traces_path.is_file():
        old = json.loads(key_path.read_text(encoding="utf-8"))
        if old != key:
            diff = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
            raise SteperError(
                f"{out_dir} holds traces made with a different setting ({', '.join(diff)} differ). "
                f"Delete that folder to start over, or choose another folder with out_dir=..."
            )
    write_json(key_path, key)

    questions = load_questions(cfg.dataset, cfg.split)
    if cfg.limit is not None:
        questions = questions[: int(cfg.limit)]
    if not questions:
        raise SteperError(f"no {cfg.split} questions in dataset {cfg.dataset.name!r}")
    qids = [q.qid for q in questions]
    if len(set(qids)) != len(qids):
        dup = [q for q, c in Counter(qids).items() if c > 1][:5]
        raise SteperError(f"dataset {cfg.dataset.name!r} has duplicate question ids, e.g. {dup}")

    fw = cfg.framework
    demo_pool = questions if cfg.split == "train" else load_questions(cfg.dataset, "train")
    demos = load_demos(cfg.dataset.name, fw.name, n=int(fw.n_demos), questions=demo_pool)

    appender = JsonlAppender(traces_path)  # cuts a torn last line first
    try:
        existing = read_traces(traces_path)
        retry = bool(cfg.get("retry_errors", True))
        todo = [
            q
            for q in questions
            if q.qid not in existing or (retry and existing[q.qid].get("finish") == "error")
        ]
        n_done = len(questions) - len(todo)
        if n_done:
            log.info(
                "resuming: %d of %d questions already have a trace in %s", n_done, len(questions), traces_path
            )

        gen_stats: dict[str, Any] = {}
        if todo:
            retriever = load_retriever(cfg.dataset, cfg.retriever, cfg.paths.cache_dir)
            generator = build_generator(cfg.teacher)
            if fw.name == "selfask" and cfg.teacher.name == "oracle":
                from steper.reasoning.selfask import SelfAskOracle

                generator = SelfAskOracle(generator)
            delay = float(cfg.get("trace_delay_s") or 0.0)
            try:
                with _Progress(len(questions), n_done, enabled=bool(cfg.get("progress", True))) as bar:

                    def on_trace(trace: Trace) -> None:
                        appender.write(trace.to_dict())
                        bar.add(trace, trace_score(trace)["acc"])
                        if delay:
                            time.sleep(delay)

                    run_loop(
                        todo,
                        retriever,
                        generator,
                        framework=fw.name,
                        top_k=int(cfg.retriever.top_k),
                        max_steps=int(fw.max_steps),
                        max_passages=int(fw.max_passages),
                        demos=demos,
                        batch_size=int(cfg.batch_size),
                        on_trace=on_trace,
                    )
                gen_stats = dict(getattr(generator, "stats", {}) or {})
            finally:
                generator.close()
    finally:
        appender.close()

    # Rebuild every output from the whole traces file, in question order.
    by_qid = read_traces(traces_path)
    missing = [q for q in qids if q not in by_qid]
    if missing:
        raise SteperError(
            f"{traces_path}: no trace for {len(missing)} question(s), e.g. {missing[:3]}; rerun to resume"
        )
    traces = [Trace.from_dict(by_qid[q]) for q in qids]
    # The traces file in question order too (traces of questions outside this run's list, e.g. after
    # lowering `limit`, stay at the end), so it reads like an uninterrupted run's.
    wanted = set(qids)
    write_jsonl(traces_path, [by_qid[q] for q in qids] + [r for q, r in by_qid.items() if q not in wanted])

    examples, filter_stats = build_stepwise(traces, cfg.filter)
    train, validation = split_by_question(examples, float(cfg.val_fraction), int(cfg.get("seed", 0)))
    write_jsonl(out_dir / "stepwise" / "train.jsonl", train)
    write_jsonl(out_dir / "stepwise" / "validation.jsonl", validation)
    save_hf(train, validation, out_dir / "stepwise_hf")

    summary = summarize(traces)
    n_error = sum(t.finish == "error" for t in traces)
    rate = n_error / len(traces)
    manifest = {
        "task": "generate_data",
        "out_dir": str(out_dir),
        "config": scrub(OmegaConf.to_container(cfg, resolve=True)),
        "questions": len(questions),
        "counts": {
            "train": {**task_counts(train), "questions": len({e["qid"] for e in train})},
            "validation": {**task_counts(validation), "questions": len({e["qid"] for e in validation})},
        },
        "filter": filter_stats,
        **summary,
        "failures": {
            "failed_requests": n_error,
            "rate": round(rate, 6),
            "max_failure_rate": float(cfg.max_failure_rate),
        },
        "versions": versions(),
        "files": {
            "traces": "traces.jsonl",
            "train": "stepwise/train.jsonl",
            "validation": "stepwise/validation.jsonl",
            "hf_dataset": "stepwise_hf",
        },
        # what differs from run to run; the rest equals an uninterrupted run's manifest
        "run": {
            "seconds": round(time.perf_counter() - t_start, 3),
            "resumed_traces": n_done,
            "new_traces": len(todo),
            "generator_stats": gen_stats,
            "trace_seconds": {
                "retrieval": round(sum(t.seconds.get("retrieval", 0.0) for t in traces), 4),
                "generation": round(sum(t.seconds.get("generation", 0.0) for t in traces), 4),
            },
        },
    }
    write_json(out_dir / "manifest.json", manifest)

    c = manifest["counts"]
    log.info(
        "%d traces → %d kept (%s); train %s, validation %s; teacher EM %.1f Acc %.1f; all gold found %s%%; out: %s",
        len(traces),
        filter_stats["kept"],
        cfg.filter,
        c["train"],
        c["validation"],
        summary["teacher"]["em"] or 0.0,
        summary["teacher"]["acc"] or 0.0,
        summary["retrieval"]["all_gold_found"],
        out_dir,
    )
    if rate > float(cfg.max_failure_rate):
        raise SteperError(
            f"{n_error} of {len(traces)} questions ({100 * rate:.1f}%) ended on a failed generation request, "
            f"more than max_failure_rate={cfg.max_failure_rate}. Everything is written to {out_dir}; check the "
            "teacher server/model and rerun: questions that ended on a failed request are retried (retry_errors=true)."
        )
    return manifest
