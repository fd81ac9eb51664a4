"""The training task (steper.tasks.train / train.py) on a tiny model and a small step-wise set, on CPU."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from steper.errors import SteperError
from tests.conftest import compose_cfg

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"

# Small enough for CPU tests: a 2-layer, 32-wide tiny Qwen2, 256 tokens, batches of 4.
SMALL = [
    "model.tiny.vocab_size=400",
    "model.tiny.hidden_size=32",
    "model.tiny.num_layers=2",
    "model.tiny.num_heads=2",
    "model.tiny.num_kv_heads=1",
    "model.tiny.intermediate_size=64",
    "training.max_length=256",
    "training.batch_size=4",
    "training.max_epochs=1",
    "training.warmup_ratio=0.0",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
    "callbacks.progress_bar=null",
    # the answer evaluation after training is tested where it matters (parity, multirun)
    "eval.enabled=false",
]

PEOPLE = [
    "Zorvak Telu",
    "Mirel Okana",
    "Dresavo Pint",
    "Kalu Brenn",
    "Ostra Vell",
    "Pim Arrow",
    "Quen Dafo",
    "Rul Sabe",
]


def stepwise_rows(n_questions: int, *, mid: bool = True) -> list[dict]:
    """first/mid/final/vanilla rows of `n_questions` made-up 2- or 3-step questions."""
    rows = []
    for q in range(n_questions):
        a, b, c = PEOPLE[q % 8], PEOPLE[(q + 3) % 8], PEOPLE[(q + 5) % 8]
        question = f"Where was the mentor of {a} born?"
        p1 = [{"title": a, "text": f"{a} was trained by {b}."}]
        p2 = [*p1, {"title": b, "text": f"{b} was born in {c} Town."}]
        steps = (
            [f"{a} was trained by {b}.", f"{b} was born in {c} Town."]
            if mid
            else [f"{a} was trained by {b}."]
        )
        final = f"So the answer is: {c} Town."
        qid = f"q{q}"

        def row(task: str, step: int | None, passages: list, prefix: str, target: str, qid=qid, q=question):
            return {"qid": qid, "task": task, "step": step, "question": q, "passages": passages,
                    "demos": "", "prefix": prefix, "target": target}  # fmt: skip

        rows.append(row("first", 1, p1, "", steps[0]))
        rows += [row("mid", s + 1, p2, " ".join(steps[:s]), steps[s]) for s in range(1, len(steps))]
        rows.append(row("final", len(steps) + 1, p2, " ".join(steps), final))
        rows.append(row("vanilla", None, p2, "", " ".join([*steps, final])))
    return rows


def write_stepwise(out: Path, n_train: int = 6, n_val: int = 2, *, mid: bool = True) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    rows = stepwise_rows(n_train + n_val, mid=mid)
    val_ids = {f"q{q}" for q in range(n_train, n_train + n_val)}
    for split, keep in (
        ("train", lambda r: r["qid"] not in val_ids),
        ("validation", lambda r: r["qid"] in val_ids),
    ):
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for r in rows:
                if keep(r):
                    f.write(json.dumps(r) + "\n")
    return out


@pytest.fixture(scope="session")
def stepwise_dir(tmp_path_factory) -> Path:
    return write_stepwise(tmp_path_factory.mktemp("stepwise") / "toy-oracle-ircot" / "stepwise")


@pytest.fixture(scope="session")
def toy_stepwise_dir(tmp_path_factory) -> Path:
    """Real teacher data: `generate_data.py dataset=toy teacher=oracle` on 60 toy questions."""
    root = tmp_path_factory.mktemp("toy-data")
    gen = [
        sys.executable, "generate_data.py", "dataset=toy", "teacher=oracle", "limit=60",
        f"paths.root_dir={root}", f"hydra.run.dir={root / 'gen-run'}",
    ]  # fmt: skip
    r = subprocess.run(gen, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return root / "data" / "stepwise" / "toy-oracle-ircot" / "stepwise"


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """paths.cache_dir shared by the tests, so the tiny model is built once."""
    return tmp_path_factory.mktemp("cache")


def train_overrides(data_dir: Path, cache_dir: Path, *extra: str) -> list[str]:
    return [f"stepwise.data_dir={data_dir}", f"paths.cache_dir={cache_dir}", *SMALL, *extra]


@pytest.fixture
def make_cfg(tmp_path, stepwise_dir, tiny_cache):
    """Compose conf/train.yaml like a Hydra run into tmp_path/<name> (HydraConfig set)."""

    def make(*overrides: str, name: str = "run", data_dir: Path | None = None):
        overrides = [
            *train_overrides(data_dir or stepwise_dir, tiny_cache),
            f"paths.root_dir={tmp_path}",
            *overrides,
        ]
        return compose_cfg("train", overrides, tmp_path / name)

    yield make
    GlobalHydra.instance().clear()


def run_train(cfg):
    from steper.tasks.train import train

    return train(cfg)


# --------------------------------------------------------------------------- happy paths


def test_fast_dev_run(make_cfg):
    from steper.tasks.train import run

    cfg = make_cfg("trainer.fast_dev_run=true", "logger=wandb")
    value = run(cfg)  # what train.py returns to a sweeper
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert value == pytest.approx(metrics["val/loss_mean"])
    assert metrics["global_step"] == 1
    assert metrics["val/loss_mean"] > 0  # one validation batch: the tasks it holds
    assert any(f"val/loss_{t}" in metrics for t in ("first", "mid", "final"))
    assert metrics["optimized_metric"] == "val/loss_mean"
    assert not (out / "student").exists()  # fast_dev_run exports nothing
    assert not (out / "wandb").exists()  # nor creates a W&B run


def test_train_exports_student_and_wandb_offline(make_cfg, caplog, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    # validation at step 2 (best checkpoint); max_steps stops at 3, between validations: the task
    # validates the final weights and refreshes last.ckpt
    cfg = make_cfg(
        "logger=wandb",
        "trainer.max_steps=3",
        "trainer.val_check_interval=2",
        "weighting=first",
        "+hf_token=hf_SeCrEt123",
    )
    with caplog.at_level(logging.INFO, logger="steper.tasks"):
        metrics = run_train(cfg)
    out = Path(cfg.paths.output_dir)
    assert metrics["global_step"] == 3 and "val/loss_mean" in metrics

    # checkpoints: best + last, and the W&B run id beside them
    ckpts = out / "checkpoints"
    assert [p.name for p in ckpts.glob("best-*.ckpt")] == ["best-epoch00-step2.ckpt"]
    assert torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 3
    run_id = (ckpts / "wandb_run_id.txt").read_text().strip()
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and runs[0].name.endswith(run_id)
    hints = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("W&B offline: runs saved under")
    ]
    assert len(hints) == 1 and f"`wandb sync {runs[0]}`" in hints[0]
    record = next(runs[0].glob("*.wandb")).read_bytes()  # the offline run (protobuf: strings are raw)
    for tag in (b"dataset:toy", b"model:tiny", b"weighting:first", b"method:steper"):
        assert tag in record
    assert b"hf_token" in record and b"hf_SeCrEt123" not in record  # the config is logged, secrets masked
    import wandb

    assert wandb.run is None  # the wrapper finished it

    # the exported student loads as a plain HF model
    student = out / "student"
    meta = json.loads((student / "steper_export.json").read_text())
    assert meta["method"] == "steper" and meta["weighting"] == "first" and meta["dataset"] == "toy"
    assert meta["peft"] is None and meta["adapter"] is False and meta["global_step"] == 3
    assert Path(meta["base_model"]).name.startswith("tiny-")
    model = AutoModelForCausalLM.from_pretrained(student)
    AutoTokenizer.from_pretrained(student)
    assert model.config.hidden_size == 32
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["export_dir"] == str(student) and saved["weights"]["weight/first"] == pytest.approx(1.5)


def _log_var(ckpt_path: Path) -> torch.Tensor:
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    return ckpt["state_dict"]["weighting.log_var"], ckpt["global_step"]


def test_resume_from_last_continues_exactly(make_cfg):
    """Train N steps, resume from last.ckpt to 2N: same step, σ and losses as 2N uninterrupted.

    Constant lr (a cosine schedule's length depends on each run's max_steps); 8 training examples
    (all three tasks) = 2 batches of 4: N = 2 = one epoch, so last.ckpt is written at the
    validation that ends it.
    """
    common = [
        "stepwise.limit_train=8",
        "weighting=adaptive",
        "weighting.lr=0.05",
        "module.scheduler={_target_: steper.distill.module.constant_with_warmup, _partial_: true}",
        "training.max_epochs=-1",
        "export=false",
    ]
    first = make_cfg(*common, "logger=wandb", "trainer.max_steps=2", name="first")
    run_train(first)
    ckpt_dir = Path(first.paths.output_dir) / "checkpoints"
    saved_s, saved_step = _log_var(ckpt_dir / "last.ckpt")
    assert saved_step == 2 and not torch.allclose(saved_s, torch.zeros(3))
    run_id = (ckpt_dir / "wandb_run_id.txt").read_text().strip()

    # resume: the old run's checkpoints (ckpt_dir), its W&B run continued (same id)
    resumed = make_cfg(
        *common,
        "logger=wandb",
        "trainer.max_steps=4",
        "ckpt_path=last",
        f"ckpt_dir={ckpt_dir}",
        name="resumed",
    )
    m_resumed = run_train(resumed)
    assert (ckpt_dir / "wandb_run_id.txt").read_text().strip() == run_id
    runs = list((Path(resumed.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and runs[0].name.endswith(run_id)

    whole = make_cfg(*common, "logger=csv", "trainer.max_steps=4", name="whole")
    m_whole = run_train(whole)
    assert (Path(whole.paths.output_dir) / "csv" / "metrics.csv").is_file()

    s_resumed, step_resumed = _log_var(ckpt_dir / "last.ckpt")
    _assert_same_csv_history(Path(whole.paths.output_dir), make_cfg, common)
    s_whole, step_whole = _log_var(Path(whole.paths.output_dir) / "checkpoints" / "last.ckpt")
    assert step_resumed == step_whole == 4 == m_resumed["global_step"] == m_whole["global_step"]
    torch.testing.assert_close(s_resumed, s_whole, rtol=1e-5, atol=1e-6)
    assert m_resumed["val/loss_mean"] == pytest.approx(m_whole["val/loss_mean"], rel=1e-4)
    assert m_resumed["sigma/mid"] == pytest.approx(m_whole["sigma/mid"], rel=1e-5)


@pytest.mark.slow
def test_sigkill_then_resume_keeps_the_csv_history_whole(tmp_path, stepwise_dir, tiny_cache):
    """train.py killed with SIGKILL mid-training, then the same command + ckpt_path=last: its
    csv/metrics.csv holds the rows of an uninterrupted run (timing columns aside)."""
    import signal
    import time

    common = [
        *train_overrides(stepwise_dir, tiny_cache), f"paths.root_dir={tmp_path}", "stepwise.limit_train=8",
        "weighting=adaptive", "module.scheduler={_target_: steper.distill.module.constant_with_warmup, _partial_: true}",
        "training.max_epochs=-1", "trainer.max_steps=40", "export=false", "logger=csv",
    ]  # fmt: skip

    def train(run_dir: Path, *extra: str, wait: bool = True):
        cmd = [sys.executable, "train.py", *common, f"hydra.run.dir={run_dir}", *extra]
        if wait:
            r = subprocess.run(cmd, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stderr[-3000:]
            return None
        return subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip

    killed = tmp_path / "killed"
    proc = train(killed, wait=False)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (killed / "checkpoints" / "last.ckpt").is_file() and (killed / "csv" / "metrics.csv").is_file():
            if len(_csv_rows(killed)) >= 25:
                break
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip("training finished before it could be killed")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    train(killed, "ckpt_path=last")
    train(tmp_path / "whole")
    got, want = _csv_rows(killed), _csv_rows(tmp_path / "whole")
    assert [r["step"] for r in got] == [r["step"] for r in want]
    _assert_rows_equal(got, want)


def _assert_rows_equal(got: list[dict[str, str]], want: list[dict[str, str]]) -> None:
    assert [r.keys() for r in got] == [r.keys() for r in want]
    for g, w in zip(got, want):
        for k in w:
            if k.endswith(("_per_s", "_s")):  # speed, not training: differs between any two runs
                continue
            if w[k] == "" or g[k] == "":
                assert g[k] == w[k], (k, g, w)
            else:
                assert float(g[k]) == pytest.approx(float(w[k]), rel=1e-4, abs=1e-7), (k, g, w)


def _csv_rows(run_dir: Path) -> list[dict[str, str]]:
    import csv

    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _assert_same_csv_history(whole_dir: Path, make_cfg, common: list[str]) -> None:
    """Killed after its checkpoint at step 2 (a row logged after it, as a SIGKILL leaves it), then
    resumed in the same run folder to step 4: csv/metrics.csv equals the uninterrupted run's."""
    first = make_cfg(*common, "logger=csv", "trainer.max_steps=2", name="killed")
    run_train(first)
    run_dir = Path(first.paths.output_dir)
    with open(run_dir / "csv" / "metrics.csv", "a") as f:  # what the killed job logged after the checkpoint
        f.write(_fake_row(run_dir) + "\n")
    resumed = make_cfg(*common, "logger=csv", "trainer.max_steps=4", "ckpt_path=last", name="killed")
    run_train(resumed)
    _assert_rows_equal(_csv_rows(run_dir), _csv_rows(whole_dir))
    # ... and the report shows the resumed run's training table (from its run card's where.history)
    from steper.report import make_report

    report = make_report([run_dir], run_dir.parent / "report-killed", plots=False)
    assert len(report.tables["training"].rows) == 1, report.problems


def _fake_row(run_dir: Path) -> str:
    header = list(_csv_rows(run_dir)[0])
    return ",".join("3" if k == "step" else "0.5" for k in header)


def test_lora_checkpoints_hold_only_trainable_weights(make_cfg):
    lora = ["peft=lora", "peft.r=4", "peft.lora_alpha=8", "logger=none", "training.max_epochs=-1"]
    cfg = make_cfg(*lora, "trainer.max_steps=2", name="lora")
    run_train(cfg)
    out = Path(cfg.paths.output_dir)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    keys = list(ckpt["state_dict"])
    assert ckpt.get("steper_trainable_only") is True
    assert "weighting.log_var" in keys
    assert keys and all("lora_" in k or k.startswith("weighting.") for k in keys), keys
    # the adapter export
    assert (out / "student" / "adapter_config.json").is_file()
    meta = json.loads((out / "student" / "steper_export.json").read_text())
    assert meta["adapter"] is True and meta["peft"]["r"] == 4
    # resuming from a trainable-only checkpoint loads with strict=False
    resumed = make_cfg(
        *lora,
        "trainer.max_steps=3",
        "ckpt_path=last",
        f"ckpt_dir={out / 'checkpoints'}",
        "export=false",
        name="lora_resumed",
    )
    assert run_train(resumed)["global_step"] == 3


def test_vanilla_method_trains_final_only(make_cfg):
    metrics = run_train(
        make_cfg("method=vanilla", "weighting=uniform", "trainer.fast_dev_run=true", "logger=none")
    )
    assert "val/loss_final" in metrics and "val/loss_first" not in metrics


# --------------------------------------------------------------------------- bad input, before training


def test_missing_data_dir(make_cfg, tmp_path):
    with pytest.raises(SteperError, match="generate_data.py"):
        run_train(make_cfg("logger=none", data_dir=tmp_path / "nowhere"))


def test_empty_dataset(make_cfg, tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    (d / "train.jsonl").write_text("")
    (d / "validation.jsonl").write_text("")
    with pytest.raises(SteperError, match="empty"):
        run_train(make_cfg("logger=none", data_dir=d))


def test_task_without_examples_but_weighted(make_cfg, tmp_path):
    d = write_stepwise(tmp_path / "nomid", mid=False)
    with pytest.raises(SteperError) as e:
        run_train(make_cfg("logger=none", "weighting=uniform", data_dir=d))
    msg = str(e.value)
    assert "`mid`" in msg and "weighting=uniform" in msg and "λ_mid=1" in msg and "generate_data.py" in msg
    with pytest.raises(SteperError, match="adaptive"):
        run_train(make_cfg("logger=none", "weighting=adaptive", data_dir=d))
    # the suggested fix works
    metrics = run_train(
        make_cfg(
            "logger=none",
            "weighting=uniform",
            "weighting.lambdas=[1.0,0.0,1.0]",
            "trainer.fast_dev_run=true",
            data_dir=d,
        )
    )
    assert "val/loss_mid" not in metrics and "val/loss_mean" in metrics


def test_model_path_that_does_not_exist(make_cfg, tmp_path):
    with pytest.raises(SteperError, match="does not exist"):
        run_train(make_cfg("logger=none", f"model.name_or_path={tmp_path}/no/such/model"))


def test_max_length_too_small(make_cfg):
    with pytest.raises(SteperError, match="max_length 6 too small"):
        run_train(make_cfg("logger=none", "training.max_length=6"))


def test_resume_without_checkpoint(make_cfg, tmp_path):
    with pytest.raises(SteperError, match="hydra.run.dir=<old run dir>"):
        run_train(make_cfg("logger=none", "ckpt_path=last", f"ckpt_dir={tmp_path}/none"))


def test_ckpt_path_that_is_not_a_checkpoint(make_cfg, tmp_path):
    bad = tmp_path / "notes.ckpt"
    bad.write_text("not a checkpoint")
    with pytest.raises(SteperError, match=r"not a checkpoint written by train.py.*last.ckpt"):
        run_train(make_cfg("logger=none", f"ckpt_path={bad}"))


def test_rerun_into_a_used_run_folder_refuses_to_restart(make_cfg):
    """The same command again into the same run folder, without ckpt_path=last, would train from
    step 0 over the first job's checkpoints: it is refused, naming the way to resume."""
    first = make_cfg("logger=none", "trainer.max_steps=1", "export=false", name="used")
    run_train(first)
    assert (Path(first.paths.output_dir) / "run.json").is_file()
    with pytest.raises(SteperError, match="ckpt_path=last"):
        run_train(make_cfg("logger=none", "trainer.max_steps=2", "export=false", name="used"))


@pytest.mark.parametrize(
    "override,message",
    [
        ("stepwise.batch_size=0", "stepwise.batch_size"),
        ("weighting=uniform weighting.lambdas=[a,1,1]", "weighting.lambdas"),
    ],
)
def test_bad_constructor_values_name_their_key(make_cfg, override, message):
    """Values the constructors check reach the user as steper's one-line error, not wrapped in
    Hydra's "Error in call to target"."""
    with pytest.raises(SteperError, match=message) as e:
        run_train(make_cfg("logger=none", *override.split()))
    assert "Error in call to target" not in str(e.value)


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    r = subprocess.run(
        [sys.executable, "train.py", f"stepwise.data_dir={tmp_path}/nowhere", f"hydra.run.dir={tmp_path}/run", "logger=none"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "step-wise data directory" in errors[0] and "Traceback" not in r.stderr


# --------------------------------------------------------------------------- a multirun, as a user runs it


def test_multirun_writes_one_folder_and_run_per_job(tmp_path, stepwise_dir, tiny_cache):
    sweep_dir = tmp_path / "sweep-4242"
    cmd = [
        sys.executable, "train.py", "-m",
        "weighting=uniform,first,last,adaptive", "model=tiny", "dataset=toy",
        *train_overrides(stepwise_dir, tiny_cache),
        "trainer.max_steps=2", "trainer.limit_val_batches=1", "logger=wandb", "export=false",
        "eval.enabled=true", "eval.limit=3", "eval.val_limit=2", "eval.max_new_tokens=8", "eval.progress=false",
        f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip
    r = subprocess.run(cmd, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    # (group = the sweep folder's name, checked in the W&B records below)
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    run_ids = set()
    for job, weighting in zip(jobs, ["uniform", "first", "last", "adaptive"]):
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["global_step"] == 2 and "val/loss_mean" in metrics
        assert {"em", "f1", "acc", "n"} <= set(metrics)  # evaluated in the loop after training
        assert {"val/em", "val/f1", "val/acc"} <= set(metrics)  # answer metrics at validation too
        assert len((job / "eval" / "predictions.jsonl").read_text().splitlines()) == 3
        assert json.loads((job / "metrics.json").read_text())["weights"]["weight/final"] > 0
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        assert f"weighting={weighting}" in overrides
        runs = list((job / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, runs
        record = next(runs[0].glob("*.wandb")).read_bytes()
        assert b"sweep-4242" in record and f"weighting:{weighting}".encode() in record
        run_ids.add((job / "checkpoints" / "wandb_run_id.txt").read_text().strip())
    assert len(run_ids) == 4  # one W&B run per job

    # The report on this real multirun: Table 2 has the four weightings with their test accuracy.
    out = tmp_path / "report"
    r = subprocess.run(
        [sys.executable, "-m", "steper.report", str(sweep_dir), "--out", str(out), "--no-plots"],
        cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    table2 = (out / "table2.csv").read_text()
    assert len(table2.splitlines()) == 5  # header + one row per weighting
    for weighting in ("uniform", "first", "last", "adaptive"):
        assert weighting in table2
    report = (out / "report.md").read_text()
    for job in jobs:
        assert f"{json.loads((job / 'metrics.json').read_text())['acc']:.2f}" in report


# --------------------------------------------------------------------------- train -> evaluate parity


def test_train_scores_equal_standalone_evaluate_on_the_export(make_cfg, tmp_path, toy_stepwise_dir):
    """A tiny student trained on toy-world teacher data (generate_data.py, oracle teacher) is
    evaluated in the loop at the end of train.py; those scores equal `evaluate.py target=student`
    on its export."""
    from steper.tasks.train import train

    toy_data = toy_stepwise_dir
    ev = ["eval.limit=6", "eval.val_limit=0", "eval.max_new_tokens=12", "eval.progress=false"]
    cfg = make_cfg(
        "trainer.max_steps=3", "logger=csv", "eval.enabled=true", "eval.batch_size=4", *ev,
        name="trained", data_dir=toy_data,
    )  # fmt: skip
    metrics = train(cfg)
    run = tmp_path / "trained"
    saved = json.loads((run / "metrics.json").read_text())
    assert {k: saved[k] for k in ("em", "f1", "acc")} == {
        k: metrics[k] for k in ("em", "f1", "acc")
    }
    logged = (next(run.rglob("metrics.csv"))).read_text().splitlines()[0]
    assert "test/acc" in logged  # logged to the job's own logger, not only written to a file

    out = tmp_path / "standalone"
    cmd = [
        sys.executable, "evaluate.py", "target=student", f"target.path={run / 'student'}",
        "limit=6", "target.max_new_tokens=12", "batch_size=4", "progress=false", "logger=none",
        f"out_dir={out}", f"paths.root_dir={tmp_path}", f"paths.cache_dir={cfg.paths.cache_dir}",
        f"hydra.run.dir={tmp_path / 'eval-run'}",
    ]  # fmt: skip
    r = subprocess.run(cmd, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    standalone = json.loads((out / "metrics.json").read_text())
    for k in ("em", "f1", "acc"):
        assert standalone[k] == saved[k]  # one metrics schema: train's and evaluate's metrics.json

    def answers(path):
        return [(row["qid"], row["prediction"], row["reasoning"]) for row in map(json.loads, open(path))]

    assert answers(out / "predictions.jsonl") == answers(run / "eval" / "predictions.jsonl")


def test_short_tiny_run_on_toy_data_lowers_every_task_loss(make_cfg, tmp_path, toy_stepwise_dir):
    """The tiny student on toy-world teacher data: each task's validation loss ends clearly below
    where it started (the step-0 validation of the sanity check)."""
    import csv

    from steper.tasks.train import train

    cfg = make_cfg(
        "trainer.max_steps=80", "trainer.num_sanity_val_steps=-1", "trainer.val_check_interval=40",
        "trainer.check_val_every_n_epoch=null", "training.lr=1e-2", "training.max_epochs=10", "logger=csv",
        "export=false",
        # the 0.7 bar was set with an EOS closing every target; without it (eos_after=final) a random
        # tiny model's mid-step loss is all made-up names and plateaus at 0.70 of its start
        "stepwise.eos_after=every",
        name="toy-run", data_dir=toy_stepwise_dir,
    )  # fmt: skip
    train(cfg)
    rows = list(csv.DictReader(open(next((tmp_path / "toy-run").rglob("metrics.csv")))))
    for task in ("first", "mid", "final"):
        values = [float(r[f"val/loss_{task}"]) for r in rows if r.get(f"val/loss_{task}")]
        assert len(values) >= 2 and values[-1] < 0.7 * values[0], (task, values)


def test_a_second_training_into_a_running_jobs_folder_is_refused(tmp_path, stepwise_dir, tiny_cache):
    """While one train.py holds a run folder, another into it fails at once with one line (pid and
    the fix), instead of logging every step twice; once the first is gone the folder is free."""
    from steper.io import folder_lock

    run_dir = tmp_path / "run"
    cmd = [sys.executable, "train.py", *train_overrides(stepwise_dir, tiny_cache), f"paths.root_dir={tmp_path}",
           "trainer.max_steps=1", "export=false", "logger=csv", f"hydra.run.dir={run_dir}"]  # fmt: skip
    with folder_lock(run_dir, "train.py"):  # the first job, still running
        r = subprocess.run(cmd, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=300)
        assert r.returncode == 2, r.stderr[-3000:]
        err = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
        assert len(err) == 1 and f"is in use by another train.py (pid {os.getpid()})" in err[0]
        assert not (run_dir / "run.json").exists() and not (run_dir / "csv").exists()
    r = subprocess.run(cmd, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "done"


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("eval.val_limit=-3", r"eval\.val_limit must be null or at least 0, got -3"),
        ("eval.max_new_tokens=0", r"eval\.max_new_tokens must be at least 1, got 0"),
        ("eval.limit=0", r"eval\.limit must be null or at least 1, got 0"),
        ("retriever.top_k=16", r"retriever\.top_k=16 is more than framework\.max_passages=15"),
    ],
)
def test_evaluation_settings_checked_before_training(make_cfg, override, match):
    cfg = make_cfg("eval.enabled=true", override)
    with pytest.raises(SteperError, match=match):
        run_train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()  # nothing trained


def test_ctrl_c_during_training_says_where_it_stopped_and_how_to_resume(tmp_path, stepwise_dir, tiny_cache):
    import signal
    import time

    run_dir = tmp_path / "run"
    cmd = [sys.executable, "train.py", *train_overrides(stepwise_dir, tiny_cache), f"paths.root_dir={tmp_path}",
           "training.max_epochs=-1", "trainer.max_steps=100000", "trainer.val_check_interval=2", "export=false",
           "logger=csv", f"hydra.run.dir={run_dir}"]  # fmt: skip
    # a job started in the background of a non-interactive shell inherits SIGINT ignored: a terminal's
    # Ctrl-C reaches a foreground job, so the child gets the default disposition back
    proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / "checkpoints" / "last.ckpt").is_file():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()  # never leave a 100000-step training behind
    assert proc.returncode == 2, err[-3000:]
    line = [x for x in err.splitlines() if x.startswith("error: ")]
    assert len(line) == 1 and "training interrupted at step" in line[0], err[-3000:]
    assert f"ckpt_path=last hydra.run.dir={run_dir}" in line[0] and "Traceback" not in err
    card = json.loads((run_dir / "run.json").read_text())
    assert card["status"] == "failed" and "interrupted" in card["error"]


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("training.lr=-1", r"training\.lr must be a positive learning rate, got -1"),
        ("training.batch_size=0", r"training\.batch_size must be an integer of at least 1, got 0"),
        ("training.precision=fp8", r"training\.precision='fp8' is not a Lightning precision"),
        ("++trainer.max_steps=two", r"trainer\.max_steps must be an integer, got 'two'"),
        ("trainer.devices=0", r"trainer\.devices=0 trains on no device"),
    ],
)
def test_bad_training_values_name_the_key_typed(make_cfg, override, match):
    with pytest.raises(SteperError, match=match):
        run_train(make_cfg(override))


def test_resume_with_another_model_shape_is_one_clear_error(make_cfg):
    first = make_cfg("trainer.max_steps=1", "export=false", "logger=none", name="small")
    run_train(first)
    ckpt = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    wider = make_cfg(f"ckpt_path={ckpt}", "model.tiny.hidden_size=48", "trainer.max_steps=2", "logger=none",
                     name="wider")  # fmt: skip
    with pytest.raises(SteperError, match=r"holds the weights of a model of another shape than model=tiny"):
        run_train(wider)


def test_max_length_beyond_the_models_context_is_one_clear_error(make_cfg):
    with pytest.raises(SteperError, match=r"training\.max_length=99999999999 is more than model=tiny's context window"):
        run_train(make_cfg("training.max_length=99999999999"))
