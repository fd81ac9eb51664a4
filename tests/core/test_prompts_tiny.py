"""Prompt layout (docs/method.md §3) and the tiny model builder."""

from __future__ import annotations

from steper.data.schema import Paragraph
from steper.reasoning.prompts import build_prompt, continuation, fit_passages, render

PASSAGES = [
    Paragraph("Zorvak Telu", "Zorvak Telu is a film directed by Mirel Okana."),
    Paragraph("B", "beta gamma"),
]


def test_prompt_layout_matches_ircot():
    p = build_prompt("Who directed Zorvak Telu?", PASSAGES)
    assert p == (
        "Wikipedia Title: Zorvak Telu\nZorvak Telu is a film directed by Mirel Okana.\n\n"
        "Wikipedia Title: B\nbeta gamma\n\n"
        "Q: Answer the following question by reasoning step-by-step.\nWho directed Zorvak Telu?"
    )
    assert render(p, "").endswith("Who directed Zorvak Telu?\nA:")
    assert render(p, "r1.") + continuation("r2.", "r1.") == render(p, "r1. r2.")


def test_fit_passages_cuts_passages_never_question():
    question = "Who directed Zorvak Telu?"
    limit = len(build_prompt(question, PASSAGES)) - 12
    prompt, kept = fit_passages(question, PASSAGES, lambda s: len(s) <= limit)
    assert len(prompt) <= limit
    assert prompt.endswith(question)
    assert [p.title for p in kept] == ["Zorvak Telu", "B"]
    assert kept[0].text.startswith("Zorvak Telu is")
    # Nothing fits but the question: every passage goes, the question stays.
    prompt, kept = fit_passages(question, PASSAGES, lambda s: len(s) <= 90)
    assert kept == [] and prompt.endswith(question)


def test_tiny_model_builds_and_is_cached(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from steper.distill.tiny import load_or_build_tiny

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    text = "Mirel Okana was born in Dresavo Pint."
    assert tok.decode(tok(text)["input_ids"]) == text
    assert model.config.vocab_size == len(tok)
    stamp = (tiny_model_dir / "config.json").stat().st_mtime_ns
    from tests.conftest import TINY_TEXTS

    again = load_or_build_tiny(
        tiny_model_dir.parent, lambda: TINY_TEXTS, vocab_size=512, hidden_size=64, num_layers=2
    )
    assert again == tiny_model_dir and (again / "config.json").stat().st_mtime_ns == stamp
