"""The evaluation run (method.md §6): a generator through the reasoning loop on test questions.

Two ways in:

- `evaluate_run(cfg)`, what evaluate.py calls: loads the questions (`dataset`, `split`, `limit`),
  the retriever and the `target` (steper.evaluation.targets), runs `evaluate_generator`, prints a
  table and a `CSV:` line, logs to W&B.
- `evaluate_generator(questions, retriever, generator, *, out_dir, ...)`: no Hydra; train.py calls
  it with the in-memory student wrapped as an `HFGenerator`.

Modes (the ICL baseline families): `multistep` = the full loop; `single` = one retrieval with the
question at step 1, then the reasoning goes on without retrieval; `noretrieval` = no retrieval at
all. single/noretrieval are `ModeFramework`s wrapping the framework's `query`, so the loop is one.

Written into `out_dir`:

- `predictions.jsonl`: one row per question, in question order (see `prediction_row`): qid,
  question, golds, prediction (the extracted answer or null), em/f1/acc, hops, qtype, steps,
  finish, gold_titles/gold_found/all_gold_found, retrieval_s/generation_s/seconds, the queries,
  and the whole trace (`Trace.to_dict()`).
- `metrics.json`: `metrics_from_predictions(rows)` of those rows, nothing else, so recomputing it
  from predictions.jsonl gives the file back. Percentages (0–100) for em/f1/acc, shares (0–1)
  for gold_recall/all_gold_found, seconds per question for latency.
- `run.json`: what was evaluated and how (target, config, counts of resumed/new rows, wall time,
  generator stats); `eval_key.json`: the settings the predictions depend on.

Resume: rows already in predictions.jsonl are kept (a torn last line is cut), their questions
skipped (a row that ended on a failed request is retried, `retry_errors`), the rest appended as
they finish; at the end predictions.jsonl is rewritten in question order and the metrics are
computed from all of it, so they equal an uninterrupted run's (but for `TIMING_METRICS`). A rerun
into a folder whose predictions were made with other settings is a SteperError.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from steper.errors import SteperError
from steper.evaluation.metrics import aggregate, score
from steper.reasoning.loop import Framework, Trace, get_framework, run_loop

log = logging.getLogger(__name__)

MODES = ("multistep", "single", "noretrieval")
SPLITS = ("train", "dev", "test")
PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
RUN_INFO = "run.json"
EVAL_KEY = "eval_key.json"
# metrics that measure speed, not answers: they differ between two runs of the same evaluation
TIMING_METRICS = ("latency_s", "questions_per_s")
ROW_TIMING_FIELDS = ("retrieval_s", "generation_s", "seconds")
TABLE_COLUMNS = ("qid", "question", "prediction", "golds", "em", "f1", "acc", "steps")


# --------------------------------------------------------------------------------------------------
# modes
# --------------------------------------------------------------------------------------------------


class ModeFramework(Framework):
    """A framework whose retrieval is restricted: `single` retrieves with the question at step 1
    only, `noretrieval` never. Everything else (units, stop rule, answer) is the wrapped one's."""

    def __init__(self, base: Framework, mode: str):
        if mode not in ("single", "noretrieval"):
            raise SteperError(f"ModeFramework mode must be single or noretrieval, got {mode!r}")
        self.base = base
        self.mode = mode
        self.name = base.name

    def unit(self, generation: str) -> str:
        return self.base.unit(generation)

    def query(self, question: str, units: Sequence[str]) -> str | None:
        if self.mode == "noretrieval" or units:
            return None
        return question

    def is_final(self, unit: str) -> bool:
        return self.base.is_final(unit)

    def answer(self, unit: str) -> str | None:
        return self.base.answer(unit)


def with_mode(framework: str | Framework, mode: str = "multistep") -> Framework:
    """The framework (by name or object) restricted to `mode`."""
    if mode not in MODES:
        raise SteperError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    fw = get_framework(framework) if isinstance(framework, str) else framework
    return fw if mode == "multistep" else ModeFramework(fw, mode)


# --------------------------------------------------------------------------------------------------
# rows and metrics
# --------------------------------------------------------------------------------------------------


def prediction_row(trace: Trace, mode: str = "multistep") -> dict[str, Any]:
    """One line of predictions.jsonl: the scored answer, retrieval of the gold paragraphs, timings,
    and the whole trace."""
    prediction = trace.answer if trace.answer and trace.answer.strip() else None  # "" is no answer
    s = score(prediction, trace.golds)
    secs = trace.seconds or {}
    retrieval = float(secs.get("retrieval", sum(st.retrieval_s for st in trace.steps)))
    generation = float(secs.get("generation", sum(st.generation_s for st in trace.steps)))
    return {
        "qid": trace.qid,
        "question": trace.question,
        "golds": list(trace.golds),
        "prediction": prediction,
        "em": float(s["em"]),
        "f1": float(s["f1"]),
        "acc": float(s["acc"]),
        "hops": trace.hops,
        "qtype": trace.qtype,
        "dataset": trace.dataset,
        "framework": trace.framework,
        "mode": mode,
        "steps": len(trace.steps),
        "finish": trace.finish,
        "reasoning": " ".join(trace.sentences),
        "queries": [st.query for st in trace.steps],
        "gold_titles": list(trace.gold_titles),
        "gold_found": list(trace.gold_found),
        "all_gold_found": trace.all_gold_found if trace.gold_titles else None,
        "retrieval_s": retrieval,
        "generation_s": generation,
        "seconds": retrieval + generation,
        "trace": trace.to_dict(),
    }


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def _scores(rows: Sequence[dict]) -> dict[str, Any]:
    agg = aggregate([score(r.get("prediction"), r.get("golds") or []) for r in rows])
    return {"n": len(rows), "em": _r(agg["em"]), "f1": _r(agg["f1"]), "acc": _r(agg["acc"])}


def _group_key(value: Any) -> str:
    return "unknown" if value is None or value == "" else str(value)


def _sort_key(k: str) -> tuple:
    return (0, int(k), "") if k.isdigit() else (1, 0, k)


def _by(rows: Sequence[dict], field: str) -> dict[str, dict]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(_group_key(r.get(field)), []).append(r)
    return {k: _scores(groups[k]) for k in sorted(groups, key=_sort_key)}


def metrics_from_predictions(rows: Sequence[dict]) -> dict[str, Any]:
    """The metrics of predictions.jsonl rows (the scores recomputed from prediction + golds with
    `steper.evaluation.metrics`). em/f1/acc in percent; gold_recall = found gold paragraphs / all
    gold paragraphs, all_gold_found = share of questions with every gold paragraph retrieved (both
    over the questions that have gold titles, None without any); latency_s = mean seconds per
    question (retrieval and generation shares of the batched calls)."""
    n = len(rows)
    out: dict[str, Any] = _scores(rows)
    out["by_hops"] = _by(rows, "hops")
    out["by_type"] = _by(rows, "qtype")
    with_gold = [r for r in rows if r.get("gold_titles")]
    n_titles = sum(len(set(r["gold_titles"])) for r in with_gold)
    n_found = sum(len(set(r.get("gold_found") or []) & set(r["gold_titles"])) for r in with_gold)
    out["gold_recall"] = _r(n_found / n_titles) if n_titles else None
    out["all_gold_found"] = (
        _r(sum(bool(r.get("all_gold_found")) for r in with_gold) / len(with_gold)) if with_gold else None
    )
    out["mean_steps"] = _r(sum(int(r.get("steps") or 0) for r in rows) / n) if n else None
    finish = Counter(str(r.get("finish")) for r in rows)
    out["finish"] = dict(sorted(finish.items()))
    out["failures"] = finish.get("error", 0)
    out["empty"] = finish.get("empty", 0)
    out["no_answer"] = sum(r.get("prediction") is None for r in rows)
    total = sum(float(r.get("seconds") or 0.0) for r in rows)
    out["latency_s"] = {
        "mean": _r(total / n, 6) if n else None,
        "retrieval": _r(sum(float(r.get("retrieval_s") or 0.0) for r in rows) / n, 6) if n else None,
        "generation": _r(sum(float(r.get("generation_s") or 0.0) for r in rows) / n, 6) if n else None,
    }
    out["questions_per_s"] = _r(n / total, 3) if total > 0 else None
    return out


def strip_timing_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics without the speed fields (for comparing two runs of the same evaluation)."""
    return {k: v for k, v in metrics.items() if k not in TIMING_METRICS}


def read_predictions(path: str | Path) -> dict[str, dict]:
    """qid → row of the valid lines of a predictions file (a later line of a qid wins)."""
    from steper.io import iter_jsonl

    path = Path(path)
    out: dict[str, dict] = {}
    if not path.is_file():
        return out
    skipped: list[int] = []
    for _, row in iter_jsonl(path, strict=False, skipped=skipped):
        if row.get("qid") is not None:
            out[str(row["qid"])] = row
    if skipped:
        log.warning("%s: skipped %d malformed line(s): %s", path, len(skipped), skipped[:10])
    return out


# --------------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------------


class _Progress:
    """A rich progress bar on stderr: questions done, questions/s, running accuracy."""

    def __init__(self, total: int, done: int, enabled: bool = True):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.t0 = time.perf_counter()
        self.new = 0
        self.correct = 0.0
        self.bar = Progress(
            TextColumn("[bold]evaluate"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[qps]:.2f} q/s"),
            TextColumn("acc {task.fields[acc]:.1f}%"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=not (enabled and total > done),
        )
        self.task = self.bar.add_task("evaluate", total=total, completed=done, qps=0.0, acc=0.0)

    def add(self, row: dict) -> None:
        self.new += 1
        self.correct += float(row.get("acc") or 0.0)
        dt = max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(self.task, advance=1, qps=self.new / dt, acc=100.0 * self.correct / self.new)

    def __enter__(self) -> _Progress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


def _check_key(out_dir: Path, key: dict[str, Any], has_rows: bool) -> None:
    from steper.io import write_json

    path = out_dir / EVAL_KEY
    key = json.loads(json.dumps(key, default=str))  # the form it takes on disk
    if has_rows and path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != key:
            diff = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
            raise SteperError(
                f"{out_dir} holds predictions made with different settings ({', '.join(diff)} differ). "
                "Choose another folder (out_dir=...) or delete that one to start over"
            )
    write_json(path, key)


def evaluate_generator(
    questions: Sequence[Any],
    retriever: Any,
    generator: Any,
    *,
    out_dir: str | Path,
    framework: str | Framework = "ircot",
    mode: str = "multistep",
    top_k: int = 4,
    max_steps: int = 5,
    max_passages: int = 15,
    batch_size: int = 32,
    demos: str = "",
    progress: bool = True,
    retry_errors: bool = True,
    run_key: dict[str, Any] | None = None,
    run_info: dict[str, Any] | None = None,
    row_delay_s: float = 0.0,
) -> dict[str, Any]:
    """Run `generator` through the loop on `questions`; write predictions.jsonl, metrics.json and
    run.json into `out_dir` (resuming from the predictions already there); return the metrics.

    `framework`: ircot | selfask (or a Framework); `mode`: multistep | single | noretrieval;
    `top_k` passages per retrieval, at most `max_steps` generated units and `max_passages`
    accumulated passages; `batch_size` questions in flight (one retriever and one generator call
    per step for all of them); `demos`: few-shot text before each prompt ("" for a student).
    `run_key`: extra settings the predictions depend on (dataset, target, ...): a rerun into the
    same folder with other settings is refused. `run_info` is copied into run.json.
    """
    from steper.io import JsonlAppender, write_json, write_jsonl

    t_start = time.perf_counter()
    fw = with_mode(framework, mode)
    if not questions:
        raise SteperError("no questions to evaluate")
    qids = [q.qid for q in questions]
    if len(set(qids)) != len(qids):
        dup = [q for q, c in Counter(qids).items() if c > 1][:5]
        raise SteperError(f"duplicate question ids, e.g. {dup}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pred_path = out_dir / PREDICTIONS
    key = {
        "framework": fw.name,
        "mode": mode,
        "top_k": int(top_k),
        "max_steps": int(max_steps),
        "max_passages": int(max_passages),
        "demos": hashlib.sha1(demos.encode("utf-8")).hexdigest()[:12] if demos else "",
        **(run_key or {}),
    }

    appender = JsonlAppender(pred_path)  # cuts a torn last line first
    try:
        existing = read_predictions(pred_path)
        _check_key(out_dir, key, bool(existing))
        todo = [
            q
            for q in questions
            if q.qid not in existing or (retry_errors and existing[q.qid].get("finish") == "error")
        ]
        n_done = len(questions) - len(todo)
        if n_done:
            log.info("resuming: %d of %d questions already in %s", n_done, len(questions), pred_path)
        if todo:
            if retriever is None or generator is None:
                raise SteperError(
                    "evaluate_generator needs a retriever and a generator for the questions left"
                )
            with _Progress(len(questions), n_done, enabled=progress) as bar:

                def on_trace(trace: Trace) -> None:
                    row = prediction_row(trace, mode)
                    appender.write(row)
                    bar.add(row)
                    if row_delay_s:
                        time.sleep(row_delay_s)

                run_loop(
                    todo,
                    retriever,
                    generator,
                    framework=fw,
                    top_k=int(top_k),
                    max_steps=int(max_steps),
                    max_passages=int(max_passages),
                    demos=demos,
                    batch_size=int(batch_size),
                    on_trace=on_trace,
                )
    finally:
        appender.close()

    by_qid = read_predictions(pred_path)
    missing = [q for q in qids if q not in by_qid]
    if missing:
        raise SteperError(
            f"{pred_path}: no prediction for {len(missing)} question(s), e.g. {missing[:3]}; rerun to resume"
        )
    extra = sorted(set(by_qid) - set(qids))
    if extra:
        log.warning(
            "%s: dropping %d row(s) of questions not in this evaluation, e.g. %s",
            pred_path,
            len(extra),
            extra[:3],
        )
    rows = [by_qid[q] for q in qids]
    write_jsonl(pred_path, rows)
    metrics = metrics_from_predictions(rows)
    write_json(out_dir / METRICS, metrics)
    stats = dict(getattr(generator, "stats", {}) or {}) if generator is not None else {}
    info = {
        **(run_info or {}),
        "key": key,
        "questions": len(rows),
        "resumed_rows": n_done,
        "new_rows": len(todo),
        "seconds": round(time.perf_counter() - t_start, 3),
        "generator_stats": json.loads(json.dumps(stats, default=str)),
        "files": {"predictions": PREDICTIONS, "metrics": METRICS},
    }
    write_json(out_dir / RUN_INFO, info)
    return metrics


# --------------------------------------------------------------------------------------------------
# reporting: table, CSV line, W&B
# --------------------------------------------------------------------------------------------------


def _fmt(x: Any, nd: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def print_report(metrics: dict[str, Any], title: str = "evaluation") -> None:
    """The metrics as rich tables on stdout (overall, by hops, by type)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=title)
    for col in (
        "n",
        "EM",
        "F1",
        "Acc",
        "gold recall",
        "all gold",
        "steps",
        "no answer",
        "failures",
        "s/question",
    ):
        t.add_column(col, justify="right")
    lat = metrics.get("latency_s") or {}
    t.add_row(
        str(metrics["n"]),
        _fmt(metrics["em"]),
        _fmt(metrics["f1"]),
        _fmt(metrics["acc"]),
        _fmt(metrics.get("gold_recall"), 3),
        _fmt(metrics.get("all_gold_found"), 3),
        _fmt(metrics.get("mean_steps")),
        str(metrics.get("no_answer")),
        str(metrics.get("failures")),
        _fmt(lat.get("mean"), 4),
    )
    console.print(t)
    for key, name in (("by_hops", "hops"), ("by_type", "type")):
        groups = metrics.get(key) or {}
        if not 2 <= len(groups) <= 12:  # one group repeats the overall row; many make a wall of text
            continue
        g = Table(title=f"by {name}")
        for col in (name, "n", "EM", "F1", "Acc"):
            g.add_column(col, justify="right")
        for k, v in groups.items():
            g.add_row(k, str(v["n"]), _fmt(v["em"]), _fmt(v["f1"]), _fmt(v["acc"]))
        console.print(g)


CSV_HEADER = "dataset,split,target,framework,mode,n,em,f1,acc,latency_s"


def csv_line(
    metrics: dict[str, Any], *, dataset: str, split: str, target: str, framework: str, mode: str
) -> str:
    """`CSV: <values>` (header `CSV_HEADER`) for aggregating many runs with `grep '^CSV:'`."""

    def clean(s: Any) -> str:
        return str(s).replace(",", "_").replace("\n", " ")

    lat = (metrics.get("latency_s") or {}).get("mean")
    values = [
        clean(dataset),
        clean(split),
        clean(target),
        clean(framework),
        clean(mode),
        str(metrics["n"]),
        f"{metrics['em']:.2f}",
        f"{metrics['f1']:.2f}",
        f"{metrics['acc']:.2f}",
        f"{lat:.4f}" if isinstance(lat, float) else "",
    ]
    return "CSV: " + ",".join(values)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, name + "/"))
        elif v is not None and not (isinstance(v, float) and not math.isfinite(v)):
            out[name] = v
    return out


def log_to_wandb(
    cfg: Any, metrics: dict[str, Any], rows: Sequence[dict], *, name: str, tags: Sequence[str] = ()
) -> None:
    """One W&B run for this evaluation: the config, the metrics as summary (`eval/…`) and a table
    of the predictions. A no-op unless the `logger` section has a `wandb` entry (`logger=none`).
    Offline automatically when no API key is configured; the run is always finished."""
    node = cfg.get("logger") if cfg is not None else None
    wb = node.get("wandb") if node else None
    if not wb:
        return
    import wandb

    from steper.distill import wandb_utils

    wb = dict(_plain(wb))
    offline = wandb_utils.resolve_offline(wb.get("offline", "auto"))
    config = wandb_utils.scrub(_plain(cfg))
    extra_tags = [str(t) for t in (wb.get("tags") or [])] + [str(t) for t in (cfg.get("tags") or [])]
    out_dir = Path(str(cfg.out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = True
    try:
        run = wandb.init(
            project=wb.get("project") or "steper",
            entity=wb.get("entity"),
            name=wb.get("name") or name,
            group=wb.get("group") or wandb_utils.default_group(),
            tags=list(dict.fromkeys([*tags, *extra_tags])),
            job_type="evaluate",
            dir=str(out_dir),
            mode="offline" if offline else "online",
            config=config,
        )
        # by_type can have hundreds of groups (it stays in metrics.json)
        flat = {
            f"eval/{k}": v for k, v in _flatten({k: v for k, v in metrics.items() if k != "by_type"}).items()
        }
        run.summary.update(flat)
        table = wandb.Table(columns=list(TABLE_COLUMNS))
        for r in rows:
            table.add_data(
                r["qid"], r["question"], r.get("prediction"), " | ".join(r.get("golds") or []),
                r["em"], r["f1"], r["acc"], r.get("steps"),
            )  # fmt: skip
        run.log({**flat, "eval/predictions": table})
        if offline:
            hint = wandb_utils.offline_hint(run)
            if hint:
                log.info(hint)
        failed = False
    finally:
        wandb_utils.finish(exit_code=1 if failed else 0)


# --------------------------------------------------------------------------------------------------
# evaluate.py
# --------------------------------------------------------------------------------------------------


def check_config(cfg: Any) -> Any:
    """Validate the sections and top-level options evaluate.py uses (SteperError on a bad one)."""
    from omegaconf import OmegaConf

    from steper.config import GeneratorConfig, validate_section
    from steper.evaluation.targets import TARGETS
    from steper.generate import FrameworkConfig

    fw = validate_section("framework", cfg.framework, FrameworkConfig)
    target = validate_section("target", cfg.target, GeneratorConfig)
    flag = OmegaConf.is_struct(cfg)
    OmegaConf.set_struct(cfg, False)
    try:
        cfg.framework = fw
        cfg.target = target
    finally:
        OmegaConf.set_struct(cfg, flag)
    if cfg.framework.name not in ("ircot", "selfask"):
        raise SteperError(f"framework.name must be ircot or selfask, got {cfg.framework.name!r}")
    if cfg.target.name not in TARGETS:
        raise SteperError(f"unknown target {cfg.target.name!r}: use target={' | target='.join(TARGETS)}")
    if cfg.split not in SPLITS:
        raise SteperError(f"split must be one of {', '.join(SPLITS)}, got {cfg.split!r}")
    if cfg.mode not in MODES:
        raise SteperError(f"mode must be one of {', '.join(MODES)}, got {cfg.mode!r}")
    if int(cfg.batch_size) < 1:
        raise SteperError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if cfg.limit is not None and int(cfg.limit) < 1:
        raise SteperError(f"limit must be null or >= 1, got {cfg.limit}")
    if cfg.get("n_demos") is not None and int(cfg.n_demos) < 0:
        raise SteperError(f"n_demos must be null or >= 0, got {cfg.n_demos}")
    if cfg.framework.max_steps < 1 or cfg.framework.max_passages < 1:
        raise SteperError("framework.max_steps and framework.max_passages must be >= 1")
    return cfg


def _plain(node: Any) -> Any:
    """A config node as plain containers, interpolations resolved where they can be."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not OmegaConf.is_config(node):
        return node
    try:
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException:  # e.g. ${hydra:...} outside a Hydra job
        return OmegaConf.to_container(node, resolve=False, throw_on_missing=False)


def evaluate_run(cfg: Any) -> dict[str, Any]:
    """evaluate.py's body: evaluate `cfg.target` on `cfg.split` of `cfg.dataset` into `cfg.out_dir`."""
    from steper.data import load_questions
    from steper.distill.wandb_utils import scrub
    from steper.evaluation.targets import build_target, target_key
    from steper.generate import versions
    from steper.reasoning.demos import load_demos
    from steper.retrieval import load_retriever, retriever_params

    check_config(cfg)
    out_dir = Path(str(cfg.out_dir))
    questions = load_questions(cfg.dataset, cfg.split)
    if cfg.limit is not None:
        questions = questions[: int(cfg.limit)]
    if not questions:
        raise SteperError(f"no {cfg.split} questions in dataset {cfg.dataset.name!r}")

    fw = cfg.framework
    # the target first: a wrong path fails before a long first-time index build
    target = build_target(cfg.target, batch_size=int(cfg.batch_size))
    generator = target.generator
    try:
        retriever = load_retriever(cfg.dataset, cfg.retriever, cfg.paths.cache_dir)  # built on first use
        if fw.name == "selfask" and cfg.target.name == "oracle":
            from steper.reasoning.selfask import SelfAskOracle

            generator = SelfAskOracle(generator)
        n_demos = cfg.get("n_demos")
        n_demos = int(fw.n_demos if target.demos else 0) if n_demos is None else int(n_demos)
        pool = (
            load_questions(cfg.dataset, "train") if n_demos and cfg.dataset.get("format") == "toy" else None
        )
        demos = load_demos(cfg.dataset.name, fw.name, n=n_demos, questions=pool)
        run_key = {
            "dataset": _plain(cfg.dataset),
            "split": cfg.split,
            "retriever": retriever_params(cfg.retriever),
            "target": target_key(cfg.target),
        }
        run_info = {
            "task": "evaluate",
            "target": {"label": target.label, **target.info},
            "dataset": cfg.dataset.name,
            "split": cfg.split,
            "framework": fw.name,
            "mode": cfg.mode,
            "n_demos": n_demos,
            "config": scrub(_plain(cfg)),
            "versions": versions(),
        }
        metrics = evaluate_generator(
            questions,
            retriever,
            generator,
            out_dir=out_dir,
            framework=fw.name,
            mode=cfg.mode,
            top_k=int(cfg.retriever.top_k),
            max_steps=int(fw.max_steps),
            max_passages=int(fw.max_passages),
            batch_size=int(cfg.batch_size),
            demos=demos,
            progress=bool(cfg.get("progress", True)),
            retry_errors=bool(cfg.get("retry_errors", True)),
            run_key=run_key,
            run_info=run_info,
            row_delay_s=float(cfg.get("row_delay_s") or 0.0),
        )
    finally:
        generator.close()

    title = f"{cfg.dataset.name} {cfg.split} · {target.label} · {fw.name}/{cfg.mode}"
    print_report(metrics, title=title)
    print(
        csv_line(
            metrics,
            dataset=cfg.dataset.name,
            split=cfg.split,
            target=target.label,
            framework=fw.name,
            mode=cfg.mode,
        ),
        flush=True,
    )
    print(f"predictions and metrics: {out_dir}", flush=True)
    from steper.io import iter_jsonl

    rows = [row for _, row in iter_jsonl(out_dir / PREDICTIONS)]
    log_to_wandb(
        cfg,
        metrics,
        rows,
        name=f"eval-{cfg.dataset.name}-{target.label}-{cfg.mode}",
        tags=[
            f"dataset:{cfg.dataset.name}",
            f"target:{cfg.target.name}",
            f"mode:{cfg.mode}",
            f"framework:{fw.name}",
        ],
    )
    return metrics
