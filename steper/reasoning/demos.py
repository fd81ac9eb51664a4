"""Few-shot demonstrations for the teacher (the student gets none, docs/method.md §3).

Real datasets: hand-written data files `steper/reasoning/demos/<dataset>_<framework>.txt` in
IRCoT's layout (passages as `Wikipedia Title: …`, the question line, then `A:` with the chain
ending "So the answer is: X." — or, for Self-Ask, "Follow up: … Intermediate answer: … So the
final answer is: X."), demonstrations separated by two blank lines.

The toy world: demonstrations are built from a few training questions' gold chains and supporting
paragraphs (`toy_demos`), in the same layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from steper.constants import FRAMEWORKS
from steper.data.schema import Question
from steper.errors import SteperError
from steper.reasoning.prompts import build_prompt

DEMO_DIR = Path(__file__).resolve().parent / "demos"
SEPARATOR = "\n\n\n"
# Dataset names (or their prefixes) → the demo file family.
_FAMILIES = ("hotpot", "2wiki", "musique")


def _family(dataset_name: str) -> str | None:
    name = dataset_name.lower()
    for fam in _FAMILIES:
        if name == fam or name.startswith(fam):
            return fam
    return None


def demo_blocks(text: str) -> list[str]:
    """Split a demo file into its demonstrations (separated by two or more blank lines)."""
    blocks: list[str] = []
    for chunk in text.replace("\r\n", "\n").split(SEPARATOR):
        chunk = chunk.strip("\n")
        if chunk.strip():
            blocks.append(chunk.strip())
    return blocks


def chain_answer(q: Question, framework: str = "ircot") -> str:
    """The `A:` text of a question's gold chain in the framework's layout."""
    if framework == "ircot":
        return " ".join([*(c.sentence for c in q.chain), f"So the answer is: {q.answer}."])
    parts = []
    for c in q.chain:
        if c.question is None or c.answer is None:
            raise SteperError(
                f"question {q.qid}: a Self-Ask demo needs chain steps with .question and .answer"
            )
        parts += [f"Follow up: {c.question}", f"Intermediate answer: {c.answer}."]
    parts.append(f"So the final answer is: {q.answer}.")
    return " ".join(parts)


def toy_demos(questions: Sequence[Question], n: int, framework: str = "ircot") -> list[str]:
    """`n` demonstrations from `questions` (the first of each hop count first, so the demos show
    chains of different lengths), each with its supporting paragraphs in chain order."""
    usable = [q for q in questions if q.chain and q.supporting_titles]
    picked: list[Question] = []
    seen_hops: set = set()
    for q in usable:
        if len(picked) < n and q.hops not in seen_hops:
            picked.append(q)
            seen_hops.add(q.hops)
    for q in usable:
        if len(picked) >= n:
            break
        if q not in picked:
            picked.append(q)
    blocks = []
    for q in picked:
        by_title = {p.title: p for p in q.contexts if p.is_supporting}
        order = [c.title for c in q.chain if c.title in by_title]
        order += [t for t in by_title if t not in order]
        passages = [by_title[t] for t in dict.fromkeys(order)]
        blocks.append(f"{build_prompt(q.question, passages)}\nA: {chain_answer(q, framework)}")
    return blocks


def load_demos(
    dataset_name: str,
    framework: str = "ircot",
    n: int = 3,
    questions: Sequence[Question] | None = None,
) -> str:
    """The teacher's demonstrations as one text block ("" when n == 0).

    Real datasets read `demos/<dataset>_<framework>.txt` (at most the `n` first); the toy world
    (or any dataset without a demo file, when `questions` are given) builds them from `questions`.
    """
    if framework not in FRAMEWORKS:
        raise SteperError(
            f"unknown framework {framework!r} for demonstrations: use one of {', '.join(FRAMEWORKS)}"
        )
    if n <= 0:
        return ""
    family = _family(dataset_name)
    if family is not None:
        path = DEMO_DIR / f"{family}_{framework}.txt"
        if not path.is_file():
            raise SteperError(f"demonstration file missing: {path}")
        blocks = demo_blocks(path.read_text(encoding="utf-8"))[:n]
    elif questions:
        blocks = toy_demos(questions, n, framework)
    else:
        have = sorted(p.stem for p in DEMO_DIR.glob("*.txt"))
        raise SteperError(
            f"no demonstrations for dataset {dataset_name!r}: the toy world builds them from training "
            f"questions (pass questions=...), real datasets read {DEMO_DIR}/<name>_<framework>.txt "
            f"(have: {', '.join(have)}); or set framework.n_demos=0"
        )
    return SEPARATOR.join(blocks)
