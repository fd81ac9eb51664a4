"""The run card: one `run.json` per job folder saying who ran what, on which data, with which
model, where its outputs are, and what it measured — the one file `python -m steper.report` reads.

Every job writes it: `generate_data` (in its out_dir), `train` (its run folder) and `evaluate` (its
out_dir). It is written when the job starts (`status: running`) and rewritten when it ends
(`done` or `failed`), always whole (temp file, then rename).

Answer metrics have one schema wherever they appear (a card's `metrics`, an evaluation's
`metrics.json`): `em`, `f1`, `acc` in percent, `n` questions, `latency_s` mean seconds per question,
and optional breakdowns (`by_hops`, `by_type`, ...). W&B gets the same numbers under `test/<name>`;
only the W&B CSV reader (steper.report) maps those names back.

What each job puts in its card (keys beyond these may appear; readers ignore what they do not use):

| field    | generate_data                         | train                                                | evaluate                                   |
|----------|---------------------------------------|------------------------------------------------------|--------------------------------------------|
| choices  | dataset, teacher, framework, retriever| dataset, model, method, weighting, peft, teacher, framework, retriever, trainer | dataset, target, framework, retriever |
| data     | dataset, split, questions, counts, filter | dataset, stepwise_dir, counts, eval_split        | dataset, split, questions, framework, mode, n_demos |
| model    | teacher: name + what was loaded       | name, name_or_path, method, weighting, peft, seed    | label, target, + what was loaded; a student adds model, method, weighting, seed (from its export) |
| where    | traces, train, validation, hf_dataset | metrics, history (csv/metrics.csv), checkpoints, student, predictions (eval/) | metrics, predictions |
| metrics  | teacher em/f1/acc/n                   | the end-of-training answer metrics + `training` {val/loss_mean, train/loss, global_step, weights, ...} | answer metrics |

The keys `python -m steper.report` reads (steper/report/cards.py; a missing one is a gap, never a
guess from other files):

- every card: `job`, `status`, `error`, `started`, `finished`, `overrides` (sweep variants),
  `config` (the value of a swept key in a run that did not override it), `metrics` (the schema above);
- train: `data.dataset`, `data.mode` (the end-of-training evaluation's mode), `model.name`,
  `model.method`, `model.weighting`, `model.seed`, `where.history`, `where.predictions`;
- evaluate: `data.dataset`, `data.mode`, `model.target` (student | checkpoint | hf | openai |
  oracle), `model.label` (target.label as given, null when not: the table then says ICL / Oracle),
  `model.name` (the model in tables: a student's base model name, else the HF id, local folder or
  served model name), a student's `model.method`, `model.weighting`, `model.seed`, and
  `where.predictions`.
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from steper.errors import SteperError
from steper.io import read_json, write_json
from steper.secrets import scrub

CARD_FILE = "run.json"
CARD_VERSION = 1
JOBS = ("generate_data", "train", "evaluate")
STATUSES = ("running", "done", "failed")


@dataclass
class RunCard:
    """What one job folder holds. Paths in `where` are relative to the folder of the card."""

    job: str  # generate_data | train | evaluate
    status: str = "running"  # running | done | failed
    # the Hydra group choices that name the run: dataset, model, method, weighting, teacher,
    # framework, target, retriever, ... (as on the command line)
    choices: dict[str, str] = field(default_factory=dict)
    # the command-line overrides of this job (Hydra's task overrides), `key=value` strings
    overrides: list[str] = field(default_factory=list)
    # the resolved config, secrets masked
    config: dict[str, Any] = field(default_factory=dict)
    # dataset name and split, number of questions; train: the step-wise data folder and its task counts
    data: dict[str, Any] = field(default_factory=dict)
    # what answered: label, name_or_path, method, weighting, peft (train); the target (evaluate); the teacher
    model: dict[str, Any] = field(default_factory=dict)
    # outputs, relative to the card's folder: metrics, predictions, history, checkpoints, student, ...
    where: dict[str, str] = field(default_factory=dict)
    # answer metrics (one schema, see above); train adds `training` scalars (val/loss_mean, ...)
    metrics: dict[str, Any] = field(default_factory=dict)
    # user, host, git commit, package versions
    who: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    error: str | None = None
    card: int = CARD_VERSION

    def to_dict(self) -> dict[str, Any]:
        return scrub(asdict(self))


def package_versions() -> dict[str, str | None]:
    """Versions of the packages a result depends on (None when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("steper", "torch", "transformers", "lightning", "peft", "bm25s", "vllm"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def who() -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = os.environ.get("USER")
    return {"user": user, "host": socket.gethostname(), "git": _git_commit(), "versions": package_versions()}


def write_card(folder: str | os.PathLike, card: RunCard) -> Path:
    """Write `card` to `<folder>/run.json` whole (temp file, then rename)."""
    path = Path(folder) / CARD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, card.to_dict())
    return path


def finish_card(folder: str | os.PathLike, card: RunCard, *, error: str | None = None) -> Path:
    """Mark `card` done (or failed with `error`) and write it."""
    card.status = "failed" if error else "done"
    card.error = error
    card.finished = time.time()
    return write_card(folder, card)


def read_card(folder: str | os.PathLike) -> RunCard:
    """The card of a job folder; a SteperError naming the file and what is wrong otherwise."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise SteperError(f"{path}: no run card (run.json); the folder is not a steper job's output")
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise SteperError(f"{path}: a run card must be a JSON object")
    if raw.get("card") != CARD_VERSION:
        raise SteperError(
            f"{path}: run card version {raw.get('card')!r}, this steper reads version {CARD_VERSION}: "
            "rerun the job (or evaluate its student again) with this version"
        )
    known = {f.name for f in fields(RunCard)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SteperError(f"{path}: unknown run card fields {unknown}; valid: {sorted(known)}")
    _check_kinds(path, raw)
    card = RunCard(**raw)
    if card.job not in JOBS:
        raise SteperError(f"{path}: job {card.job!r} is not one of {', '.join(JOBS)}")
    if card.status not in STATUSES:
        raise SteperError(f"{path}: status {card.status!r} is not one of {', '.join(STATUSES)}")
    return card


# what each card field must hold (None allowed only where the default is None)
_KINDS: dict[str, tuple[type, ...]] = {
    "job": (str,),
    "status": (str,),
    "choices": (dict,),
    "overrides": (list,),
    "config": (dict,),
    "data": (dict,),
    "model": (dict,),
    "where": (dict,),
    "metrics": (dict,),
    "who": (dict,),
    "started": (int, float),
    "finished": (int, float, type(None)),
    "error": (str, type(None)),
}


def _check_kinds(path: Path, raw: dict[str, Any]) -> None:
    """A card field of the wrong kind (`"metrics": "x"`, no `job`) is a SteperError naming it."""
    if "job" not in raw:
        raise SteperError(f"{path}: the run card has no `job` field (one of {', '.join(JOBS)})")
    for name, kinds in _KINDS.items():
        value = raw.get(name)
        if name in raw and (isinstance(value, bool) or not isinstance(value, kinds)):
            want = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise SteperError(f"{path}: run card field `{name}` is {type(value).__name__}, expected {want}")
