"""Teacher traces → step-wise training examples, and the reader of their files (docs/method.md §1, §4).

From every trace whose extracted answer is correct (`filter="em"`: normalized exact match with any
gold alias; `"acc"`: a gold is contained in the prediction), with r_1 … r_S its sentences and P_s
the passages accumulated up to step s (as recorded in the trace):

| task    | passages            | prefix              | target              |
|---------|---------------------|---------------------|---------------------|
| first   | P_1                 | ""                  | r_1                 |
| mid (s) | P_s, 1<s<S          | r_1 … r_{s-1}       | r_s                 |
| final   | P_S                 | r_1 … r_{S-1}       | r_S ("So the answer is: a.") |
| vanilla | P_S                 | ""                  | r_1 … r_S           |

(sentences joined by one space). A trace answered at step 1 gives a final example only (and its
vanilla one). The student gets no demonstrations (`demos` is "").

Each example is structured, never rendered text (`STEPWISE_FIELDS`, the contract with the training
DataModule, which renders `build_prompt(question, passages, demos)` once, in one place):
`{"qid": str, "task": first|mid|final|vanilla, "step": int, "question": str,
"passages": [{"title": str, "text": str}, …], "demos": str, "prefix": str, "target": str}`.
`read_rows` reads a file of them back, checked.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from steper.constants import FILTERS, TASKS
from steper.errors import SteperError
from steper.io import iter_jsonl
from steper.reasoning.loop import Trace

# the fields of a step-wise row, in file order (generate_data.py writes them; the DataModule reads them)
STEPWISE_FIELDS = ("qid", "task", "step", "question", "passages", "demos", "prefix", "target")
HOW_TO_MAKE = (
    "make it with `python generate_data.py dataset=<name>` (writes train.jsonl and validation.jsonl)"
)
DROP_REASONS = ("wrong_answer", "no_answer", "error", "empty")


def _as_trace(t: Trace | dict) -> Trace:
    return t if isinstance(t, Trace) else Trace.from_dict(t)


def trace_score(trace: Trace) -> dict[str, float]:
    """EM/F1/Acc of the trace's answer against its golds (0 when it has no answer)."""
    from steper.evaluation.metrics import score

    if trace.answer is None:
        return {"em": 0.0, "f1": 0.0, "acc": 0.0}
    return {k: float(v) for k, v in score(trace.answer, trace.golds).items()}


def drop_reason(trace: Trace, filter: str = "em") -> str | None:
    """Why a trace gives no training data (None = keep it): error | empty | no_answer | wrong_answer."""
    if filter not in FILTERS:
        raise SteperError(f"unknown filter {filter!r}: use one of {', '.join(FILTERS)}")
    if trace.finish == "error":
        return "error"
    if trace.finish == "empty":
        return "empty"
    if trace.finish != "answer" or trace.answer is None:
        return "no_answer"
    return None if trace_score(trace)[filter] > 0 else "wrong_answer"


def is_correct(trace: Trace | dict, filter: str = "em") -> bool:
    return drop_reason(_as_trace(trace), filter) is None


def trace_examples(trace: Trace | dict) -> list[dict[str, Any]]:
    """The step-wise examples of one (kept) trace, in order: first, mid…, final, vanilla."""
    t = _as_trace(trace)
    steps = [s for s in t.steps if s.sentence]
    if not steps:
        return []
    sentences = [s.sentence for s in steps]
    n = len(steps)

    def example(task: str, step: int, pids: Sequence[str], prefix: str, target: str) -> dict[str, Any]:
        missing = [p for p in pids if p not in t.passages]
        if missing:
            raise SteperError(f"trace {t.qid}: step {step} names passages it does not store: {missing[:3]}")
        passages = [{"title": p.title, "text": p.text} for p in t.paragraphs(pids)]
        values = (t.qid, task, step, t.question, passages, "", prefix, target)
        return dict(zip(STEPWISE_FIELDS, values))

    out = []
    for i, st in enumerate(steps):
        if i == n - 1:
            task = "final"
        elif i == 0:
            task = "first"
        else:
            task = "mid"
        out.append(example(task, st.step, st.accumulated, " ".join(sentences[:i]), sentences[i]))
    out.append(example("vanilla", steps[-1].step, steps[-1].accumulated, "", " ".join(sentences)))
    return out


def build_stepwise(
    traces: Iterable[Trace | dict], filter: str = "em"
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Examples of every correct trace (in trace order) and the filter statistics."""
    examples: list[dict[str, Any]] = []
    kept = 0
    dropped: Counter[str] = Counter()
    for raw in traces:
        t = _as_trace(raw)
        reason = drop_reason(t, filter)
        if reason is not None:
            dropped[reason] += 1
            continue
        kept += 1
        examples.extend(trace_examples(t))
    stats = {
        "filter": filter,
        "kept": kept,
        "dropped": {r: dropped.get(r, 0) for r in DROP_REASONS},
    }
    return examples, stats


def _unit(qid: str, seed: int) -> float:
    h = hashlib.sha256(f"{seed}\x00{qid}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def split_by_question(
    examples: Sequence[dict[str, Any]], val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split into (train, validation) by question: a question's examples all go one way.

    A question goes to validation when a hash of (seed, qid) falls below `val_fraction`: the split
    depends on the set of questions, never on their order. If that leaves validation empty while
    `val_fraction > 0` and there are at least two questions, the question with the smallest hash
    goes there, so validation is never silently empty.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise SteperError(f"val_fraction must be in [0, 1), got {val_fraction}")
    qids = list(dict.fromkeys(e["qid"] for e in examples))
    val = {q for q in qids if _unit(q, seed) < val_fraction}
    if val_fraction > 0 and not val and len(qids) >= 2:
        val = {min(qids, key=lambda q: _unit(q, seed))}
    train = [e for e in examples if e["qid"] not in val]
    validation = [e for e in examples if e["qid"] in val]
    return train, validation


def task_counts(examples: Iterable[dict[str, Any]]) -> dict[str, int]:
    c = Counter(e["task"] for e in examples)
    return {t: c.get(t, 0) for t in TASKS}


# --------------------------------------------------------------------------- reading rows back

OLD_LAYOUT = "written by an older steper: rerun generate_data.py into a new out_dir"


def _string(row: dict, key: str, where: str, default: str | None = None) -> str:
    value = row.get(key, default)
    if not isinstance(value, str):
        raise SteperError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def _passages(row: dict, where: str) -> list[dict[str, str]]:
    raw = row["passages"]
    expected = 'a list of {"title": str, "text": str}'
    if not isinstance(raw, list):
        raise SteperError(f"{where}: field 'passages' must be {expected}, got {type(raw).__name__}")
    out = []
    for i, p in enumerate(raw):
        if not (isinstance(p, dict) and isinstance(p.get("title"), str) and isinstance(p.get("text"), str)):
            raise SteperError(f"{where}: passages[{i}] must be {{'title': str, 'text': str}}, got {p!r:.80}")
        out.append({"title": p["title"], "text": p["text"]})
    return out


def check_row(row: dict, where: str) -> dict[str, Any]:
    """One step-wise row, checked and normalised (`where` names file:line in every error)."""
    if "prompt" in row and "question" not in row:
        raise SteperError(
            f"{where}: a step-wise row with a rendered 'prompt' and no 'question', {OLD_LAYOUT}"
        )
    for key in ("qid", "task", "question", "passages", "target"):
        if key not in row:
            raise SteperError(f"{where}: missing field {key!r} (expected {', '.join(STEPWISE_FIELDS)})")
    if row["task"] not in TASKS:
        raise SteperError(f"{where}: unknown task {row['task']!r}; expected one of {', '.join(TASKS)}")
    step = row.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise SteperError(f"{where}: field 'step' must be an integer, got {step!r}")
    target = _string(row, "target", where)
    if not target.strip():
        raise SteperError(f"{where}: empty target")
    values = (
        str(row["qid"]),
        row["task"],
        step,
        _string(row, "question", where),
        _passages(row, where),
        _string(row, "demos", where, ""),
        _string(row, "prefix", where, ""),
        target,
    )
    return dict(zip(STEPWISE_FIELDS, values))


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of one step-wise JSONL file, checked; errors name file and line."""
    if not path.is_file():
        raise SteperError(f"step-wise data file {path} not found: {HOW_TO_MAKE}")
    try:
        lines = list(iter_jsonl(path))
    except SteperError as e:
        # a torn or edited file: the step-wise files are outputs of generate_data.py, which writes them again
        raise SteperError(f"{e}: the file is damaged; {HOW_TO_MAKE} into a new out_dir") from None
    rows = [check_row(row, f"{path}:{lineno}") for lineno, row in lines]
    if not rows:
        raise SteperError(f"step-wise data file {path} is empty: {HOW_TO_MAKE}")
    return rows


def stepwise_features():
    """The `datasets.Features` of a step-wise row (`STEPWISE_FIELDS`; passages a list of {title, text})."""
    from datasets import Features, Value

    text = Value("string")
    kinds = {"step": Value("int64"), "passages": [{"title": text, "text": text}]}
    return Features({k: kinds.get(k, text) for k in STEPWISE_FIELDS})


def stepwise_dataset(rows: Sequence[dict[str, Any]]):
    """Step-wise rows as a `datasets.Dataset` (the HF view of the data); an empty split keeps its columns."""
    from datasets import Dataset

    columns = {k: [r[k] for r in rows] for k in STEPWISE_FIELDS}
    return Dataset.from_dict(columns, features=stepwise_features())
