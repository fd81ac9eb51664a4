"""`unit_settled`: a generation may stop as soon as no continuation can change the unit the loop keeps."""

from __future__ import annotations

import random

import pytest

from steper.reasoning.ircot import IRCOT
from steper.reasoning.selfask import SELFASK
from steper.reasoning.sentences import first_sentence, first_sentence_settled

# pieces a generation is written from: sentence ends, abbreviations, initials, connectives, quotes,
# lower/upper starts, line breaks, a decimal, a character that lower-cases
PIECES = [
    "Dr.", "U.S.", "J.", "St.", "approx.", "So", "so", "the", "The", "film", "Paris", ".", "!", "?", "...",
    " ", " ", " ", "\n", '"', ")", "3.5", "Émile", "é", ",", "answer is:", "Zorvak",
]  # fmt: skip


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 14))) for _ in range(n)]


@pytest.mark.parametrize("framework", [IRCOT, SELFASK], ids=["ircot", "selfask"])
def test_a_settled_prefix_keeps_the_unit_of_every_continuation(framework):
    settled_somewhere = 0
    for text in _texts(4000):
        for cut in range(len(text) + 1):
            head = text[:cut]
            if framework.unit_settled(head):
                assert framework.unit(head) == framework.unit(text), (head, text)
                settled_somewhere += 1
    assert settled_somewhere > 1000  # the rule fires often enough to have teeth


@pytest.mark.parametrize(
    ("text", "settled"),
    [
        ("Zorvak Telu was directed by Mirel Okana.", False),  # the next character decides
        ("Zorvak Telu was directed by Mirel Okana. ", False),
        ("Zorvak Telu was directed by Mirel Okana. M", True),
        ("Zorvak Telu was directed by Mirel Okana. so", False),  # a lower-case start is no new sentence...
        ("Okana was born in the U.S. So", False),  # ...and after an abbreviation the whole next word decides
        ("Okana was born in the U.S. So ", True),
        ("Okana was born in the U.S. Sophie", False),
        ("Okana was born in the U.S. Sophie ", False),  # not a connective: the sentence goes on
        ("one line\nmore", True),
        ("\nleading blank lines do not count", False),
    ],
)
def test_settled_cases(text, settled):
    assert first_sentence_settled(text) is settled
    if settled:
        assert first_sentence(text + " x. Y") == first_sentence(text)


def test_selfask_settles_at_a_written_marker():
    assert not SELFASK.unit_settled("Follow up: Who directed Zorvak Telu?")
    assert SELFASK.unit_settled("Follow up: Who directed Zorvak Telu? Intermediate answer:")
    assert SELFASK.unit_settled("Follow up: Who?\n")
