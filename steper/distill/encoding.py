"""Step-wise rows → token ids, rendered exactly as the student meets them in the loop.

This is the one place a step-wise row becomes text: the input is
`render(build_prompt(question, passages, demos), prefix, tokenizer, chat)`, the trained part
`continuation(target, prefix, chat)`, followed by EOS where generation ends (`eos_after`)
(`loss_on_prefix=True` moves the reasoning prefix into the trained part, docs/method.md §1).

`eos_after=final` (default) ends only the answer step ("So the answer is: …", and the vanilla
chain) with EOS. A first or mid step r_s gets none: the loop cuts each generation at its first
sentence anyway, and an EOS after r_s would teach "stop after r_s" in the very context where the
step-(s+1) example teaches "go on with r_{s+1}" (the two inputs differ only by the passages
retrieved in between). Measured on the pretrained demo student, EOS after every step made it stop
at step 2 with an empty sentence on most questions. `eos_after=every` restores it.

An example longer than `max_length` loses passage words (never the question, the prefix or the
target; `prompts.fit_passages` on the row's structured passages); one that does not fit even
without passages is dropped and counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from steper.constants import ANSWER_TASKS, TASK_IDS
from steper.data.schema import Paragraph
from steper.reasoning.prompts import build_prompt, continuation, fit_passages, render

EOS_AFTER = ("final", "every")


def encode_input(tokenizer, texts: str | list[str], chat: bool):
    """Token ids of rendered model inputs, as the loop must encode them too: a chat template's
    text already holds its special tokens; plain text gets the tokenizer's own (e.g. a BOS)."""
    return tokenizer(texts, add_special_tokens=not chat)["input_ids"]


def row_passages(row: dict) -> list[Paragraph]:
    return [Paragraph(p["title"], p["text"]) for p in row["passages"]]


def row_prompt(row: dict, passages: Sequence[Paragraph] | None = None) -> str:
    """The prompt proper of a step-wise row (its own passages unless `passages` is given)."""
    return build_prompt(row["question"], row_passages(row) if passages is None else passages, row["demos"])


def row_text(row: dict) -> str:
    """A row's plain-text input + target (e.g. to train the tiny tokenizer)."""
    return render(row_prompt(row), row["prefix"]) + continuation(row["target"], row["prefix"])


@dataclass
class Encoded:
    """The token ids of a list of rows: item i = (ids, number of input tokens, task id); `dropped` rows
    did not fit even without passages (`shortest` = the fewest tokens one of them needed)."""

    ids: list[np.ndarray] = field(default_factory=list)
    n_input: list[int] = field(default_factory=list)
    tasks: list[int] = field(default_factory=list)
    dropped: int = 0
    truncated: int = 0
    shortest: float = math.inf


@dataclass
class RowEncoder:
    """Tokenizes step-wise rows for one tokenizer and chat setting (see the module doc)."""

    tokenizer: Any
    chat: bool
    max_length: int
    loss_on_prefix: bool = False
    eos_after: str = "final"
    chunk: int = 1024  # rows tokenized per call

    def texts(self, row: dict, prompt: str | None = None) -> tuple[str, str]:
        """(model input, trained continuation) of a row, with `prompt` in place of its own if given."""
        prompt = row_prompt(row) if prompt is None else prompt
        prefix, target = row["prefix"], row["target"]
        if self.loss_on_prefix:
            trained = f"{prefix} {target}" if prefix else target
            return render(prompt, "", self.tokenizer, self.chat), continuation(trained, "", self.chat)
        return render(prompt, prefix, self.tokenizer, self.chat), continuation(target, prefix, self.chat)

    def input_ids(self, row: dict, prompt: str) -> list[int]:
        return encode_input(self.tokenizer, [self.texts(row, prompt)[0]], self.chat)[0]

    def shrink(self, row: dict, budget: int) -> tuple[list[int] | None, int]:
        """Input ids of the row with passages cut to fit `budget` tokens, or None; and the input
        length with no passage at all."""
        question, demos = row["question"], row["demos"]

        def fits(prompt: str) -> bool:
            return len(self.input_ids(row, prompt)) <= budget

        prompt, _ = fit_passages(question, row_passages(row), fits, demos)
        ids = self.input_ids(row, prompt)
        if len(ids) <= budget:
            return ids, len(ids)
        return None, len(self.input_ids(row, build_prompt(question, [], demos)))

    def encode(self, rows: Sequence[dict]) -> Encoded:
        out = Encoded()
        eos = self.tokenizer.eos_token_id
        for start in range(0, len(rows), self.chunk):
            part = rows[start : start + self.chunk]
            pairs = [self.texts(r) for r in part]
            inputs = encode_input(self.tokenizer, [p[0] for p in pairs], self.chat)
            targets = self.tokenizer([p[1] for p in pairs], add_special_tokens=False)["input_ids"]
            for row, inp, tgt in zip(part, inputs, targets):
                if self.eos_after == "every" or row["task"] in ANSWER_TASKS:
                    tgt = [*tgt, eos]
                if len(inp) + len(tgt) > self.max_length:
                    inp, bare = self.shrink(row, self.max_length - len(tgt))
                    if inp is None:
                        out.dropped += 1
                        out.shortest = min(out.shortest, bare + len(tgt))
                        continue
                    out.truncated += 1
                out.ids.append(np.asarray([*inp, *tgt], dtype=np.int32))
                out.n_input.append(len(inp))
                out.tasks.append(TASK_IDS[row["task"]])
        return out
