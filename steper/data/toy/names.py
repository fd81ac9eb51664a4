"""Names of the toy world: two made-up words per entity, each word used once per world.

A word never ends the way the English Snowball stemmer would strip, and is never a word the
generator writes otherwise, so BM25 sees every name word as its own term.
"""

from __future__ import annotations

import random
import re

from steper.data.toy.schema import (
    BOOK_GENRES,
    CITY_FEATURES,
    COMBOS,
    CONTINENTS,
    COUNTRY_FEATURES,
    FILM_GENRES,
    INDUSTRIES,
    OCCUPATIONS,
    REGIONS,
    RELATIONS,
    START_NP,
)
from steper.errors import SteperError

_ONSETS = "b d f g h j k l m n p r t v z br dr gr kr tr th sh st".split()
_VOWELS = "a e i o u a o".split()
_CODAS = "n r k m l x".split()
# Endings the English Snowball stemmer would strip: a stem must never merge two names' words.
_BAD_ENDINGS = (
    "e", "y", "s", "ed", "ing", "ly", "er", "al", "ic", "ant", "ent", "ism", "ate", "iti", "ive", "ize",
    "ion", "ful", "li", "ous", "ment", "ness", "ator", "ogi", "eed", "abl", "ibl", "anc", "enc", "ll",
)  # fmt: skip


def _template_vocab() -> set[str]:
    """Every word the generator writes besides names: a name word must not be one of them."""
    texts: list[str] = []
    for r in RELATIONS:
        texts += [r.fact, r.np, r.ask, r.short]
    for np, q in COMBOS.values():
        texts += [np, q]
    texts += FILM_GENRES + BOOK_GENRES + INDUSTRIES + OCCUPATIONS + CITY_FEATURES + COUNTRY_FEATURES
    texts += REGIONS + CONTINENTS + list(START_NP.values())
    texts += [
        "born is a an the film director and writer entrepreneur novel published in has pages book runs",
        "minutes running time company founded employs about people city population known for its country",
        "million public private university students located capital children shot weeks awards won",
        "then than that this with from into onto upon over under very many much most more only also",
    ]
    return {w for t in texts for w in re.findall(r"[a-z]+", t.lower())}


_RESERVED = _template_vocab()


class Names:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()  # membership only, never iterated

    def _word(self, syllables: int) -> str:
        rng = self.rng
        for _ in range(10_000):
            w = ""
            for _ in range(syllables):
                w += rng.choice(_ONSETS) + rng.choice(_VOWELS)
                if rng.random() < 0.3:
                    w += rng.choice(_CODAS)
            if w.endswith(_BAD_ENDINGS) or w in _RESERVED or w in self.used:
                continue
            self.used.add(w)
            return w.capitalize()
        raise SteperError("toy world: ran out of made-up names; ask for fewer questions")  # pragma: no cover

    def new(self) -> str:
        return f"{self._word(2)} {self._word(self.rng.choice((2, 2, 3)))}"
