"""Finished runs → `RunRecord`s: walk run folders, multirun folders and W&B CSV exports.

A run folder is any folder with `.hydra/config.yaml` (Hydra's composed config). What is read:

- the config: `task_name` (train | evaluate), `dataset.name`, `model.name` (else `target.name`,
  else a plain `model` string), `method.name`, `weighting.name`, `seed`, and for evaluate runs
  `mode` and `target.kind` / `target.name`;
- train runs: `metrics.json` (`test/em|f1|acc`, percent), the fuller `eval/metrics.json` when it
  is there (latency too), `eval/predictions.jsonl`, and the first `metrics.csv` found anywhere
  under the folder (Lightning's CSVLogger history: sparse rows, read into columns);
- evaluate runs: `metrics.json` (`em|f1|acc`, percent, `latency_s`, `questions_per_s`, …) and
  `predictions.jsonl`.

A multirun folder (Hydra's sweep dir, with `multirun.yaml`) holds numbered job folders; every job
folder is a run folder. A job without `metrics.json` (failed, killed, still running) becomes a
record with status `failed` and a line in `problems`, so its table cell shows a gap instead of
vanishing; a numbered job folder missing from the sequence, or fewer jobs than the sweep's
parameters imply, is a problem too. Nothing is silently dropped.

A `.csv` file argument is read as a W&B runs-table export (one row per run; columns such as
`Name`, `State`, `dataset`, `model`, `method`, `weighting`, `seed`, `test/acc`, `test/em`,
`test/f1`; dotted or slashed config names like `dataset.name` are accepted too).
"""

from __future__ import annotations

import ast
import csv
import itertools
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steper.errors import SteperError

METRIC_NAMES = ("em", "f1", "acc")
STUDENT_METHODS = ("steper", "vanilla")
STUDENT_TARGETS = ("student", "checkpoint")  # evaluate.py targets that are trained students
BASELINE_TARGETS = ("hf", "openai", "oracle")
BASELINE_STEMS = {"hf": "ICL", "openai": "ICL", "oracle": "Oracle"}
# config keys that, when a W&B export names them, say where a value lives
_WANDB_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("Name", "name", "run", "Run"),
    "state": ("State", "state"),
    "task_name": ("task_name", "task"),
    "dataset": ("dataset", "dataset.name", "dataset/name", "config.dataset.name", "data"),
    "model": ("model", "model.name", "model/name", "config.model.name"),
    "method": ("method", "method.name", "method/name", "config.method.name"),
    "weighting": ("weighting", "weighting.name", "weighting/name", "config.weighting.name"),
    "seed": ("seed", "config.seed"),
    "mode": ("mode", "eval.mode", "eval/mode"),
    "target_kind": ("target.kind", "target/kind", "target_kind"),
    "target_name": ("target.name", "target/name", "target_name"),
    "target_label": ("target.label", "target/label", "target_label", "label"),
    "target_model": (
        "target.model",
        "target/model",
        "target.model_name_or_path",
        "target/model_name_or_path",
    ),
    "latency": ("latency_s.mean", "latency_s/mean", "test/latency_s", "latency_s", "test/latency_s.mean"),
    "qps": ("questions_per_s", "test/questions_per_s"),
}


@dataclass
class RunRecord:
    """One finished (or failed) run, whatever it came from.

    `status`: `ok` (has answer metrics), `no-test-metrics` (finished but without answer metrics,
    e.g. a train run whose evaluation did not run; its history still plots), or `failed` (no
    metrics file at all). `metrics` holds `em`, `f1`, `acc` in percent when known.
    `role`: `student` (train runs, and evaluate runs of a trained student) or `baseline` (evaluate
    runs of a teacher / an endpoint / in-context learning).
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
    overrides: dict[str, str] = field(default_factory=dict)  # .hydra/overrides.yaml, key -> value
    config: dict[str, Any] = field(default_factory=dict, repr=False)  # the composed Hydra config
    variant: str = ""  # the swept settings that tell this run apart from same-cell runs
    source: str = "folder"  # folder | wandb
    order: int = 0  # collection order (ties in "which is later")
    mtime: float = 0.0  # when its metrics were written ("the later one wins")

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


# ----------------------------------------------------------------------------------------- utils


def display_path(path: Path | str) -> str:
    """`path` relative to the working directory when it lies under it, else absolute."""
    p = Path(path).absolute()
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _get(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _name(value: Any) -> str | None:
    """A config group's name: `x.name` of a mapping, or the value itself when it is a scalar."""
    if isinstance(value, dict):
        value = value.get("name")
    if value is None or isinstance(value, dict | list):
        return None
    s = str(value).strip()
    return s or None


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _seed(value: Any) -> int | str | None:
    if value is None or value == "":
        return None
    f = _float(value)
    if f is not None and f == int(f):
        return int(f)
    return str(value)


def read_config(run_dir: Path) -> dict[str, Any]:
    import yaml

    path = run_dir / ".hydra" / "config.yaml"
    try:
        with open(path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise SteperError(f"{display_path(path)}: cannot read the Hydra config ({e})") from None
    return cfg if isinstance(cfg, dict) else {}


def read_history(path: Path) -> dict[str, list[float | None]]:
    """A CSVLogger `metrics.csv` as columns; empty cells (metric not logged on that row) are None."""
    cols: dict[str, list[float | None]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        names = list(reader.fieldnames or [])
        for name in names:
            cols[name] = []
        for row in reader:
            for name in names:
                cols[name].append(_float(row.get(name)))
    return cols


def _find_metrics_csv(run_dir: Path) -> Path | None:
    for root, dirs, files in os.walk(run_dir):
        dirs.sort()
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("checkpoints", "student", "wandb")]
        if "metrics.csv" in files:
            return Path(root) / "metrics.csv"
    return None


def _answer_metrics(d: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out = {}
    for m in METRIC_NAMES:
        v = _float(d.get(prefix + m))
        if v is not None:
            out[m] = v
    return out


def _apply_eval_metrics(rec: RunRecord, m: dict[str, Any]) -> None:
    """Latency and the other evaluation numbers of an evaluate-format metrics dict."""
    lat = m.get("latency_s")
    if isinstance(lat, dict):
        rec.latency = {k: v for k, v in ((k, _float(v)) for k, v in lat.items()) if v is not None}
        rec.latency_s = rec.latency.get("mean")
    elif _float(lat) is not None:
        rec.latency_s = _float(lat)
    if rec.latency_s is None:
        qps = _float(m.get("questions_per_s"))
        if qps:
            rec.latency_s = 1.0 / qps
    for k in ("n", "gold_recall", "mean_steps", "failures", "no_answer", "questions_per_s"):
        if k in m and _float(m[k]) is not None:
            rec.extra[k] = _float(m[k])
    for k in ("by_hops", "by_type"):
        if isinstance(m.get(k), dict):
            rec.extra[k] = m[k]


def _read_json_quiet(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def _short_model(ref: Any) -> str | None:
    """A model reference as a table label: an HF id as it is, a local folder by its last part."""
    s = _name(ref)
    if s is None:
        return None
    s = s.rstrip("/")
    return Path(s).name if s.startswith(("/", "./", "../", "~")) else s


def _train_config(path: Path | None) -> dict[str, Any]:
    if path is None or not (path / ".hydra" / "config.yaml").is_file():
        return {}
    try:
        return read_config(path)
    except SteperError:
        return {}


def _evaluate_identity(rec: RunRecord, run_dir: Path, cfg: dict[str, Any]) -> None:
    """Who an evaluate run evaluated: a trained student (its model, method, weighting and seed, from
    the export's steper_export.json or its train run's config) or a baseline (teacher, ICL, oracle).

    evaluate.py's `target.name` is the backend (student | checkpoint | hf | openai | oracle) and
    `target.label` an optional label; a `target.kind: teacher`, a label containing "teacher", or
    the report's `--teacher` option marks the teacher. run.json's `target` fills in what the config
    lacks.
    """
    target = cfg.get("target") if isinstance(cfg.get("target"), dict) else {}
    info = _read_json_quiet(run_dir / "run.json").get("target") or {}
    info = info if isinstance(info, dict) else {}
    name = _name(target.get("name"))
    backend = name if name in STUDENT_TARGETS + BASELINE_TARGETS else None
    backend = backend or (
        _name(info.get("kind")) if _name(info.get("kind")) in STUDENT_TARGETS + BASELINE_TARGETS else None
    )
    rec.target = backend
    kind = (_name(target.get("kind")) or "").lower()
    label = _name(target.get("label"))
    if backend in STUDENT_TARGETS:
        meta = info.get("export") if isinstance(info.get("export"), dict) else {}
        train_dir: Path | None = None
        if backend == "student":
            student = Path(str(target.get("path") or info.get("path") or ""))
            if not meta and (student / "steper_export.json").is_file():
                meta = _read_json_quiet(student / "steper_export.json")
            train_dir = student.parent if str(student) else None
        else:
            ckpt = Path(str(target.get("ckpt_path") or info.get("ckpt_path") or ""))
            train_dir = ckpt.parent.parent if str(ckpt) else None
        if meta.get("run_dir"):
            train_dir = Path(str(meta["run_dir"]))
        tcfg = _train_config(train_dir)
        rec.model = rec.model or _name(meta.get("model")) or _name(tcfg.get("model"))
        rec.method = rec.method or _name(meta.get("method")) or _name(tcfg.get("method"))
        rec.weighting = rec.weighting or _name(meta.get("weighting")) or _name(tcfg.get("weighting"))
        if rec.seed is None:
            rec.seed = _seed(tcfg.get("seed"))
        return
    rec.teacher = kind == "teacher" or name == "teacher" or "teacher" in (label or "").lower()
    if rec.teacher:
        rec.baseline = "Teacher"
    else:
        rec.baseline = (
            label or BASELINE_STEMS.get(backend or "") or (kind.capitalize() if kind else None) or "Baseline"
        )
    rec.model = (
        rec.model
        or _short_model(target.get("model"))
        or _short_model(target.get("model_name_or_path"))
        or _short_model(info.get("model"))
        or (name if name and not backend and name != "teacher" else None)
        or label
        or backend
    )


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


# Override keys that never make two runs different rows: the cell's own coordinates, where files go,
# logging, and how the evaluated target is found.
_NOT_VARIANT = (
    "dataset", "model", "method", "weighting", "seed", "mode", "task_name", "target", "teacher",
    "sweep", "trainer", "logger", "callbacks", "hydra/launcher", "tags", "out_dir", "ckpt_path",
    "ckpt_dir", "progress", "row_delay_s", "export",
)  # fmt: skip
_NOT_VARIANT_PREFIX = (
    "hydra.",
    "paths.",
    "logger.",
    "callbacks.",
    "dataset.",
    "target.",
    "teacher.",
    "data.data_dir",
)


def _read_overrides(run_dir: Path) -> dict[str, str]:
    """`.hydra/overrides.yaml` as {key: value} (`+`/`~` prefixes and `@package` suffixes dropped)."""
    import yaml

    try:
        with open(run_dir / ".hydra" / "overrides.yaml", encoding="utf-8") as f:
            items = yaml.safe_load(f) or []
    except (OSError, yaml.YAMLError):
        return {}
    out: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str) and "=" in item:
            k, v = item.split("=", 1)
            out[k.lstrip("+~").split("@", 1)[0].strip()] = v.strip()
    return out


def _is_variant_key(key: str) -> bool:
    return key not in _NOT_VARIANT and not key.startswith(_NOT_VARIANT_PREFIX)


def _config_value(r: RunRecord, key: str) -> str:
    if key in r.overrides:
        return r.overrides[key]
    v = _get(r.config, key)
    if isinstance(v, dict):
        v = v.get("name", "default")
    return "default" if v is None else str(v)


def assign_variants(runs: list[RunRecord]) -> None:
    """Give runs a `variant` tag from the overridden settings whose values differ between runs that
    would otherwise share a table cell (e.g. a sweep over `model.lr`), so they become separate rows
    instead of duplicates."""
    keys = sorted({k for r in runs for k in r.overrides if _is_variant_key(k)})
    if not keys:
        return
    groups: dict[tuple, list[RunRecord]] = {}
    for r in runs:
        who = (r.role, r.method, r.weighting, r.model, r.dataset, r.mode, r.teacher, r.baseline)
        groups.setdefault(who, []).append(r)
    for rs in groups.values():
        varying = [k for k in keys if len({_config_value(r, k) for r in rs}) > 1]
        for r in rs:
            r.variant = ", ".join(f"{k}={_config_value(r, k)}" for k in varying)


# ------------------------------------------------------------------------------------- one folder


def read_run(run_dir: Path, order: int = 0) -> tuple[RunRecord | None, list[str]]:
    """One run folder → its record and the problems found reading it; None for a folder that is not
    a train or evaluate run (generate_data.py's runs are skipped silently, others with a problem)."""
    problems: list[str] = []
    shown = display_path(run_dir)
    cfg = read_config(run_dir)
    task = str(cfg.get("task_name") or "").strip().lower()
    if task.startswith("generate"):
        return None, []
    kind = "evaluate" if task.startswith("eval") else "train"
    if not task and ("mode" in cfg and "target" in cfg):
        kind = "evaluate"
    if kind == "train" and not any(k in cfg for k in ("method", "weighting", "model")):
        return None, [f"{shown}: not a train or evaluate run (task_name={task or '?'}); skipped"]
    rec = RunRecord(
        path=str(run_dir),
        kind=kind,
        dataset=_name(cfg.get("dataset")),
        model=_name(cfg.get("model")),
        method=_name(cfg.get("method")),
        weighting=_name(cfg.get("weighting")),
        seed=_seed(cfg.get("seed")),
        mode=_name(cfg.get("mode")) or _name(_get(cfg, "eval.mode")),
        order=order,
        overrides=_read_overrides(run_dir),
        config=cfg,
    )
    if kind == "evaluate":
        _evaluate_identity(rec, run_dir, cfg)
        if rec.mode is None:
            rec.mode = "multistep"

    metrics_path = run_dir / "metrics.json"
    metrics: dict[str, Any] | None = None
    if metrics_path.is_file():
        try:
            with open(metrics_path, encoding="utf-8") as f:
                metrics = json.load(f)
            if not isinstance(metrics, dict):
                raise ValueError("not a JSON object")
            rec.mtime = metrics_path.stat().st_mtime
        except (OSError, ValueError) as e:
            problems.append(f"{shown}: unreadable metrics.json ({e})")
            metrics = None
    else:
        problems.append(f"{shown}: no metrics.json (failed or unfinished?)")

    if kind == "train":
        csv_path = _find_metrics_csv(run_dir)
        if csv_path is not None:
            try:
                rec.history = read_history(csv_path)
                rec.history_path = str(csv_path)
            except (OSError, csv.Error, UnicodeDecodeError) as e:
                problems.append(f"{display_path(csv_path)}: unreadable training history ({e})")
        eval_dir = run_dir / "eval"
        preds = eval_dir / "predictions.jsonl"
        rec.predictions = preds if preds.is_file() else None
        eval_metrics = None
        if (eval_dir / "metrics.json").is_file():
            try:
                with open(eval_dir / "metrics.json", encoding="utf-8") as f:
                    eval_metrics = json.load(f)
                if not isinstance(eval_metrics, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as e:
                problems.append(f"{display_path(eval_dir / 'metrics.json')}: unreadable ({e})")
                eval_metrics = None
        if metrics is None:
            rec.status = "failed"
        else:
            rec.metrics = _answer_metrics(metrics, "test/")
            if eval_metrics is not None:
                rec.metrics = _answer_metrics(eval_metrics) or rec.metrics
                _apply_eval_metrics(rec, eval_metrics)
            lat = _float(metrics.get("test/latency_s"))
            if rec.latency_s is None and lat is not None:
                rec.latency_s = lat
            if "acc" not in rec.metrics:
                rec.status = "no-test-metrics"
                problems.append(
                    f"{shown}: no test/acc in metrics.json (evaluation after training did not run?)"
                )
    else:
        preds = run_dir / "predictions.jsonl"
        rec.predictions = preds if preds.is_file() else None
        if metrics is None:
            rec.status = "failed"
        else:
            rec.metrics = _answer_metrics(metrics) or _answer_metrics(metrics, "test/")
            _apply_eval_metrics(rec, metrics)
            if "acc" not in rec.metrics:
                rec.status = "no-test-metrics"
                problems.append(f"{shown}: metrics.json has no acc")
    if rec.ok and rec.dataset is None:
        problems.append(f"{shown}: no dataset.name in .hydra/config.yaml; its numbers are left out of tables")
    return rec, problems


# -------------------------------------------------------------------------------------- multiruns


def _sweep_size(multirun_yaml: Path) -> int | None:
    """Jobs a basic-sweeper multirun should have: the product of its comma-list sizes (None if unsure)."""
    import yaml

    try:
        with open(multirun_yaml, encoding="utf-8") as f:
            cfg = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return None
    hydra = cfg.get("hydra") if isinstance(cfg, dict) else None
    if not isinstance(hydra, dict):
        return None
    sweeper = hydra.get("sweeper") or {}
    if "BasicSweeper" not in str(sweeper.get("_target_", "BasicSweeper")):
        return None  # optuna & co.: the count is theirs to decide
    params: dict[str, str] = {}
    for k, v in (sweeper.get("params") or {}).items():
        params[str(k)] = str(v)
    for ov in _get(hydra, "overrides.task") or []:
        if isinstance(ov, str) and "=" in ov:
            k, v = ov.split("=", 1)
            params[k.lstrip("+~")] = v
    size = 1
    for v in params.values():
        if (
            re.search(r"\b(range|choice|interval|glob|sort|shuffle|tag)\(", v)
            or "[" in v
            or "'" in v
            or '"' in v
        ):
            return None
        size *= len(v.split(","))
    return size


def _walk(root: Path) -> list[Path]:
    """Run folders under `root` (a run folder's own subfolders are not searched further)."""
    found: list[Path] = []
    for dirpath, dirs, _files in os.walk(root):
        here = Path(dirpath)
        if (here / ".hydra" / "config.yaml").is_file():
            found.append(here)
            dirs[:] = []
            continue
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=_natural)
    return found


def _natural(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _multirun_problems(root: Path, run_dirs: list[Path]) -> list[str]:
    """Missing numbered jobs and short sweeps in every multirun folder under `root`."""
    problems: list[str] = []
    for mr in sorted(root.rglob("multirun.yaml")):
        folder = mr.parent
        jobs = [d for d in run_dirs if d.parent == folder]
        numbers = sorted(int(d.name) for d in jobs if d.name.isdigit())
        expected = _sweep_size(mr)
        if numbers:
            top = max(numbers[-1], (expected or 0) - 1)
            for n in range(top + 1):
                if n not in numbers:
                    problems.append(
                        f"{display_path(folder / str(n))}: no job folder (the job never started, or was removed)"
                    )
        elif expected and len(jobs) < expected:
            problems.append(f"{display_path(folder)}: {len(jobs)} job folders, the sweep has {expected} jobs")
    return problems


# -------------------------------------------------------------------------------------- W&B CSVs


def _pick(row: dict[str, str], aliases: tuple[str, ...]) -> str | None:
    for a in aliases:
        v = row.get(a)
        if v is not None and str(v).strip() != "":
            return str(v).strip()
    return None


def _wandb_name(value: str | None) -> str | None:
    """A W&B config cell: a plain name, or a dict printed as text (`{'name': 'hotpot', …}`)."""
    if value is None:
        return None
    v = value.strip()
    if v.startswith("{"):
        try:
            d = json.loads(v)
        except ValueError:
            try:
                d = ast.literal_eval(v)
            except (ValueError, SyntaxError):
                return v
        return _name(d) if isinstance(d, dict) else v
    return v or None


def read_wandb_csv(path: Path, order: int = 0) -> tuple[list[RunRecord], list[str]]:
    """A W&B runs-table export → one record per row."""
    problems: list[str] = []
    records: list[RunRecord] = []
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        raise SteperError(f"{display_path(path)}: cannot read as a W&B CSV export ({e})") from None
    known = {a for aliases in _WANDB_ALIASES.values() for a in aliases} | {f"test/{m}" for m in METRIC_NAMES}
    if rows and not (known & set(rows[0])):
        raise SteperError(
            f"{display_path(path)}: not a W&B runs export (expected columns like Name, dataset, "
            "model, method, weighting, seed, test/acc)"
        )
    mtime = path.stat().st_mtime
    for i, row in enumerate(rows):
        name = _pick(row, _WANDB_ALIASES["name"]) or f"row {i + 2}"
        where = f"{display_path(path)}#{name}"
        task = (_pick(row, _WANDB_ALIASES["task_name"]) or "").lower()
        mode = _wandb_name(_pick(row, _WANDB_ALIASES["mode"]))
        has_test = any(_float(row.get(f"test/{m}")) is not None for m in METRIC_NAMES)
        kind = "evaluate" if task.startswith("eval") or (not task and mode and not has_test) else "train"
        rec = RunRecord(
            path=where,
            kind=kind,
            dataset=_wandb_name(_pick(row, _WANDB_ALIASES["dataset"])),
            model=_wandb_name(_pick(row, _WANDB_ALIASES["model"])),
            method=_wandb_name(_pick(row, _WANDB_ALIASES["method"])),
            weighting=_wandb_name(_pick(row, _WANDB_ALIASES["weighting"])),
            seed=_seed(_pick(row, _WANDB_ALIASES["seed"])),
            mode=mode,
            source="wandb",
            order=order + i,
            mtime=mtime + i * 1e-6,
        )
        if kind == "evaluate":
            target = {
                k: _wandb_name(_pick(row, _WANDB_ALIASES[f"target_{k}"]))
                for k in ("kind", "name", "label", "model")
            }
            _evaluate_identity(rec, path.parent / "\0no-such-run", {"target": target})
            rec.mode = rec.mode or "multistep"
        rec.metrics = _answer_metrics(row, "test/") or _answer_metrics(row)
        rec.latency_s = _float(_pick(row, _WANDB_ALIASES["latency"]))
        if rec.latency_s is None:
            qps = _float(_pick(row, _WANDB_ALIASES["qps"]))
            rec.latency_s = 1.0 / qps if qps else None
        state = (_pick(row, _WANDB_ALIASES["state"]) or "").lower()
        if state in ("failed", "crashed", "killed", "running"):
            rec.status, rec.metrics = "failed", {}
            problems.append(f"{where}: W&B state {state!r} (failed or unfinished?)")
        elif "acc" not in rec.metrics:
            rec.status = "no-test-metrics"
            problems.append(f"{where}: no test/acc (evaluation after training did not run?)")
        records.append(rec)
    if not records:
        problems.append(f"{display_path(path)}: no rows")
    return records, problems


# -------------------------------------------------------------------------------------- entry point


def collect_runs(paths: list[Path]) -> tuple[list[RunRecord], list[str]]:
    """Every run under `paths` (run folders, multirun folders, parents of either, W&B CSV files).

    Returns the records (failed runs included, `status="failed"`) and the problems found. Raises a
    SteperError when a path does not exist, or when nothing under any of them is a run.
    """
    runs: list[RunRecord] = []
    problems: list[str] = []
    counter = itertools.count()
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise SteperError(f"no such file or folder: {path}")
        if path.is_file():
            if path.suffix.lower() == ".csv":
                recs, probs = read_wandb_csv(path, order=next(counter) * 100000)
                runs.extend(recs)
                problems.extend(probs)
                continue
            if path.name in ("metrics.json", "predictions.jsonl", "config.yaml"):
                path = path.parent.parent if path.parent.name == ".hydra" else path.parent
            else:
                raise SteperError(
                    f"{path}: not a run folder, multirun folder or W&B CSV export (a .csv file)"
                )
        found = _walk(path)
        if not found:
            problems.append(f"{display_path(path)}: no runs found here")
            continue
        for run_dir in found:
            if run_dir.resolve() in seen:
                continue  # the same folder reached through two arguments
            seen.add(run_dir.resolve())
            rec, probs = read_run(run_dir, order=next(counter))
            problems.extend(probs)
            if rec is not None:
                runs.append(rec)
        problems.extend(_multirun_problems(path, found))
    if not runs:
        where = ", ".join(str(p) for p in paths) or "(nothing given)"
        raise SteperError(
            f"no runs found under {where}: pass run folders (with .hydra/) or multirun folders, "
            "or a W&B runs export (.csv)"
        )
    assign_variants(runs)
    return runs, list(dict.fromkeys(problems))
