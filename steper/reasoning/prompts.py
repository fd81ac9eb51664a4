"""The prompt layout shared by the teacher loop, the student loop and the training data (docs/method.md §3).

A prompt has two parts:
- the *prompt* proper (the "user" part): optional few-shot demonstrations, the passages as
  `Wikipedia Title: <title>\\n<text>` separated by blank lines, then
  `Q: Answer the following question by reasoning step-by-step.\\n<question>`;
- the *prefix*: the reasoning so far, r_1 … r_{s-1}, joined by spaces.

`render` turns both into the exact model input, either as plain text (`...\\nA: r_1 r_2`) or
through the tokenizer's chat template (prompt as the user turn, prefix opening the assistant turn).
Training (the DataModule) and inference (the generators) call the same `render` and
`continuation`, so a student sees at training time exactly the text it sees in the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from steper.data.schema import Paragraph

INSTRUCTION = "Answer the following question by reasoning step-by-step."


def format_passage(p: Paragraph) -> str:
    return f"Wikipedia Title: {p.title}\n{p.text}" if p.text else f"Wikipedia Title: {p.title}"


def build_prompt(question: str, passages: Sequence[Paragraph], demos: str = "") -> str:
    """The user part: demonstrations, passages, then the question line."""
    parts = [demos.strip()] if demos and demos.strip() else []
    parts.extend(format_passage(p) for p in passages)
    parts.append(f"Q: {INSTRUCTION}\n{question}")
    return "\n\n".join(parts)


def render(prompt: str, prefix: str = "", tokenizer=None, chat: bool = False) -> str:
    """The model input for a prompt and the reasoning so far; the next sentence continues it."""
    if chat:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("chat=True needs a tokenizer with a chat template")
        head = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        return head + prefix
    return f"{prompt}\nA:" + (f" {prefix}" if prefix else "")


def continuation(target: str, prefix: str = "", chat: bool = False) -> str:
    """The target text as it follows `render(prompt, prefix)`: a space joins it, except at the
    very start of a chat assistant turn."""
    if chat and not prefix:
        return target
    return f" {target}"


def uses_chat(tokenizer, setting: str | bool = "auto") -> bool:
    """Whether to use the chat template: `auto` = when the tokenizer has one."""
    if isinstance(setting, bool):
        return setting
    if setting == "auto":
        return bool(getattr(tokenizer, "chat_template", None))
    return setting in ("true", "on", "yes", "1")


def fit_passages(
    question: str,
    passages: Sequence[Paragraph],
    fits: Callable[[str], bool],
    demos: str = "",
) -> tuple[str, list[Paragraph]]:
    """Build the largest prompt that `fits`, cutting passages, never the question.

    Passages keep their titles; their texts are cut to a common word budget (found by binary
    search), so every passage keeps its head. If even titles alone do not fit, the earliest
    passages are dropped. Returns the prompt and the passages as they went in: none when the
    question (with the demonstrations and the prefix) leaves no room for any passage, which the
    loop counts and warns about once per run.
    """
    full = build_prompt(question, passages, demos)
    if fits(full) or not passages:
        return full, list(passages)

    def cut(words: int) -> list[Paragraph]:
        return [Paragraph(p.title, " ".join(p.text.split()[:words]), p.is_supporting, p.pid) for p in passages]

    lo, hi = 0, max(len(p.text.split()) for p in passages)
    best: int | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(build_prompt(question, cut(mid), demos)):
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    if best is not None:
        kept = cut(best)
        return build_prompt(question, kept, demos), kept
    kept = cut(0)
    while kept:
        kept = kept[1:]
        prompt = build_prompt(question, kept, demos)
        if fits(prompt):
            return prompt, kept
    return build_prompt(question, [], demos), []
