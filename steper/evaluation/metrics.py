"""Answer metrics (docs/method.md §6): EM, F1 (HotpotQA's yes/no rule) and Acc, max over gold aliases.

All three compare SQuAD-normalized strings (`normalize_answer`). Metrics live in the `METRICS`
registry, `name -> fn(prediction, gold) -> float` on raw strings; `score` takes each one's max over
the gold aliases, so a new metric plugs in by adding it there.

Acc is containment: the normalized gold is a substring of the normalized prediction. It is a plain
substring test on the normalized strings, as in the paper and FlashRAG, so gold "paris" also counts
inside "parisian"; an empty normalized gold (e.g. "The") never counts.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterable

__all__ = ["METRICS", "aggregate", "extract_answer", "normalize_answer", "score"]

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPECIAL = ("yes", "no", "noanswer")


def normalize_answer(s: str) -> str:
    """SQuAD normalisation: lower-case, remove punctuation, remove articles a/an/the, collapse white space."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Token F1 on normalized strings; yes/no/noanswer on either side score only on an exact match (HotpotQA)."""
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if (pred in _SPECIAL or ref in _SPECIAL) and pred != ref:
        return 0.0
    pred_toks, ref_toks = pred.split(), ref.split()
    same = sum((Counter(pred_toks) & Counter(ref_toks)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_toks), same / len(ref_toks)
    return 2 * precision * recall / (precision + recall)


def accuracy(prediction: str, gold: str) -> float:
    """1 if the normalized gold (non-empty) is a substring of the normalized prediction."""
    ref = normalize_answer(gold)
    return float(bool(ref) and ref in normalize_answer(prediction))


METRICS: dict[str, Callable[[str, str], float]] = {"em": exact_match, "f1": f1, "acc": accuracy}


def score(prediction: str | None, golds: Iterable[str | None]) -> dict[str, float]:
    """Each metric of `METRICS`, max over the gold aliases: {"em", "f1", "acc"} in [0, 1].

    A None prediction, or one that normalizes to nothing, scores 0 everywhere; so does an empty
    list of golds.
    """
    golds = [g for g in golds if g is not None]
    if prediction is None or not normalize_answer(prediction) or not golds:
        return {name: 0.0 for name in METRICS}
    return {name: max(fn(prediction, g) for g in golds) for name, fn in METRICS.items()}


# IRCoT's `.* answer is:? (.*)\.?`, also matching Self-Ask's "So the final answer is: X".
_ANSWER_IS = re.compile(r"\banswer\s+is(?![\w'\u2019]):?", re.IGNORECASE)
_QUOTES = (('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"), ("`", "`"))


def extract_answer(text: str | None) -> str | None:
    """The answer after the LAST "answer is" / "answer is:" in `text`, up to the end of that line.

    Strips white space, a trailing period and wrapping quotes. None when `text` has no "answer is"
    or nothing follows it.
    """
    if not text:
        return None
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    ans = text[matches[-1].end() :].split("\n", 1)[0]
    prev = None
    while ans != prev:
        prev = ans
        ans = ans.strip()
        if ans.endswith("."):
            ans = ans[:-1]
        for left, right in _QUOTES:
            if len(ans) >= 2 and ans.startswith(left) and ans.endswith(right):
                ans = ans[1:-1]
    return ans or None


def aggregate(rows: list[dict]) -> dict[str, float]:
    """Means of the registered metrics over `rows`, ×100, plus `count` (rows lacking a metric are skipped for it)."""
    out: dict[str, float] = {}
    for name in METRICS:
        vals = [float(r[name]) for r in rows if r.get(name) is not None]
        out[name] = 100.0 * sum(vals) / len(vals) if vals else 0.0
    out["count"] = len(rows)
    return out
