"""The hf generator on the tiny model: batching, stop strings, chat rendering, fits, errors."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from steper.errors import SteperError
from steper.generators import GenerationRequest
from steper.generators.hf import HFGenerator
from steper.reasoning import prompts

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|endoftext|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

REQUESTS = [
    GenerationRequest("Q: Where was"),
    GenerationRequest(
        "Wikipedia Title: Zorvak Telu\nZorvak Telu is a 1998 film directed by Mirel Okana.", "Zorvak"
    ),
    GenerationRequest("Mirel Okana was born in", "So the"),
    GenerationRequest(
        "Q: Answer the following question by reasoning step-by-step.\nWho directed Zorvak Telu?"
    ),
    GenerationRequest("A"),
]


@pytest.fixture(scope="module")
def tiny(noisy_dir):
    """The tiny model with larger random weights (see conftest), loaded."""
    tok = AutoTokenizer.from_pretrained(noisy_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(noisy_dir, local_files_only=True, dtype=torch.float32)
    return model, tok


def test_batched_equals_one_by_one(tiny):
    model, tok = tiny
    one = HFGenerator.from_pretrained_objects(model, tok, batch_size=1, stop=[], max_new_tokens=12)
    singles = [one.generate([r])[0] for r in REQUESTS]
    batched = HFGenerator.from_pretrained_objects(model, tok, batch_size=3, stop=[], max_new_tokens=12)
    assert batched.generate(REQUESTS) == singles
    assert len(set(singles)) == len(singles)  # outputs differ per prompt: the check has teeth
    assert batched.stats["requests"] == len(REQUESTS)
    assert batched.stats["generated_tokens"] == len(REQUESTS) * 12
    assert batched.stats["prompt_tokens"] == sum(
        len(one.encode(one.render(r.prompt, r.prefix))) for r in REQUESTS
    )
    assert tok.padding_side == "right"  # the caller's tokenizer is not mutated
    # right padding would change the outputs: the order of rows and the padding matter
    enc = tok([one.render(r.prompt, r.prefix) for r in REQUESTS], return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    wrong = [tok.decode(o[enc.input_ids.shape[1] :], skip_special_tokens=True) for o in out]
    assert wrong != singles


def test_stop_strings_cut_and_end_early(tiny):
    model, tok = tiny
    free = HFGenerator.from_pretrained_objects(model, tok, stop=[], max_new_tokens=16)
    req = REQUESTS[3]
    full = free.generate([req])[0]
    # a stop string taken from the middle of the free continuation (ASCII, not at its start)
    k = next(
        i
        for i in range(len(full) // 2, len(full) - 1)
        if full[i : i + 2].isascii() and full[i : i + 2].strip()
    )
    stop = full[k : k + 2]
    expected = full[: full.find(stop)]
    gen = HFGenerator.from_pretrained_objects(model, tok, stop=[stop, "never-seen"], max_new_tokens=16)
    assert gen.generate([req]) == [expected]
    assert gen.stats["generated_tokens"] < free.stats["generated_tokens"]  # ended early in generate


def test_chat_vs_plain_rendering(tiny):
    model, tok = tiny
    assert HFGenerator.from_pretrained_objects(model, tok).chat is False  # no template: plain
    chat_tok = AutoTokenizer.from_pretrained(model.config._name_or_path, local_files_only=True)
    chat_tok.chat_template = CHAT_TEMPLATE
    auto = HFGenerator.from_pretrained_objects(model, chat_tok, chat="auto", max_new_tokens=4)
    assert auto.chat is True
    rendered = auto.render("PROMPT", "r1.")
    assert rendered == "<|im_start|>user\nPROMPT<|endoftext|>\n<|im_start|>assistant\nr1."
    assert rendered == prompts.render("PROMPT", "r1.", chat_tok, chat=True)
    assert len(auto.generate([GenerationRequest("PROMPT", "r1.")])) == 1
    plain = HFGenerator.from_pretrained_objects(model, chat_tok, chat="false")
    assert plain.render("PROMPT", "r1.") == "PROMPT\nA: r1."
    with pytest.raises(SteperError, match="chat template"):
        HFGenerator.from_pretrained_objects(model, tok, chat=True)


def test_fits_uses_max_context(tiny):
    model, tok = tiny
    gen = HFGenerator.from_pretrained_objects(model, tok, max_new_tokens=8)
    assert gen.max_context == model.config.max_position_embeddings
    small = HFGenerator.from_pretrained_objects(model, tok, max_new_tokens=8, max_context=40)
    short = small.render("Who?")
    assert small.fits(short)
    long = small.render(" ".join(["Zorvak Telu is a 1998 film."] * 20))
    assert len(small.encode(long)) > 40 and not small.fits(long)
    # room for max_new_tokens counts too
    n = len(small.encode(short))
    assert HFGenerator.from_pretrained_objects(model, tok, max_new_tokens=40 - n, max_context=40).fits(short)
    assert not HFGenerator.from_pretrained_objects(model, tok, max_new_tokens=41 - n, max_context=40).fits(
        short
    )


def test_load_from_path_and_errors(tiny_model_dir, tmp_path):
    gen = HFGenerator.from_pretrained(str(tiny_model_dir), dtype="float32", device="cpu", max_new_tokens=3)
    assert gen.model.dtype == torch.float32 and str(gen.model.device) == "cpu"
    assert len(gen.generate([GenerationRequest("Q: Who?"), GenerationRequest("A")])) == 2
    gen.close()
    with pytest.raises(SteperError, match="does not exist: .*nowhere"):
        HFGenerator.from_pretrained(str(tmp_path / "nowhere" / "model"))
    with pytest.raises(SteperError, match="config.json"):
        HFGenerator.from_pretrained(str(tmp_path))
    with pytest.raises(SteperError, match="dtype"):
        HFGenerator.from_pretrained(str(tiny_model_dir), dtype="float8")
    with pytest.raises(SteperError, match="cannot load model"):
        HFGenerator.from_pretrained("no-such-org/no-such-model")  # HF_HUB_OFFLINE=1 in the tests


def test_restores_training_mode(tiny):
    model, tok = tiny
    model.train()
    try:
        HFGenerator.from_pretrained_objects(model, tok, max_new_tokens=2).generate([REQUESTS[0]])
        assert model.training
    finally:
        model.eval()


def test_hand_written_greedy_matches_generate(tiny):
    """The hand-written greedy loop (rows dropped as they end, preallocated cache) gives what
    `model.generate` gives, batched or not, with stop strings ending rows at different steps."""
    model, tok = tiny
    free = HFGenerator.from_pretrained_objects(model, tok, stop=[], max_new_tokens=16).generate(REQUESTS)
    # stop strings that end some rows early and others not at all
    stops = sorted({t[len(t) // 2] for t in free if t[len(t) // 2 :].strip()} - {" "})[:2]
    assert stops
    outs = {}
    for fast in (True, False):
        for bs in (1, 5):
            gen = HFGenerator.from_pretrained_objects(
                model, tok, stop=stops, max_new_tokens=16, batch_size=bs
            )
            if not fast:
                gen._fast = False  # the transformers generate() path
            outs[fast, bs] = gen.generate(REQUESTS)
            assert gen._fast is fast
    assert outs[True, 1] == outs[True, 5] == outs[False, 1] == outs[False, 5]
    assert any(o != f for o, f in zip(outs[True, 5], free))  # some rows did stop early


def _step_requests(n_passages: int, prefix: str) -> list[GenerationRequest]:
    """Two questions' requests at one loop step: the passages so far, then the question."""
    from steper.data.schema import Paragraph, Question

    out = []
    for qid, name in (("q1", "Zorvak Telu"), ("q2", "Mirel Okana")):
        passages = [
            Paragraph(f"{name} {i}", f"{name} {i} was made in {1990 + i} by Irva Dole.") for i in range(n_passages)
        ]
        q = Question(qid=qid, question=f"Who made {name}?", answer="Irva Dole")
        out.append(GenerationRequest(prompts.build_prompt(q.question, passages), prefix, question=q))
    return out


def test_prompt_cache_reuses_the_previous_step_and_changes_nothing(tiny):
    """A question's next prompt starts with its previous one (passages accumulate before the question):
    the cached keys/values of that common prefix are reused, the outputs stay those of a full prefill,
    and only the questions of the last call stay cached."""
    model, tok = tiny
    steps = [_step_requests(2, ""), _step_requests(4, "So the"), _step_requests(6, "So the film")]
    cold = HFGenerator.from_pretrained_objects(model, tok, prompt_cache=False, stop=[], max_new_tokens=10)
    warm = HFGenerator.from_pretrained_objects(model, tok, stop=[], max_new_tokens=10, batch_size=1)
    for requests in steps:
        assert warm.generate(requests) == cold.generate(requests)
    assert cold.stats["reused_prompt_tokens"] == 0
    # each of steps 2 and 3 reuses exactly the tokens its prompt shares with the question's previous one
    ids = [[cold.encode(cold.render(r.prompt, r.prefix)) for r in requests] for requests in steps]

    def common(a: list[int], b: list[int]) -> int:
        return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))

    expected = sum(common(ids[k][q], ids[k + 1][q]) for k in range(2) for q in range(2))
    assert expected >= 4 * 30  # the passages so far: most of each prompt
    assert warm.stats["reused_prompt_tokens"] == expected
    assert set(warm._prompt_cache.entries) == {"q1", "q2"}
    warm.generate(steps[0][:1])  # q2 finished: only q1 is kept
    assert set(warm._prompt_cache.entries) == {"q1"}


def test_prompt_cache_ignores_a_changed_prompt(tiny):
    """A prompt that shares only its first tokens with the question's previous one (passages cut to fit)
    reuses nothing below the minimum; requests without a question are never cached."""
    model, tok = tiny
    gen = HFGenerator.from_pretrained_objects(model, tok, stop=[], max_new_tokens=4)
    first = _step_requests(2, "")
    gen.generate(first)
    from steper.data.schema import Question

    other = [GenerationRequest("Q: something else entirely", question=Question(qid="q1", question="?", answer="x"))]
    gen.generate(other + [GenerationRequest("no question")])
    assert gen.stats["reused_prompt_tokens"] == 0
    assert set(gen._prompt_cache.entries) == {"q1"}
    with pytest.raises(SteperError, match="prompt_cache"):
        HFGenerator.from_pretrained_objects(model, tok, prompt_cache="yes")


def test_a_row_ends_as_soon_as_its_request_is_settled(tiny):
    """`GenerationRequest.settled` ends a row early: its text is the full run's text cut where the test
    first held, the other rows are untouched, and fewer tokens are generated."""
    from dataclasses import replace

    model, tok = tiny
    gen = HFGenerator.from_pretrained_objects(model, tok, stop=[], max_new_tokens=16, batch_size=3)
    full = gen.generate(REQUESTS)
    n_full = gen.stats["generated_tokens"]

    def after(n: int):
        return lambda text: len(text) >= n

    early = [replace(r, settled=after(8)) if i % 2 == 0 else r for i, r in enumerate(REQUESTS)]
    got = gen.generate(early)
    for i, (a, b) in enumerate(zip(full, got)):
        if i % 2:
            assert b == a
        else:
            assert a.startswith(b) and len(b) >= 8 and len(b) < len(a)
    assert gen.stats["generated_tokens"] - n_full < n_full
