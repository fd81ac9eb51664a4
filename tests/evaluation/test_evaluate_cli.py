"""evaluate.py end to end: the oracle through the CLI (with W&B offline), the tiny model as `hf` and
as an exported `student`, resume after SIGKILL, and a missing setting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steper.evaluation.predictions import metrics_from_predictions, strip_timing_metrics
from steper.reasoning.loop import strip_timings
from tests.conftest import subprocess_env  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]
# the tiny model on CPU: few, short steps and short prompts keep it fast
TINY_OPTS = (
    "framework.max_steps=2",
    "target.max_new_tokens=8",
    "target.max_context=256",
    "target.dtype=float32",
)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One BM25 index of the toy corpus for every run of this module."""
    return tmp_path_factory.mktemp("eval-cli-cache")


def _env() -> dict[str, str]:
    return subprocess_env()


def _overrides(tmp: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "dataset=toy",
        f"paths.root_dir={tmp}",
        f"paths.log_dir={tmp}/logs",
        f"paths.cache_dir={cache}",
        f"out_dir={tmp}/out",
        "logger=none",
        "progress=false",
        *extra,
    ]


def _run(tmp: Path, cache: Path, *extra: str, timeout: int = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "evaluate.py"), *_overrides(tmp, cache, *extra)]
    return subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)


def _evaluate_with(cfg_evaluate, tmp: Path, cache: Path, *extra: str) -> dict:
    """evaluate.py's work in process (the same config the CLI composes)."""
    from steper.config import validate
    from steper.tasks.evaluate import evaluate_run

    return evaluate_run(validate(cfg_evaluate(_overrides(tmp, cache, *extra), tmp / "run")))


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines() if x.strip()]


def _comparable(rows: list[dict]) -> list[dict]:
    return [
        strip_timings({k: v for k, v in r.items() if k not in ("retrieval_s", "generation_s")}) for r in rows
    ]


def test_oracle_end_to_end_through_the_cli(tmp_path, cache_dir):
    from steper.data import load_questions

    # top_k=1 makes retrieval miss some gold paragraphs: the oracle is right exactly when it found them all
    r = _run(tmp_path, cache_dir, "target=oracle", "limit=60", "retriever.top_k=1", "logger=wandb")
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "out"
    rows = _rows(out)
    qids = [q.qid for q in load_questions({"name": "toy", "format": "toy"}, "test")[:60]]
    assert [row["qid"] for row in rows] == qids
    for row in rows:
        assert row["acc"] == float(row["all_gold_found"]), row["qid"]
        assert row["trace"]["qid"] == row["qid"] and row["steps"] == len(row["trace"]["steps"])
        assert row["trace"]["steps"][0]["query"] == row["question"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == metrics_from_predictions(rows)
    share = sum(row["all_gold_found"] for row in rows) / len(rows)
    assert metrics["acc"] == pytest.approx(100 * share, abs=1e-3) and metrics[
        "all_gold_found"
    ] == pytest.approx(share, abs=1e-4)
    assert 0 < metrics["acc"] < 100 and metrics["n"] == 60 and metrics["failures"] == 0
    assert (
        set(metrics["by_hops"]) == {"2", "3", "4"} and sum(g["n"] for g in metrics["by_hops"].values()) == 60
    )
    csv = [x for x in r.stdout.splitlines() if x.startswith("CSV: ")]
    assert csv == [f"CSV: toy,test,oracle,ircot,multistep,60,{metrics['em']:.2f},{metrics['f1']:.2f},{metrics['acc']:.2f},"
                   f"{metrics['latency_s']['mean']:.4f}"]  # fmt: skip
    run = json.loads((out / "run.json").read_text())
    assert run["job"] == "evaluate" and run["status"] == "done"
    assert (
        run["model"]["display"] == "oracle"
        and run["data"]["run"]["new_rows"] == 60
        and run["data"]["n_demos"] == 0
    )
    assert list((out / "wandb").glob("offline-run-*")), "no offline W&B run"


def test_missing_student_path_is_one_clear_line(tmp_path, cache_dir):
    r = _run(tmp_path, cache_dir, "limit=2")  # target=student is the default
    assert r.returncode == 2
    assert "error: target=student needs target.path" in r.stderr and "Traceback" not in r.stderr


def test_tiny_model_as_hf_and_as_exported_student(tmp_path, cache_dir, noisy_dir, cfg_evaluate):
    import shutil

    hf = ("target=hf", f"target.model_name_or_path={noisy_dir}", "limit=6", *TINY_OPTS)
    m = _evaluate_with(
        cfg_evaluate, tmp_path / "hf", cache_dir, *hf, "n_demos=0"
    )  # hf targets get few-shot demos by default
    rows = _rows(tmp_path / "hf" / "out")
    assert len(rows) == 6 and m["n"] == 6 and m == metrics_from_predictions(rows)
    assert m["no_answer"] == sum(r["prediction"] is None for r in rows)
    assert all(r["trace"]["steps"][0]["generation"] is not None for r in rows)

    student = tmp_path / "train-run" / "student"
    shutil.copytree(noisy_dir, student)
    meta = {
        "base_model": str(noisy_dir),
        "model": "tiny",
        "method": "vanilla",
        "weighting": "uniform",
        "peft": False,
    }
    (student / "steper_export.json").write_text(json.dumps({**meta, "dataset": "toy"}))
    m2 = _evaluate_with(
        cfg_evaluate,
        tmp_path / "st",
        cache_dir,
        "target=student",
        f"target.path={student}",
        "limit=6",
        *TINY_OPTS,
    )
    assert strip_timing_metrics(m2) == strip_timing_metrics(m)  # the same weights: the same predictions
    assert _comparable(_rows(tmp_path / "st" / "out")) == _comparable(rows)
    run = json.loads((tmp_path / "st" / "out" / "run.json").read_text())
    assert run["model"]["display"] == "tiny-vanilla-uniform" and run["model"]["kind"] == "student"
    assert run["data"]["n_demos"] == 0 and run["config"]["target"]["max_new_tokens"] == 8

    # an ICL target (hf, openai) gets the framework's demonstrations unless n_demos says otherwise
    _evaluate_with(cfg_evaluate, tmp_path / "icl", cache_dir, *hf, "limit=1", "target.max_context=4096")
    (row,) = _rows(tmp_path / "icl" / "out")
    assert json.loads((tmp_path / "icl" / "out" / "run.json").read_text())["data"]["n_demos"] == 3
    assert row["trace"]["steps"][0]["shown"] > 0


def test_resume_after_sigkill_equals_uninterrupted(tmp_path, cache_dir, noisy_dir, cfg_evaluate):
    common = ("target=hf", f"target.model_name_or_path={noisy_dir}", "limit=8", "batch_size=1", *TINY_OPTS)
    full = _evaluate_with(cfg_evaluate, tmp_path / "full", cache_dir, *common)  # uninterrupted, in process

    part = tmp_path / "part"
    pred = part / "out" / "predictions.jsonl"
    cmd = [
        sys.executable,
        str(REPO / "evaluate.py"),
        *_overrides(part, cache_dir, *common, "row_delay_s=0.5"),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if pred.is_file() and pred.read_text().count("\n") >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, (
            f"finished or died before it could be killed: {proc.stderr.read()[-2000:]!r}"
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    done = pred.read_text().count("\n")  # complete rows (a torn last line is cut on resume)
    assert 2 <= done < 8 and not (part / "out" / "metrics.json").exists()

    resumed = _evaluate_with(cfg_evaluate, part, cache_dir, *common)  # the same out_dir: continues
    assert strip_timing_metrics(resumed) == strip_timing_metrics(full)
    assert _comparable(_rows(part / "out")) == _comparable(_rows(tmp_path / "full" / "out"))
    run = json.loads((part / "out" / "run.json").read_text())
    assert run["data"]["run"]["resumed_rows"] == done and run["data"]["run"]["new_rows"] == 8 - done


def test_a_fully_failed_evaluation_is_not_a_result(tmp_path, cache_dir):
    """A server that answers HTTP 500: every question ends on a failed request. evaluate.py writes
    everything, exits 2 with one line naming the share and max_failure_rate, the card says failed,
    and the report shows no ICL number for it (a failed run is a gap, with a problem line)."""
    from tests.generators.scripted_server import ScriptedServer

    server = ScriptedServer().script("", "500").start()
    try:
        r = _run(tmp_path, cache_dir, "target=openai", f"target.base_url={server.base_url}", "target.model=tiny",
                 "target.max_retries=1", "target.backoff_base_s=0.01", "limit=3")  # fmt: skip
    finally:
        server.stop()
    assert r.returncode == 2, r.stderr[-2000:]
    err = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and "3 of 3 questions (100.0%) ended on a failed generation request" in err[0]
    assert "max_failure_rate=0.05" in err[0] and "Traceback" not in r.stderr
    out = tmp_path / "out"
    card = json.loads((out / "run.json").read_text())
    assert card["status"] == "failed" and card["metrics"]["failures"] == 3
    assert len(_rows(out)) == 3  # everything written: a rerun retries them

    report = subprocess.run([sys.executable, "-m", "steper.report", str(out), "--out", str(tmp_path / "rep")],
                            cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    md = (tmp_path / "rep" / "report.md").read_text() if (tmp_path / "rep" / "report.md").exists() else ""
    shown = report.stdout + md
    assert "failed" in shown and "0.00" not in shown, shown[-3000:]


def test_max_failure_rate_allows_a_few_failures(tmp_path, cache_dir):
    """One failed question of three is within max_failure_rate=0.5: the run is a result."""
    from tests.generators.scripted_server import ScriptedServer

    server = ScriptedServer().script("", "500", "500", "ok").start()
    try:
        r = _run(tmp_path, cache_dir, "target=openai", f"target.base_url={server.base_url}", "target.model=tiny",
                 "target.max_retries=1", "target.backoff_base_s=0.01", "limit=3", "max_failure_rate=0.5",
                 "framework.max_steps=1", "batch_size=1")  # fmt: skip
    finally:
        server.stop()
    assert r.returncode == 0, r.stderr[-2000:]
    card = json.loads((tmp_path / "out" / "run.json").read_text())
    assert card["status"] == "done" and card["metrics"]["failures"] == 1


def test_out_dir_held_by_another_job_or_a_file(tmp_path, cache_dir):
    """Another evaluate.py into the same out_dir is refused while it runs; a file as out_dir is one line."""
    from steper.io import folder_lock

    with folder_lock(tmp_path / "out", "evaluate.py"):
        r = _run(tmp_path, cache_dir, "target=oracle", "limit=2")
    assert r.returncode == 2 and f"in use by another evaluate.py (pid {os.getpid()})" in r.stderr
    (tmp_path / "file").write_text("x")
    r = _run(tmp_path, cache_dir, "target=oracle", "limit=2", f"out_dir={tmp_path / 'file'}")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "cannot use" in r.stderr, r.stderr[-2000:]


def test_settings_that_would_silently_change_the_experiment(tmp_path, cache_dir):
    """top_k above the passage cap (oracle EM fell from 100 to 0 without a word) is one error."""
    r = _run(tmp_path, cache_dir, "target=oracle", "limit=2", "retriever.top_k=20")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "retriever.top_k=20 is more than framework.max_passages=15" in r.stderr


def test_ctrl_c_is_one_line_and_the_rerun_resumes(tmp_path, cache_dir):
    import signal
    import time

    args = [sys.executable, str(REPO / "evaluate.py"), *_overrides(tmp_path, cache_dir, "target=oracle", "limit=40",
            "row_delay_s=0.1", "batch_size=1")]  # fmt: skip
    # as a terminal's foreground job gets it (a background job of a script inherits SIGINT ignored)
    proc = subprocess.Popen(args, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    preds = tmp_path / "out" / "predictions.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not preds.is_file() or len(preds.read_text().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "error: interrupted (Ctrl-C)" in err
    done = len(_rows(tmp_path / "out"))
    assert 3 <= done < 40
    r = _run(tmp_path, cache_dir, "target=oracle", "limit=40", "batch_size=1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(_rows(tmp_path / "out")) == 40


def test_empty_splits_name_the_key(tmp_path, cache_dir):
    r = _run(tmp_path, cache_dir, "target=oracle", "dataset.n_test=0")
    assert r.returncode == 2 and "dataset.n_test=0; set it to at least 1" in r.stderr, r.stderr[-1000:]
    from steper.data import select_by_ids
    from steper.errors import SteperError

    (tmp_path / "ids.txt").write_text("\n")
    with pytest.raises(SteperError, match=r"ids\.txt lists no question id"):
        select_by_ids([], tmp_path / "ids.txt")


def test_a_lora_student_without_tokenizer_files_says_whose_it_uses(tmp_path, cache_dir, noisy_dir, cfg_evaluate,
                                                                  caplog):  # fmt: skip
    """The base model's tokenizer stands in, with a warning, and the card records it."""
    import logging

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(noisy_dir, local_files_only=True)
    lora = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    student = tmp_path / "student"
    lora.save_pretrained(student)
    (student / "steper_export.json").write_text(json.dumps({"base_model": str(noisy_dir), "model": "tiny"}))
    assert not (student / "tokenizer_config.json").exists()
    with caplog.at_level(logging.WARNING, logger="steper.evaluation"):
        _evaluate_with(cfg_evaluate, tmp_path / "st", cache_dir, "target=student", f"target.path={student}",
                       "limit=1", *TINY_OPTS)  # fmt: skip
    assert any("has no tokenizer files: using the base model's tokenizer" in r.getMessage() for r in caplog.records)
    card = json.loads((tmp_path / "st" / "out" / "run.json").read_text())
    assert card["model"]["tokenizer"] == str(noisy_dir)


@pytest.mark.parametrize("kind", ["lora", "full"])
def test_corrupt_student_weights_are_one_clear_error(tmp_path, cache_dir, noisy_dir, cfg_evaluate, kind):
    import shutil

    from steper.errors import SteperError

    student = tmp_path / "student"
    if kind == "lora":
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(noisy_dir, local_files_only=True)
        get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"])).save_pretrained(student)
        (student / "steper_export.json").write_text(json.dumps({"base_model": str(noisy_dir), "model": "tiny"}))
        weights = student / "adapter_model.safetensors"
    else:
        shutil.copytree(noisy_dir, student)
        weights = student / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 3])
    with pytest.raises(SteperError, match=r"corrupt|truncated|cannot load the LoRA adapter"):
        _evaluate_with(cfg_evaluate, tmp_path / "st", cache_dir, "target=student", f"target.path={student}",
                       "limit=1", *TINY_OPTS)  # fmt: skip


def test_a_logger_evaluate_does_not_write_is_refused(tmp_path, cache_dir):
    args = [a for a in _overrides(tmp_path, cache_dir, "target=oracle", "limit=1") if a != "logger=none"]
    r = subprocess.run([sys.executable, str(REPO / "evaluate.py"), *args, "logger=csv"], cwd=REPO, env=_env(),
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "logger=csv logs nothing in evaluate.py" in r.stderr, r.stderr[-1000:]
