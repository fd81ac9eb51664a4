"""The oracle teacher and build_generator over the generator config files."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from steper.data.schema import ChainStep, Paragraph, Question
from steper.errors import SteperError
from steper.generators import GenerationRequest, Generator, build_generator
from steper.generators.oracle import UNKNOWN, OracleGenerator

_ROOT = __import__("pathlib").Path(__file__).resolve().parents[2] / "conf"
# one generator group shared by `teacher` and `target`
CONF = _ROOT / "generator"


def _question() -> Question:
    return Question(
        qid="q1",
        question="Where was the director of Zorvak Telu born?",
        answer="Dresavo Pint",
        chain=[
            ChainStep("Zorvak Telu was directed by Mirel Okana.", title="Zorvak Telu"),
            ChainStep("Mirel Okana was born in Dresavo Pint.", title="Mirel Okana"),
        ],
    )


P1 = Paragraph("zorvak telu", "Zorvak Telu is a 1998 film directed by Mirel Okana.")  # case differs
P2 = Paragraph("Mirel Okana", "Mirel Okana is a film director born in Dresavo Pint.")
NOISE = Paragraph("Other", "Unrelated.")


def test_oracle_writes_chain_then_answer():
    q = _question()
    gen = OracleGenerator()
    reqs = [
        GenerationRequest("p", question=q, step=0, passages=[P1, NOISE]),
        GenerationRequest("p", question=q, step=1, passages=[P1, NOISE, P2]),
        GenerationRequest("p", question=q, step=2, passages=[P1, NOISE, P2]),
    ]
    assert gen.generate(reqs) == [
        "Zorvak Telu was directed by Mirel Okana.",
        "Mirel Okana was born in Dresavo Pint.",
        "So the answer is: Dresavo Pint.",
    ]
    assert gen.stats["requests"] == 3 and gen.stats["failures"] == 0
    assert isinstance(gen, Generator)


def test_oracle_unknown_when_gold_paragraph_not_retrieved():
    q = _question()
    out = OracleGenerator().generate(
        [
            GenerationRequest("p", question=q, step=0, passages=[NOISE]),
            GenerationRequest("p", question=q, step=1, passages=[P1, NOISE]),  # step 2's paragraph missing
        ]
    )
    assert out == [UNKNOWN, UNKNOWN]
    assert UNKNOWN == "So the answer is: unknown."


def test_oracle_untitled_step_and_empty_chain():
    q = Question("q2", "Is it?", "yes", chain=[ChainStep("It is so.")])
    assert OracleGenerator().generate([GenerationRequest("p", question=q, step=0)]) == ["It is so."]
    q0 = Question("q3", "Who?", "Ann")
    assert OracleGenerator().generate([GenerationRequest("p", question=q0, step=0)]) == [
        "So the answer is: Ann."
    ]
    with pytest.raises(SteperError, match="question"):
        OracleGenerator().generate([GenerationRequest("p")])


def test_oracle_render_and_fits_are_plain():
    gen = OracleGenerator()
    assert gen.render("PROMPT", "r1.") == "PROMPT\nA: r1."
    assert gen.render("PROMPT") == "PROMPT\nA:"
    assert gen.fits("x" * 100_000)


def test_build_generator_from_conf_files(tiny_model_dir, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    oracle = build_generator(OmegaConf.load(CONF / "oracle.yaml"))
    assert isinstance(oracle, OracleGenerator)

    hf_cfg = OmegaConf.load(CONF / "hf.yaml")
    with pytest.raises(SteperError, match="model_name_or_path"):
        build_generator(hf_cfg)  # `???` in the file: the user must set it
    hf_cfg.model_name_or_path = str(tiny_model_dir)
    hf = build_generator(hf_cfg)
    assert hf.name == "hf" and hf.max_new_tokens == 64 and hf.stop == ["\n"]
    hf.close()

    # openai: constructing contacts no server (nothing listens on this base_url)
    oa = build_generator(OmegaConf.load(CONF / "openai.yaml"))
    assert oa.name == "openai" and oa.api == "completions" and oa.concurrency == 16
    oa.close()


def test_build_generator_validated_section_and_errors():
    from steper.config import validate

    cfg = OmegaConf.create({"teacher": OmegaConf.load(CONF / "openai.yaml")})
    validate(cfg)  # the `teacher` schema fills every backend's fields; each backend takes its own
    gen = build_generator(cfg.teacher)
    assert gen.max_retries == 5
    gen.close()
    assert isinstance(build_generator({"name": "oracle", "stop": None}), OracleGenerator)
    with pytest.raises(SteperError, match="oracle, hf, openai"):
        build_generator({"name": "gpt"})
    with pytest.raises(SteperError, match="bogus"):
        build_generator({"name": "oracle", "bogus": 1})
