"""The reasoning-ability judge against a real local HTTP server with scripted replies."""

from __future__ import annotations

import json

import pytest

from steper.errors import SteperError
from steper.report.__main__ import main as report_main
from steper.report.judge import JudgeConfig, build_items, judge_predictions, load_rubric, main, parse_score
from tests.report.judge_server import JudgeServer, closed_port
from tests.report.runs_fixture import eval_metrics, eval_run, trace_row, write_predictions

THREE = [
    "Zorvak Telu was directed by Mirel Okana.",
    "Mirel Okana was born in Dresavo Pint.",
    "So the answer is: Dresavo Pint.",
]


def _ability(text: str) -> str:
    return text.split("Ability under evaluation: ", 1)[1].split("\n", 1)[0]


# (ability, question tag) -> (status, reply)
SCRIPT = {
    ("initialization", "Q1"): (200, "The first step names the director.\nScore: 4"),
    ("initialization", "Q2"): (200, "Excellent.\n**Score:** 5/5"),
    ("expansion", "Q1"): (200, "I am not sure what to say here."),  # no score: unparseable
    ("expansion", "Q2"): (200, "3"),  # a bare digit
    ("aggregation", "Q1"): (500, ""),  # the server fails: a request failure
    ("aggregation", "Q2"): (200, "Wrong answer.\nScore: 2"),
    ("aggregation", "Q3"): (200, "Correct.\nScore: 4"),
}


def scripted(path: str, text: str) -> tuple[int, str]:
    tag = text.split("Question: ", 1)[1].split("\n", 1)[0].split("[")[-1].rstrip("]")
    return SCRIPT.get((_ability(text), tag), (200, "Score: 1"))


def _predictions(path, nested: bool = True):
    rows = [
        trace_row("1", THREE, nested=nested, question="Where was the director of Zorvak Telu born? [Q1]"),
        trace_row("2", THREE, nested=nested, question="Where was the director of Zorvak Telu born? [Q2]"),
        trace_row(
            "3", ["So the answer is: Dresavo Pint."], nested=nested, question="Who? [Q3]"
        ),  # final only
        trace_row(
            "4", ["Zorvak Telu is a film."], finish="error", nested=nested, question="Err? [Q4]"
        ),  # not judged
    ]
    write_predictions(path, rows)
    return path


def _cfg(server, **kw) -> JudgeConfig:
    return JudgeConfig(
        base_url=server.base_url, model="judge-model", max_retries=1, backoff_base_s=0.01, timeout_s=5, **kw
    )


@pytest.mark.parametrize("api,nested", [("chat", True), ("completions", False)])
def test_judge_scores_failures_and_file(tmp_path, api, nested):
    preds = _predictions(tmp_path / "predictions.jsonl", nested=nested)
    with JudgeServer(scripted) as server:
        res = judge_predictions(preds, _cfg(server, api=api))
    paths = {p for p, _ in server.requests}
    assert paths == {f"/v1/{'chat/completions' if api == 'chat' else 'completions'}"}
    a = res["abilities"]
    assert (
        a["initialization"]["applicable"],
        a["initialization"]["scored"],
        a["initialization"]["failures"],
    ) == (2, 2, 0)
    assert a["initialization"]["mean"] == 4.5 and a["initialization"]["share_ge4"] == 100.0
    assert (
        a["expansion"]["applicable"] == 2
        and a["expansion"]["unparseable"] == 1
        and a["expansion"]["mean"] == 3.0
    )
    assert a["expansion"]["share_ge4"] == 0.0
    assert a["aggregation"]["applicable"] == 3 and a["aggregation"]["request_failures"] == 1
    assert a["aggregation"]["mean"] == 3.0 and a["aggregation"]["share_ge4"] == 50.0
    assert a["aggregation"]["counts"] == {"1": 0, "2": 1, "3": 0, "4": 1, "5": 0}
    assert res["questions"] == 4 and res["questions_not_judged"] == 1
    on_disk = json.loads((tmp_path / "judge.json").read_text())
    assert on_disk["abilities"] == a and len(on_disk["items"]) == 7
    assert len(server.requests) == 8  # 7 items, and the 500 retried once (max_retries=1)


def test_judge_prompt_content():
    rubric, _ = load_rubric()
    row = trace_row("1", THREE)
    items = build_items(row, rubric, JudgeConfig(base_url="x"))
    assert [i.ability for i in items] == ["initialization", "expansion", "aggregation"]
    init = items[0].prompt
    assert "Gold answer: Dresavo Pint" in init and "[1] Zorvak Telu: Zorvak Telu is a 1998 film" in init
    assert "Mirel Okana is a film director" not in init  # step 1 saw only its own passage
    assert "Step 1: Zorvak Telu was directed by Mirel Okana." in init and "Score: N" in init
    agg = items[2].prompt
    assert "[2] Mirel Okana: Mirel Okana is a film director" in agg
    assert (
        agg.index("Step 2: Mirel Okana was born")
        < agg.index("Step(s) to evaluate:")
        < agg.index("Step 3: So the answer")
    )


def test_parse_score():
    cases = {
        "Good.\nScore: 4": 4.0,
        "**Score:** 5/5": 5.0,
        "I give it a score of 3.": 3.0,
        "Final score (1-5): 2": 2.0,
        "4": 4.0,
        "reasoning...\n5": 5.0,
        "3 out of 5": 3.0,
        "Score: 10": None,
        "Score: N": None,
        "no idea": None,
        "": None,
        None: None,
    }
    for reply, want in cases.items():
        assert parse_score(reply) == want, reply


def test_judge_cli_limit_and_reuse(tmp_path, capsys):
    preds = _predictions(tmp_path / "predictions.jsonl")
    with JudgeServer(scripted) as server:
        args = [
            str(preds),
            "--base-url",
            server.base_url,
            "--model",
            "judge-model",
            "--limit",
            "1",
            "--max-retries",
            "0",
        ]
        assert main(args) == 0
        n = len(server.requests)
        assert n == 3  # one question, three abilities
        assert main(args) == 0  # same judge, rubric and limit: reused, no new request
        assert len(server.requests) == n
    out = capsys.readouterr().out
    assert "wrote" in out and "reused" in out and "initialization" in out


def test_unreachable_judge(tmp_path, capsys):
    preds = _predictions(tmp_path / "predictions.jsonl")
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(SteperError, match="cannot reach"):
        judge_predictions(preds, JudgeConfig(base_url=url, model="m", max_retries=0, timeout_s=2))
    with pytest.raises(SystemExit) as e:
        main([str(preds), "--base-url", url, "--model", "m", "--max-retries", "0"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot reach")


def _eval_with_predictions(tmp_path):
    run = eval_run(
        tmp_path / "runs" / "student_eval",
        metrics=eval_metrics(50, 60, 61, latency=2.0),
        target={"target": "openai", "name": "qwen7b-steper", "label": "StepER-7B"},
    )
    _predictions(run / "predictions.jsonl")
    return run


def test_report_with_judge(tmp_path):
    _eval_with_predictions(tmp_path)
    out = tmp_path / "rep"
    with JudgeServer(scripted) as server:
        rc = report_main(
            [
                str(tmp_path / "runs"),
                "--out",
                str(out),
                "--no-plots",
                "--quiet",
                "--judge-base-url",
                server.base_url,
                "--judge-model",
                "judge-model",
                "--judge-max-retries",
                "0",
            ]
        )
    assert rc == 0
    report = (out / "report.md").read_text()
    assert (
        "| StepER-7B (multistep) | qwen7b-steper | HotpotQA |  | 100.0 | 0.0 | 50.0 | 4.5 | 3.0 | 3.0 |"
        in report
    )
    assert (out / "judge.csv").is_file()
    assert (tmp_path / "runs" / "student_eval" / "judge.json").is_file()


def test_report_with_unreachable_judge_still_written(tmp_path, capsys):
    _eval_with_predictions(tmp_path)
    out = tmp_path / "rep"
    url = f"http://127.0.0.1:{closed_port()}/v1"
    rc = report_main(
        [
            str(tmp_path / "runs"),
            "--out",
            str(out),
            "--no-plots",
            "--quiet",
            "--judge-base-url",
            url,
            "--judge-model",
            "m",
            "--judge-max-retries",
            "0",
        ]
    )
    assert rc == 0
    report = (out / "report.md").read_text()
    assert "Table 1" in report and "Not judged" in report and "cannot reach" in report
    assert not (out / "judge.csv").exists()
    assert "cannot reach" in capsys.readouterr().out
