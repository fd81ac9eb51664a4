"""The real vLLM path (scripts/serve_vllm.sh, .venv-vllm from `make vllm-env`) serving SmolLM2-135M:
generate_data.py teacher=openai and evaluate.py target=openai against it, greedy agreement with
the hf backend on the same questions, bad input (busy port, a model name it does not serve, a
base_url that is not its OpenAI API), and a server killed mid-run (one clear error, only whole
questions written; restart + rerun completes every question exactly once).

One server for the module (started once; on a 2-core CPU that takes about a minute) and one
restart, in the kill test, which runs last. The runs are kept small: a few toy questions, one
demonstration, two passages per retrieval, at most three steps of 24 new tokens.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import compose_plain, subprocess_env
from tests.evaluation.test_evaluate_cli import _evaluate_with, _rows
from tests.evaluation.test_evaluate_cli import _run as _run_evaluate
from tests.real.vllm_server import SERVE, VLLMServer

REPO = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m"
N_QUESTIONS = 4


def _generation(model_dir: Path) -> tuple[str, ...]:
    """Loop and generation settings shared by both backends, so prompts are identical: plain text
    rendering (SmolLM2 continues the few-shot "A: ..." lines as they are; with its chat template it
    answers in its own chat style), the model's tokenizer on both sides (the openai side counts
    tokens exactly), one demonstration, short steps."""
    return (
        f"{{section}}.tokenizer={model_dir}",
        "{section}.chat=false",
        "{section}.max_new_tokens=24",
        "{section}.max_context=2048",
        "framework.n_demos=1",
        "framework.max_steps=3",
        "framework.max_passages=4",
        "retriever.top_k=2",
    )


def _opts(section: str, model_dir: Path) -> list[str]:
    return [o.replace("{section}", section) for o in _generation(model_dir)]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One BM25 index of the toy corpus for every run of this module."""
    return tmp_path_factory.mktemp("vllm-cache")


@pytest.fixture(scope="module")
def server(tmp_path_factory, smollm2_dir):
    """One vLLM server for the module (SmolLM2-135M, float32, eager, 127.0.0.1, a free port)."""
    logs = tmp_path_factory.mktemp("vllm-logs")
    srv = VLLMServer(MODEL, log_path=logs / "server.log", env=subprocess_env())
    try:
        srv.start()
        print(f"\nvLLM server ready in {srv.start_seconds:.1f} s on {srv.base_url}")
        yield srv
    finally:
        srv.stop()


def _teacher_args(tmp: Path, cache: Path, base_url: str, model_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / "generate_data.py"),
        "dataset=toy",
        "teacher=openai",
        f"teacher.base_url={base_url}",
        f"teacher.model={MODEL}",
        *_opts("teacher", model_dir),
        f"paths.root_dir={tmp}",
        f"paths.data_dir={tmp}/data",
        f"paths.log_dir={tmp}/logs",
        f"paths.cache_dir={cache}",
        "progress=false",
        *extra,
    ]


def _generate(tmp: Path, cache: Path, base_url: str, model_dir: Path, *extra: str, timeout: int = 300):
    return subprocess.run(
        _teacher_args(tmp, cache, base_url, model_dir, *extra),
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _traces_dir(tmp: Path) -> Path:
    return tmp / "data" / "stepwise" / "toy-openai-ircot"


def _jsonl(path: Path) -> list[dict]:
    """Every line parsed: a torn or malformed line fails the test."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _one_error_line(stderr: str) -> str:
    """The entry points' user error: `error: ...` on one line, no traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


def _toy_qids(split: str, n: int) -> list[str]:
    """The first `n` question ids of the toy world's `split` (what `limit=n` runs)."""
    from steper.data import load_questions

    cfg = compose_plain("evaluate", ["dataset=toy"])
    return [q.qid for q in load_questions(cfg.dataset, split)[:n]]


def test_generate_data_with_the_vllm_teacher(tmp_path, cache_dir, server, smollm2_dir):
    t0 = time.monotonic()
    proc = _generate(tmp_path, cache_dir, server.base_url, smollm2_dir, f"limit={N_QUESTIONS}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = _traces_dir(tmp_path)
    traces = _jsonl(out / "traces.jsonl")
    manifest = json.loads((out / "manifest.json").read_text())
    assert [t["qid"] for t in traces] == _toy_qids("train", N_QUESTIONS)
    assert all(t["finish"] != "error" for t in traces)
    # the model really wrote reasoning: a sentence at the first step of every question (a later
    # step may be empty: the model ended its line, and the trace ends as "empty")
    assert all(t["steps"] and t["steps"][0]["generation"].strip() for t in traces)
    stats = manifest["run"]["generator_stats"]
    assert stats["failures"] == 0 and stats["requests"] == sum(len(t["steps"]) for t in traces)
    assert stats["generated_tokens"] > 0 and manifest["questions"] == N_QUESTIONS
    print(f"generate_data.py teacher=openai, {N_QUESTIONS} questions: {time.monotonic() - t0:.1f} s")


def test_evaluate_with_the_vllm_target_agrees_with_hf(tmp_path, cache_dir, server, smollm2_dir, cfg_evaluate):
    """evaluate.py target=openai through the CLI, then target=hf in process on the same questions:
    greedy, float32 on both sides, the same prompts: the same reasoning, step by step."""
    t0 = time.monotonic()
    proc = _run_evaluate(
        tmp_path / "vllm",
        cache_dir,
        "target=openai",
        f"target.base_url={server.base_url}",
        f"target.model={MODEL}",
        *_opts("target", smollm2_dir),
        f"limit={N_QUESTIONS}",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    t_vllm = time.monotonic() - t0
    vllm_rows = _rows(tmp_path / "vllm" / "out")
    run = json.loads((tmp_path / "vllm" / "out" / "run.json").read_text())
    assert run["model"]["kind"] == "openai" and run["data"]["run"]["generator_stats"]["failures"] == 0

    t0 = time.monotonic()
    _evaluate_with(
        cfg_evaluate,
        tmp_path / "hf",
        cache_dir,
        "target=hf",
        f"target.model_name_or_path={smollm2_dir}",
        "target.dtype=float32",
        *[o for o in _opts("target", smollm2_dir) if not o.startswith("target.tokenizer=")],
        f"limit={N_QUESTIONS}",
    )
    t_hf = time.monotonic() - t0
    hf_rows = _rows(tmp_path / "hf" / "out")

    assert [r["qid"] for r in vllm_rows] == [r["qid"] for r in hf_rows] == _toy_qids("test", N_QUESTIONS)
    # what the loop keeps of each step (the hf backend stops generating once that sentence is settled,
    # vLLM runs on to the line break, so their raw generations differ in length by design)
    generations = [
        ([s["sentence"] for s in v["trace"]["steps"]], [s["sentence"] for s in h["trace"]["steps"]])
        for v, h in zip(vllm_rows, hf_rows)
    ]
    # the comparison is about real text: every question starts with a generated sentence on both sides
    assert all(a and b and a[0].strip() and b[0].strip() for a, b in generations)
    same_trace = [a == b for a, b in generations]
    same_prediction = [v["prediction"] == h["prediction"] for v, h in zip(vllm_rows, hf_rows)]
    print(
        f"agreement vLLM vs hf on {N_QUESTIONS} questions: reasoning {sum(same_trace)}/{N_QUESTIONS}, "
        f"predictions {sum(same_prediction)}/{N_QUESTIONS}; vLLM run {t_vllm:.1f} s, hf run {t_hf:.1f} s"
    )
    diffs = [(v["qid"], a, b) for (a, b), v in zip(generations, vllm_rows) if a != b]
    assert sum(same_trace) >= N_QUESTIONS - 1, f"vLLM and hf reasoning differ: {diffs}"
    assert sum(same_prediction) >= N_QUESTIONS - 1


def test_busy_port_is_one_clear_error(server):
    """serve_vllm.sh on a port that is taken (here by the running server) stops at once."""
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", str(SERVE), MODEL, str(server.port)],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert f"port {server.port} on 127.0.0.1 is already in use" in line
    assert time.monotonic() - t0 < 30  # before loading anything


def test_model_name_the_server_does_not_serve(tmp_path, cache_dir, server, smollm2_dir):
    proc = _generate(tmp_path, cache_dir, server.base_url, smollm2_dir, "limit=1", "teacher.model=llama-70b")
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert f"teacher.model='llama-70b' is not served by {server.base_url}" in line
    assert f"the server serves: {MODEL}" in line
    assert not (_traces_dir(tmp_path) / "traces.jsonl").exists() or not _jsonl(
        _traces_dir(tmp_path) / "traces.jsonl"
    )


def test_base_url_that_is_not_an_openai_api(tmp_path, cache_dir, server, smollm2_dir):
    """The server's root instead of its /v1: GET /models is a 404 there, as on any web server."""
    root = server.base_url.removesuffix("/v1")
    proc = _generate(tmp_path, cache_dir, root, smollm2_dir, "limit=1")
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert f"{root} does not look like an OpenAI-compatible server" in line
    assert "HTTP 404" in line and "teacher.base_url" in line and "/v1" in line


def test_server_killed_mid_run_then_restart_resumes(tmp_path, cache_dir, server, smollm2_dir):
    """Runs last in this module: it kills the module's server and starts it again."""
    n = 6
    # one question at a time, a pause after each: the kill lands between questions or inside one
    common = (f"limit={n}", "batch_size=1", "teacher.max_retries=2", "teacher.backoff_base_s=0.2")
    traces_path = _traces_dir(tmp_path) / "traces.jsonl"
    proc = subprocess.Popen(
        _teacher_args(tmp_path, cache_dir, server.base_url, smollm2_dir, *common, "trace_delay_s=1.0"),
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if traces_path.is_file() and traces_path.read_text().count("\n") >= 2:
                break
            time.sleep(0.1)
        assert proc.poll() is None, f"finished or died before the kill: {proc.stderr.read()[-3000:]}"
        server.kill()
        t_kill = time.monotonic()
        _, stderr = proc.communicate(timeout=120)
        t_error = time.monotonic() - t_kill
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2, stderr[-3000:]
    line = _one_error_line(stderr)
    assert f"lost the server at {server.base_url} mid-run" in line and "rerun the same command" in line
    assert t_error < 60  # bounded retries (2, from 0.2 s), not a hang
    # nothing half-written: whole traces of finished questions only, no step-wise data or manifest
    out = _traces_dir(tmp_path)
    done = _jsonl(traces_path)
    assert 2 <= len(done) < n and all(t["finish"] != "error" for t in done)
    assert not (out / "manifest.json").exists() and not (out / "stepwise").exists()

    server.start()  # the same port
    print(
        f"\nkilled after {len(done)} of {n} questions; error after {t_error:.1f} s; restart {server.start_seconds:.1f} s"
    )
    rerun = _generate(tmp_path, cache_dir, server.base_url, smollm2_dir, *common)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    traces = _jsonl(traces_path)
    qids = [t["qid"] for t in traces]
    assert qids == _toy_qids("train", n)  # every question once, in question order: none lost, none twice
    assert traces[: len(done)] == done  # the finished ones were kept as they were, not run again
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["resumed_traces"] == len(done) and manifest["run"]["new_traces"] == n - len(done)
    assert manifest["questions"] == n and manifest["failures"]["failed_requests"] == 0
