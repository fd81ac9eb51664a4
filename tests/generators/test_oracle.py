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


S1 = "Zorvak Telu was directed by Mirel Okana."
S2 = "Mirel Okana was born in Dresavo Pint."


def test_oracle_writes_chain_then_answer():
    q = _question()
    gen = OracleGenerator()
    reqs = [
        GenerationRequest("p", question=q, step=0, passages=[P1, NOISE]),
        GenerationRequest("p", prefix=S1, question=q, step=1, passages=[P1, NOISE, P2]),
        GenerationRequest("p", prefix=f"{S1} {S2}", question=q, step=2, passages=[P1, NOISE, P2]),
    ]
    assert gen.generate(reqs) == [S1, S2, "So the answer is: Dresavo Pint."]
    assert gen.stats["requests"] == 3 and gen.stats["failures"] == 0 and gen.stats["recalled"] == 0
    assert isinstance(gen, Generator)


def test_ideal_oracle_writes_the_step_found_out_of_order():
    """Step 1 retrieves the second hop's paragraph only: that step is written first, then the first
    hop's (recalled if still not shown), and the answer waits for both paragraphs."""
    q = _question()
    gen = OracleGenerator()
    assert gen.generate([GenerationRequest("p", question=q, step=0, passages=[P2, NOISE])]) == [S2]
    # the second hop is written; the first is recalled (its paragraph not shown yet): no answer
    out = gen.generate([GenerationRequest("p", prefix=S2, question=q, step=1, passages=[P2, NOISE])])
    assert out == [S1] and gen.stats["recalled"] == 1
    # chain written, first hop's paragraph still missing: "unknown", never the answer
    req = GenerationRequest("p", prefix=f"{S2} {S1}", question=q, step=2, passages=[P2, NOISE])
    assert gen.generate([req]) == [UNKNOWN]
    req.passages = [P2, NOISE, P1]
    assert gen.generate([req]) == ["So the answer is: Dresavo Pint."]


def test_ideal_oracle_answers_within_the_step_budget():
    """With one step left it answers (if every gold paragraph was shown) instead of writing on."""
    q = _question()
    gen = OracleGenerator()
    both = [P1, P2]
    assert gen.generate([GenerationRequest("p", question=q, passages=both, steps_left=1)]) == [
        "So the answer is: Dresavo Pint."
    ]
    assert gen.generate([GenerationRequest("p", question=q, passages=[P1], steps_left=1)]) == [UNKNOWN]
    # with steps to spare it writes the chain first
    assert gen.generate([GenerationRequest("p", question=q, passages=both, steps_left=3)]) == [S1]


def test_ideal_oracle_never_answers_without_gold_paragraphs():
    """Supporting titles count even when no chain step names them (fullwiki rows whose gold is not in
    the context; layouts without reasoning steps)."""
    gold = [Paragraph(p.title, p.text, is_supporting=True) for p in (P1, P2)]
    chainless = Question("q4", "Who?", "Ann", contexts=[*gold, NOISE])
    gen = OracleGenerator()
    assert gen.generate([GenerationRequest("p", question=chainless, passages=[P2, NOISE])]) == [UNKNOWN]
    assert gen.generate([GenerationRequest("p", question=chainless, passages=[P1, P2])]) == [
        "So the answer is: Ann."
    ]
    q = _question()
    q.absent_support = ["Absent Page"]  # a fullwiki row: a supporting title not in its context
    req = GenerationRequest("p", prefix=f"{S1} {S2}", question=q, step=2, passages=[P1, P2])
    assert gen.generate([req]) == [UNKNOWN]


def test_in_order_oracle_keeps_the_first_behaviour():
    q = _question()
    gen = OracleGenerator(policy="in_order")
    out = gen.generate(
        [
            GenerationRequest("p", question=q, step=0, passages=[NOISE]),
            GenerationRequest("p", question=q, step=1, passages=[P1, NOISE]),  # step 2's paragraph missing
            GenerationRequest("p", question=q, step=0, passages=[P2, NOISE]),  # out of order: unknown
            GenerationRequest("p", question=q, step=2, passages=[P1, P2]),
        ]
    )
    assert out == [UNKNOWN, UNKNOWN, UNKNOWN, "So the answer is: Dresavo Pint."]
    # it answers only after every gold paragraph was shown, as the ideal policy does
    q.absent_support = ["Absent Page"]
    assert gen.generate([GenerationRequest("p", question=q, step=2, passages=[P1, P2])]) == [UNKNOWN]
    assert UNKNOWN == "So the answer is: unknown."
    with pytest.raises(SteperError, match=r"teacher\.policy='greedy'.*ideal, in_order"):
        OracleGenerator(policy="greedy")


def test_oracle_untitled_step_and_empty_chain():
    q = Question("q2", "Is it?", "yes", chain=[ChainStep("It is so.")])
    assert OracleGenerator().generate([GenerationRequest("p", question=q, step=0)]) == ["It is so."]
    q0 = Question("q3", "Who?", "Ann")
    assert OracleGenerator().generate([GenerationRequest("p", question=q0, step=0)]) == [
        "So the answer is: Ann."
    ]  # no chain and no supporting titles: nothing to wait for
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


def test_negative_temperature_is_refused():
    with pytest.raises(SteperError, match=r"temperature must be at least 0 \(0 = greedy\), got -1"):
        OracleGenerator(temperature=-1)  # every backend passes its temperature to the base
