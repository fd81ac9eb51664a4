"""`RunRecord`: one run as the tables see it (whatever it was read from), and its labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STUDENT_METHODS = ("steper", "vanilla")
STUDENT_TARGETS = ("student", "checkpoint")  # evaluate.py targets that are trained students
BASELINE_TARGETS = ("hf", "openai", "oracle")
BASELINE_STEMS = {"hf": "ICL", "openai": "ICL", "oracle": "Oracle"}


@dataclass
class RunRecord:
    """One finished (or failed) run, whatever it came from.

    `status`: `ok` (has answer metrics), `no-test-metrics` (finished but without answer metrics,
    e.g. a train run whose evaluation did not run; its history still plots), or `failed` (the job
    failed, was killed or is still running). `metrics` holds `em`, `f1`, `acc` in percent when known.
    `role`: `student` (train runs, and evaluate runs of a trained student) or `baseline` (evaluate
    runs of a teacher / an endpoint / in-context learning). `extra` holds the card's other numbers,
    among them what a student trained on when its card says: `optimizer_steps`, `examples_seen`,
    `target_tokens` (ints).
    """

    path: str
    kind: str  # train | evaluate
    dataset: str | None = None
    model: str | None = None
    method: str | None = None
    weighting: str | None = None
    seed: int | str | None = None
    mode: str | None = None
    target: str | None = None  # evaluate runs: the target backend (student, checkpoint, hf, openai, oracle)
    baseline: str | None = None  # baselines: the row label's stem (Teacher, ICL, Oracle, a target.label)
    teacher: bool = False  # a baseline that is the distillation teacher (scaling table and plot)
    status: str = "ok"
    metrics: dict[str, float] = field(default_factory=dict)
    latency_s: float | None = None  # mean seconds per question
    latency: dict[str, float] = field(default_factory=dict)  # mean / retrieval / generation
    extra: dict[str, Any] = field(default_factory=dict)  # n, gold_recall, mean_steps, failures, …
    history: dict[str, list[float | None]] = field(default_factory=dict)
    history_path: str | None = None
    predictions: Path | None = None
    # per-question scores of the predictions file, metric -> qid -> score (0/1, F1 in [0, 1]): the
    # unit of the bootstrap CIs and the paired tests (steper.report.paired)
    scores: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)
    overrides: dict[str, str] = field(default_factory=dict)  # the card's overrides, key -> value
    config: dict[str, Any] = field(default_factory=dict, repr=False)  # the card's resolved config
    variant: str = ""  # the swept settings that tell this run apart from same-cell runs
    source: str = "folder"  # folder | wandb
    order: int = 0  # collection order (ties in "which is later")
    mtime: float = 0.0  # when the job finished ("the later one wins")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def role(self) -> str:
        if self.kind == "train" or self.target in STUDENT_TARGETS:
            return "student"
        if self.teacher or self.baseline or self.target in BASELINE_TARGETS:
            return "baseline"
        return "student" if self.method in STUDENT_METHODS else "baseline"

    @property
    def label(self) -> str:
        """The row label of its table line: `StepER (adaptive)`, `Vanilla-KD`, `Teacher (multistep)`;
        a student evaluated in another mode gets ` [single]`, a sweep variant ` [model.lr=1e-05]`."""
        if self.role == "student":
            return method_label(self.method, self.weighting) + self.suffix
        stem = "Teacher" if self.teacher else (self.baseline or "Baseline")
        return (f"{stem} ({self.mode})" if self.mode else stem) + (
            f" [{self.variant}]" if self.variant else ""
        )

    @property
    def suffix(self) -> str:
        """What a student's label adds after the method: the evaluation mode, the variant."""
        out = ""
        if self.kind == "evaluate" and self.mode and self.mode != "multistep":
            out += f" [{self.mode}]"
        if self.variant:
            out += f" [{self.variant}]"
        return out

    def describe(self) -> str:
        """A short one-line description: label, model, dataset, seed."""
        bits = [self.label, self.model or "?", self.dataset or "?"]
        if self.seed is not None:
            bits.append(f"seed {self.seed}")
        return " · ".join(bits)


def method_label(method: str | None, weighting: str | None) -> str:
    if method == "vanilla":
        return "Vanilla-KD"
    if method == "steper":
        return f"StepER ({weighting})" if weighting else "StepER"
    return method or "?"


def display_path(path: Path | str) -> str:
    """`path` relative to the working directory when it lies under it, else absolute."""
    p = Path(path).absolute()
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def where(r: RunRecord) -> str:
    """Where a record came from, for messages: its folder, or `<export.csv>#<run name>`."""
    return display_path(r.path) if r.source == "folder" else r.path


def mark_teachers(runs: list[RunRecord], names: list[str]) -> int:
    """Mark the baselines whose model (or its last path part) or label is one of `names` as the
    teacher; returns how many were marked."""
    wanted = {n.strip().lower() for n in names if n.strip()}
    marked = 0
    for r in runs:
        if r.role != "baseline" or not wanted:
            continue
        model = (r.model or "").lower()
        if {model, model.rsplit("/", 1)[-1], (r.baseline or "").lower()} & wanted:
            r.teacher, r.baseline = True, "Teacher"
            marked += 1
    return marked
