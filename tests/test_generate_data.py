"""generate_data.py end to end: the toy world with the oracle teacher, resume after SIGKILL, bad input."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steper.errors import SteperError
from steper.reasoning.loop import strip_timings
from tests.conftest import subprocess_env  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return subprocess_env()


def _args(tmp: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / "generate_data.py"),
        "dataset=toy",
        "teacher=oracle",
        f"paths.root_dir={tmp}",
        f"paths.data_dir={tmp}/data",
        f"paths.log_dir={tmp}/logs",
        f"paths.cache_dir={tmp}/cache",
        "dataset.n_train=60",
        "dataset.n_dev=2",
        "dataset.n_test=2",
        "progress=false",
        *extra,
    ]


def _run(tmp: Path, *extra: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        _args(tmp, *extra), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def _out(tmp: Path, framework: str = "ircot") -> Path:
    return tmp / "data" / "stepwise" / f"toy-oracle-{framework}"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _comparable_manifest(path: Path) -> dict:
    m = json.loads(path.read_text(encoding="utf-8"))
    for k in ("run", "config", "out_dir"):
        m.pop(k)
    return m


def test_generate_data_toy_oracle(tmp_path):
    from steper.evaluation.metrics import score

    # top_k=1 makes retrieval miss some gold paragraphs, so both sides of the oracle relation show
    r = _run(tmp_path, "limit=40", "retriever.top_k=1", "val_fraction=0.2")
    assert r.returncode == 0, r.stderr[-3000:]
    out = _out(tmp_path)
    traces = _jsonl(out / "traces.jsonl")
    assert len(traces) == 40
    for t in traces:
        right = score(t["answer"], t["golds"])["em"] == 1.0
        assert right == (set(t["gold_titles"]) <= set(t["gold_found"])), t["qid"]
    n_right = sum(score(t["answer"], t["golds"])["em"] == 1.0 for t in traces)
    assert 0 < n_right < 40

    m = json.loads((out / "manifest.json").read_text())
    train, val = _jsonl(out / "stepwise" / "train.jsonl"), _jsonl(out / "stepwise" / "validation.jsonl")
    assert {e["qid"] for e in train}.isdisjoint({e["qid"] for e in val}) and val
    for split, rows in (("train", train), ("validation", val)):
        for task in ("first", "mid", "final", "vanilla"):
            assert m["counts"][split][task] == sum(e["task"] == task for e in rows)
        assert m["counts"][split]["final"] == m["counts"][split]["questions"]
    assert m["counts"]["train"]["first"] > 0 and m["counts"]["train"]["mid"] > 0
    assert m["filter"]["kept"] == n_right and m["filter"]["dropped"]["wrong_answer"] == 40 - n_right
    assert m["teacher"]["em"] == pytest.approx(100 * n_right / 40)
    assert m["retrieval"]["all_gold_found"] == pytest.approx(100 * n_right / 40)
    assert (
        m["retrieval"]["acc_when_all_gold_found"] == 100.0 and m["retrieval"]["acc_when_gold_missed"] == 0.0
    )
    card = json.loads((out / "run.json").read_text())  # the run card: who ran what, with which versions
    assert card["job"] == "generate_data" and card["status"] == "done"
    assert set(card["who"]["versions"]) >= {"steper", "transformers", "torch", "bm25s"}
    assert card["metrics"]["em"] == m["teacher"]["em"] and card["where"]["train"] == "stepwise/train.jsonl"
    assert m["failures"]["failed_requests"] == 0
    assert m["config"]["teacher"]["name"] == "oracle"

    from datasets import load_from_disk

    dd = load_from_disk(str(out / "stepwise_hf"))
    assert dd["train"].to_list() == train and dd["validation"].to_list() == val


def test_resume_after_sigkill_equals_uninterrupted(tmp_path, cfg_generate_data):
    from steper.config import validate
    from steper.tasks.generate_data import generate_data

    common = ("limit=40", "retriever.top_k=2", "batch_size=4")
    full = tmp_path / "full"
    generate_data(
        validate(cfg_generate_data(_args(full, *common)[2:], full / "run"))
    )  # uninterrupted, in process

    part = tmp_path / "part"
    traces_path = _out(part) / "traces.jsonl"
    proc = subprocess.Popen(
        _args(part, *common, "trace_delay_s=0.1"),
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if traces_path.is_file() and len(traces_path.read_bytes().splitlines()) >= 6:
                break
            assert proc.poll() is None, "generate_data.py ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no traces appeared")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    n_before = len(traces_path.read_bytes().splitlines())
    assert 6 <= n_before < 40
    assert not (_out(part) / "manifest.json").exists()
    with open(traces_path, "ab") as f:  # as if killed in the middle of a line
        f.write(b'{"qid": "toy0-train-000')

    m = generate_data(
        validate(cfg_generate_data(_args(part, *common)[2:], part / "run"))
    )  # the rerun resumes
    a, b = _out(full), _out(part)
    for name in ("stepwise/train.jsonl", "stepwise/validation.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ta, tb = _jsonl(a / "traces.jsonl"), _jsonl(b / "traces.jsonl")
    assert [strip_timings(t) for t in ta] == [strip_timings(t) for t in tb]
    assert _comparable_manifest(a / "manifest.json") == _comparable_manifest(b / "manifest.json")
    assert m["run"]["resumed_traces"] == n_before and m["run"]["new_traces"] == 40 - n_before

    # a rerun of a finished job does no work and changes nothing
    before = (b / "stepwise/train.jsonl").read_bytes()
    m = generate_data(validate(cfg_generate_data(_args(part, *common)[2:], part / "run")))
    assert m["run"]["new_traces"] == 0 and (b / "stepwise/train.jsonl").read_bytes() == before
    # ... and one with a different setting into the same folder is refused
    with pytest.raises(SteperError, match="different setting"):
        generate_data(
            validate(cfg_generate_data(_args(part, "limit=40", "retriever.top_k=3")[2:], part / "run"))
        )


@pytest.mark.parametrize("group,bad", [("teacher", "nope"), ("framework", "react")])
def test_unknown_option_lists_choices(tmp_path, group, bad):
    r = _run(tmp_path, f"{group}={bad}")
    assert r.returncode != 0
    assert f"Could not find '{group}/{bad}'" in r.stderr
    assert "Available options" in r.stderr
    assert ("oracle" in r.stderr) if group == "teacher" else ("selfask" in r.stderr)


def test_steper_error_is_one_line_without_traceback(tmp_path):
    r = _run(tmp_path, "filter=f1")
    assert r.returncode == 2
    assert "error: filter must be one of em, acc" in r.stderr
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------------
# in process (Hydra's compose API): Self-Ask, failures, retries
# ------------------------------------------------------------------------------------------------


def test_selfask_with_oracle(tmp_path, cfg_generate_data):
    from steper.config import validate
    from steper.tasks.generate_data import generate_data

    m = generate_data(
        validate(cfg_generate_data(_args(tmp_path, "framework=selfask", "limit=20")[2:], tmp_path / "run"))
    )
    assert m["config"]["framework"]["max_steps"] == 10
    assert m["teacher"]["em"] == m["retrieval"]["all_gold_found"] > 0
    train = _jsonl(_out(tmp_path, "selfask") / "stepwise" / "train.jsonl")
    firsts = [e for e in train if e["task"] == "first"]
    assert firsts and all(e["target"].startswith("Follow up: ") for e in firsts)
    finals = [e for e in train if e["task"] == "final"]
    assert all(e["target"].startswith("So the final answer is: ") for e in finals)
    assert all("Intermediate answer: " in e["prefix"] for e in finals)


class _Flaky:
    """A generator answering None for every question whose qid ends in an even digit."""

    def __init__(self, base, fail: bool):
        self.base, self.fail = base, fail
        self.stats = {}

    def render(self, prompt, prefix=""):
        return self.base.render(prompt, prefix)

    def fits(self, rendered):
        return True

    def generate(self, requests):
        out = self.base.generate(requests)
        return [None if self.fail and int(r.question.qid[-1]) % 2 == 0 else o for r, o in zip(requests, out)]

    def close(self):
        pass


def test_failures_raise_after_writing_and_are_retried(tmp_path, monkeypatch, cfg_generate_data):
    import steper.generators as generators
    from steper.config import validate
    from steper.generators.oracle import OracleGenerator
    from steper.tasks.generate_data import generate_data

    monkeypatch.setattr(generators, "build_generator", lambda cfg: _Flaky(OracleGenerator(), fail=True))
    cfg = validate(cfg_generate_data(_args(tmp_path, "limit=20")[2:], tmp_path / "run"))
    with pytest.raises(SteperError, match="max_failure_rate"):
        generate_data(cfg)
    out = _out(tmp_path)
    m = json.loads((out / "manifest.json").read_text())
    assert m["failures"]["failed_requests"] == 10 and m["filter"]["dropped"]["error"] == 10
    assert (out / "stepwise" / "train.jsonl").is_file()

    # tolerated under a higher threshold
    monkeypatch.setattr(generators, "build_generator", lambda cfg: _Flaky(OracleGenerator(), fail=True))
    generate_data(
        validate(cfg_generate_data(_args(tmp_path, "limit=20", "max_failure_rate=0.6")[2:], tmp_path / "run"))
    )

    # a rerun with a working teacher retries exactly the failed questions
    monkeypatch.setattr(generators, "build_generator", lambda cfg: _Flaky(OracleGenerator(), fail=False))
    m = generate_data(validate(cfg_generate_data(_args(tmp_path, "limit=20")[2:], tmp_path / "run")))
    assert m["run"]["new_traces"] == 10 and m["failures"]["failed_requests"] == 0
    assert len(_jsonl(out / "traces.jsonl")) == 20


class _AlwaysWrong(_Flaky):
    """The oracle's reasoning, but every answer step names nobody."""

    def generate(self, requests):
        out = self.base.generate(requests)
        return ["So the answer is: Nobody Atall." if o and "answer is" in o else o for o in out]


def test_teacher_that_is_always_wrong_fails_with_why(tmp_path, monkeypatch, cfg_generate_data):
    """No trace correct = no training data: the job says so (exit 2 from the CLI), not a silent
    success with empty step-wise files."""
    import steper.generators as generators
    from steper.config import validate
    from steper.generators.oracle import OracleGenerator
    from steper.tasks.generate_data import generate_data

    monkeypatch.setattr(generators, "build_generator", lambda cfg: _AlwaysWrong(OracleGenerator(), fail=False))
    cfg = validate(cfg_generate_data(_args(tmp_path, "limit=12")[2:], tmp_path / "run"))
    with pytest.raises(SteperError, match=r"none of the 12 teacher traces was correct.*filter=acc"):
        generate_data(cfg)
    card = json.loads((_out(tmp_path) / "run.json").read_text())
    assert card["status"] == "failed" and "none of the 12" in card["error"]


def test_option_of_the_wrong_type_is_one_line(tmp_path):
    r = _run(tmp_path, "limit=abc")
    assert r.returncode == 2, r.stderr[-2000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "limit=abc" in errors[0] and "Traceback" not in r.stderr


def test_stepwise_data_without_reasoning_steps(tmp_path, caplog):
    """Only final-answer examples: an error for the oracle (its questions have no chain: no rerun
    helps), a loud warning for a model teacher that answered at once (Vanilla-KD can still train)."""
    import logging

    from omegaconf import OmegaConf

    from steper.tasks.generate_data import check_outcome

    counts = {"first": 0, "mid": 0, "final": 3, "vanilla": 3}
    manifest = {"questions": 4, "failures": {"rate": 0.0, "failed_requests": 0},
                "filter": {"kept": 3, "dropped": 1}, "counts": {"train": counts, "validation": dict(counts)}}  # fmt: skip
    cfg = OmegaConf.create({"max_failure_rate": 0.1, "filter": "em", "teacher": {"name": "oracle"}})
    with pytest.raises(SteperError, match="no reasoning step.*no gold chain for the oracle"):
        check_outcome(manifest, tmp_path, cfg)
    cfg.teacher.name = "openai"
    with caplog.at_level(logging.WARNING, logger="steper.tasks.generate_data"):
        check_outcome(manifest, tmp_path, cfg)
    assert any(r.getMessage().startswith("NOT STEP-WISE DATA: the 3 kept") for r in caplog.records)
    manifest["counts"]["train"]["first"] = 1
    caplog.clear()
    check_outcome(manifest, tmp_path, cfg)
    assert not caplog.records


def test_credentials_never_reach_a_file_or_the_terminal(tmp_path):
    """A password typed into a URL and an API key in the environment: the connection error is one
    line without them, and no file the run wrote (`.hydra/` dumps, the log, the card) holds them."""
    from tests.generators.scripted_server import closed_port

    run_dir = tmp_path / "run"
    env = {**_env(), "OPENAI_API_KEY": "sk-live-Zq8TOPSECRET42"}
    args = [sys.executable, str(REPO / "generate_data.py"), "dataset=toy", "teacher=openai",
            f"teacher.base_url=http://alice:hunter2pass@127.0.0.1:{closed_port()}/v1", "teacher.model=tiny",
            "teacher.max_retries=0", "limit=2", "progress=false", f"paths.root_dir={tmp_path}",
            f"out_dir={tmp_path}/out", f"hydra.run.dir={run_dir}"]  # fmt: skip
    r = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.parent.name == ".hydra" for p in written) and (run_dir / ".hydra" / "overrides.yaml").is_file()
    for secret in ("hunter2pass", "sk-live-Zq8TOPSECRET42"):
        assert secret not in r.stdout + r.stderr
        leaks = [str(p) for p in written if secret.encode() in p.read_bytes()]
        assert leaks == [], (secret, leaks)
    assert "alice:***@" in (run_dir / ".hydra" / "overrides.yaml").read_text() or "://***@" in (
        run_dir / ".hydra" / "overrides.yaml"
    ).read_text()


def test_too_few_steps_for_the_hops_names_max_steps(tmp_path):
    """5-hop questions need 6 steps: the first oracle runs out of steps on every one, and the error
    says so (it used to blame the teacher and suggest filter=acc); the ideal oracle answers in time."""
    r = _run(tmp_path, "dataset.hops=[5]", "limit=3", "teacher.policy=in_order")
    assert r.returncode == 2
    err = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and "within framework.max_steps=5" in err[0] and "filter=acc" not in err[0]
    ok = _run(tmp_path / "ideal", "dataset.hops=[5]", "limit=3")
    assert ok.returncode == 0, ok.stderr[-2000:]


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("+limitt=5", r"`\+limitt=\.\.\.` adds 'limitt', which generate_data\.py does not read \(did you mean limit\?\)"),
        ("+target.max_new_tokens=0", r"adds 'target', which generate_data\.py does not read"),
    ],
)
def test_plus_keys_the_job_would_ignore_are_refused(tmp_path, override, match):
    r = _run(tmp_path, override, "limit=2")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and re.search(match, err[0]), r.stderr[-2000:]


def test_plus_into_an_existing_section_is_kept(tmp_path):
    r = _run(tmp_path, "+teacher.label=gold", "limit=2")  # a key the teacher section knows, added with +
    assert r.returncode == 0, r.stderr[-2000:]
