"""The shared plumbing: atomic writes, JSONL errors that name file and line, config validation."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from steper.config import validate
from steper.data.schema import ChainStep, Paragraph, Question
from steper.errors import SteperError
from steper.io import JsonlAppender, atomic_write, iter_jsonl, read_json, read_jsonl, write_jsonl


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_jsonl_roundtrip_and_malformed_line(tmp_path):
    p = tmp_path / "rows.jsonl"
    assert write_jsonl(p, [{"a": 1}, {"a": 2}]) == 2
    assert read_jsonl(p) == [{"a": 1}, {"a": 2}]
    p.write_text('{"a": 1}\n{"a": \n[1, 2]\n')
    with pytest.raises(SteperError, match=r"rows\.jsonl:2: malformed JSON line"):
        read_jsonl(p)
    skipped: list[int] = []
    assert [r for _, r in iter_jsonl(p, strict=False, skipped=skipped)] == [{"a": 1}]
    assert skipped == [2, 3]


def test_missing_file_names_path(tmp_path):
    with pytest.raises(SteperError, match="file not found: .*nope.json"):
        read_json(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{\n  oops")
    with pytest.raises(SteperError, match=r"bad.json: malformed JSON at line 2"):
        read_json(tmp_path / "bad.json")


def test_appender_cuts_torn_tail(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"q": 1}\n{"q": 2}\n{"q": 3, "half')  # killed mid-write
    with JsonlAppender(p) as w:
        w.write({"q": 3})
    assert [json.loads(line)["q"] for line in p.read_text().splitlines()] == [1, 2, 3]


def test_validate_rejects_unknown_key_and_bad_type():
    with pytest.raises(
        SteperError, match=r"config `dataset`: bad key `bogus`.*Valid keys of `dataset`: name"
    ):
        validate(OmegaConf.create({"dataset": {"name": "toy", "bogus": 1}}))
    with pytest.raises(SteperError, match=r"config `retriever`: bad key `top_k`"):
        validate(OmegaConf.create({"retriever": {"top_k": "many"}}))
    cfg = validate(OmegaConf.create({"dataset": {"name": "toy", "seed": "3"}}))
    assert cfg.dataset.seed == 3 and cfg.dataset.format == "toy"


def test_question_roundtrip_and_golds():
    q = Question(
        qid="q1",
        question="Where was the director of X born?",
        answer="Paris",
        aliases=["Paris", "City of Light"],
        contexts=[Paragraph("X", "X is a film by Y.", True), Paragraph("Z", "noise")],
        hops=2,
        chain=[ChainStep("X was directed by Y.", title="X"), ChainStep("Y was born in Paris.", title="Y")],
        dataset="toy",
    )
    assert q.golds == ["Paris", "City of Light"]
    assert q.supporting_titles == ["X"]
    assert Question.from_dict(json.loads(json.dumps(q.to_dict()))) == q
    with pytest.raises(SteperError, match="missing field 'answer'"):
        Question.from_dict({"qid": "1", "question": "?"}, where="f.jsonl:3")


def test_secrets_are_masked_but_not_token_counts():
    from steper.secrets import scrub

    cfg = {
        "teacher": {"api_key": "sk-123", "api_key_env": "OPENAI_API_KEY", "max_new_tokens": 64},
        "hf_token": "hf_abc",
        "base_url": "https://user:pw@host/v1",
        "tokenizer": "x",
    }
    assert scrub(cfg) == {
        "teacher": {"api_key": "***", "api_key_env": "OPENAI_API_KEY", "max_new_tokens": 64},
        "hf_token": "***",
        "base_url": "https://***@host/v1",
        "tokenizer": "x",
    }


def test_atomic_write_gives_the_usual_file_mode(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        write_jsonl(tmp_path / "x.jsonl", [{"a": 1}])
    finally:
        os.umask(mask)
    assert (tmp_path / "x.jsonl").stat().st_mode & 0o777 == 0o644


def test_scrub_text_masks_url_credentials_and_secret_environment_values():
    from steper.secrets import scrub_text

    env = {"OPENAI_API_KEY": "sk-abcdef123456", "HF_TOKEN": "short", "PATH": "/usr/bin:/bin/abcdef123"}
    text = "http://bob:pw@host:9/v1 failed with key sk-abcdef123456; PATH /usr/bin:/bin/abcdef123; short"
    assert scrub_text(text, env) == "http://***@host:9/v1 failed with key ***; PATH /usr/bin:/bin/abcdef123; short"
