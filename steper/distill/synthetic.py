"""A synthetic step-wise set in generate_data's row format (`STEPWISE_FIELDS`), with no teacher and no retrieval.

3-step chains (film → director → birth city): a `first`, a `mid` and a `final` example per
question, plus the `vanilla` view when asked. Passages carry 0..N filler words so lengths vary.
For smoke tests, benchmarks and checking a training setup before real teacher data exists.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from steper.distill.stepwise import STEPWISE_FIELDS

FIRST = ["Arlo", "Bren", "Cato", "Dara", "Elin", "Faro", "Gwen", "Hale", "Ivo", "Juno", "Kai", "Lumi"]
LAST = ["Marsh", "North", "Oak", "Pike", "Quill", "Reed", "Stone", "Thorn", "Vale", "Wren"]
CITIES = ["Ashford", "Brill", "Corran", "Dunmore", "Elmswick", "Fairhold", "Glenby", "Harrow"]
FILLER = "the river runs by old mills and green fields where farmers grow wheat barley and oats".split()
STEP = {"first": 1, "mid": 2, "final": 3, "vanilla": 3}


def synthetic_stepwise_rows(
    n_questions: int,
    seed: int = 0,
    filler: tuple[int, int] = (0, 12),
    tasks: Sequence[str] = ("first", "mid", "final", "vanilla"),
) -> list[dict]:
    """Step-wise rows (`STEPWISE_FIELDS`) for `n_questions` questions."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_questions):
        film = f"{rng.choice(FIRST)} {rng.choice(LAST)} Story"
        director, city = f"{rng.choice(FIRST)} {rng.choice(LAST)}", rng.choice(CITIES)

        def pad() -> str:
            return " ".join(rng.choice(FILLER) for _ in range(rng.randint(*filler)))

        p1 = {"title": film, "text": f"{film} is a film directed by {director}. {pad()}".strip()}
        p2 = {"title": director, "text": f"{director} is a director born in {city}. {pad()}".strip()}
        q = f"Where was the director of {film} born?"
        chain = [
            f"{film} was directed by {director}.",
            f"{director} was born in {city}.",
            f"So the answer is: {city}.",
        ]
        by_task = {
            "first": ([p1], "", chain[0]),
            "mid": ([p1, p2], chain[0], chain[1]),
            "final": ([p1, p2], " ".join(chain[:2]), chain[2]),
            "vanilla": ([p1, p2], "", " ".join(chain)),
        }
        for task in tasks:
            passages, prefix, target = by_task[task]
            values = (f"q{i}", task, STEP[task], q, [dict(p) for p in passages], "", prefix, target)
            rows.append(dict(zip(STEPWISE_FIELDS, values)))
    return rows
