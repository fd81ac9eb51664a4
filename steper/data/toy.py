"""The toy world: a seeded synthetic encyclopedia with multi-hop questions and gold reasoning chains.

`make_world(seed)` builds a small invented world -- countries, cities, universities, persons,
companies, films and books -- linked by functional relations (a film is *directed by* a person, a
person is *born in* a city, a city is *located in* a country, a country has a *capital*, ...).
Every entity gets one short paragraph (title = its name) that states its facts in plain sentences,
plus distractor facts (years, populations, genres, sizes) so paragraphs are not trivially short.

Questions follow relation paths of 1..6 hops, e.g. film -> director -> birth city -> country:

    In which country was the director of the film Zorvak Telu born?
      Zorvak Telu was directed by Mirel Okana.      (paragraph "Zorvak Telu")
      Mirel Okana was born in Tesh Dovar.           (paragraph "Mirel Okana")
      Tesh Dovar is a city in Vorn Kela.            (paragraph "Tesh Dovar")   -> answer: Vorn Kela

Each chain step copies the fact sentence exactly as its paragraph states it, and names the next
entity, so IRCoT's sentence-as-query retrieval finds the next paragraph; the question names the
start entity, so BM25 on the question finds the first one.

Names are two made-up words, every word used by one entity only in a world and chosen so that the
English Snowball stemmer leaves it unchanged. A prototype measured why: with shared name parts
(first/last-name pools) BM25 on IRCoT's sentence queries found each step's gold paragraph only
68/39/25% of the time for 2/3/4 hops (top-2); with unique two-word names 98/98/97%.

Everything is drawn from `random.Random` seeded from `seed` (no `hash()`, no set order), so the
same arguments give byte-identical worlds, and different seeds give different names. The world
itself depends only on the seed (while the questions asked stay within the base world's capacity;
beyond that it grows, see `_scale`). Run `python -m steper.data.toy` to see sample questions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from steper.data.schema import ChainStep, Paragraph, Question
from steper.errors import SteperError

__all__ = ["ToyWorld", "make_world", "world_fingerprint", "write_world", "RELATIONS", "MAX_HOPS"]

# ---------------------------------------------------------------------------------------------
# The schema of the world
# ---------------------------------------------------------------------------------------------

KINDS = ("country", "city", "university", "person", "company", "film", "book")

# Entity counts of the base world (934 paragraphs). Larger requests scale every count (`_scale`).
BASE_COUNTS = {
    "country": 24,
    "city": 160,
    "university": 40,
    "person": 360,
    "company": 100,
    "film": 140,
    "book": 110,
}
MAX_SCALE = 20  # the world never grows beyond 20x the base (~19k paragraphs)
MAX_HOPS = 6
PARAGRAPH_STYLES = ("full", "facts")
N_DISTRACTORS = 4  # non-supporting paragraphs in each question's `contexts` (2 related + random)

# How the start entity is named in a question ("the film Zorvak Telu").
_START_NP = {"film": "the film {n}", "book": "the novel {n}", "company": "the company {n}"}


@dataclass(frozen=True)
class Relation:
    """A functional relation subj -> obj and how to say it.

    `fact`: the sentence in the subject's paragraph (and the chain sentence);
    `np`: the object as a noun phrase of the subject ("the director of {s}");
    `ask`: the question whose answer is the object ("Who directed {s}?").
    """

    name: str
    subj: str
    obj: str
    short: str
    fact: str
    np: str
    ask: str


RELATIONS: tuple[Relation, ...] = (
    Relation("directed_by", "film", "person", "director", "{s} was directed by {o}.", "the director of {s}", "Who directed {s}?"),
    Relation("produced_by", "film", "company", "producer", "{s} was produced by {o}.", "the company that produced {s}", "Which company produced {s}?"),
    Relation("written_by", "book", "person", "author", "{s} was written by {o}.", "the author of {s}", "Who wrote {s}?"),
    Relation("published_by", "book", "company", "publisher", "{s} was published by {o}.", "the publisher of {s}", "Which company published {s}?"),
    Relation("founded_by", "company", "person", "founder", "{s} was founded by {o}.", "the founder of {s}", "Who founded {s}?"),
    Relation("headquartered_in", "company", "city", "headquarters", "{s} is headquartered in {o}.", "the city where {s} is headquartered", "In which city is {s} headquartered?"),
    Relation("born_in", "person", "city", "birthplace", "{s} was born in {o}.", "the birthplace of {s}", "In which city was {s} born?"),
    Relation("married_to", "person", "person", "spouse", "{s} is married to {o}.", "the spouse of {s}", "Who is {s} married to?"),
    Relation("educated_at", "person", "university", "university", "{s} studied at {o}.", "the university where {s} studied", "At which university did {s} study?"),
    Relation("works_for", "person", "company", "employer", "{s} works for {o}.", "the employer of {s}", "Which company does {s} work for?"),
    Relation("campus_in", "university", "city", "city", "{s} is located in {o}.", "the city where {s} is located", "In which city is {s} located?"),
    # A capital city states "{s} is the capital of {o}." instead (see `_fact`).
    Relation("located_in", "city", "country", "country", "{s} is a city in {o}.", "the country in which {s} lies", "In which country is {s}?"),
    Relation("capital", "country", "city", "capital", "The capital of {s} is {o}.", "the capital of {s}", "What is the capital of {s}?"),
)  # fmt: skip
_REL = {r.name: r for r in RELATIONS}

# Two relations in a row that read better as one phrase; {s} = the subject of the first one.
_COMBOS = {
    ("born_in", "located_in"): ("the country where {s} was born", "In which country was {s} born?"),
    ("headquartered_in", "located_in"): ("the country where {s} is headquartered", "In which country is {s} headquartered?"),
    ("campus_in", "located_in"): ("the country where {s} is located", "In which country is {s} located?"),
}  # fmt: skip

# Paths that always come back to where they started: never generated.
_FORBIDDEN_PAIRS = {("married_to", "married_to"), ("capital", "located_in")}

# Distractor attributes (comma-separated lists).
_FILM_GENRES = "drama,comedy,thriller,western,musical,documentary,science fiction,horror,romance,war".split(",")  # fmt: skip
_BOOK_GENRES = "mystery,historical,adventure,fantasy,crime,satirical,gothic,coming-of-age".split(",")
_INDUSTRIES = (
    "software,shipping,mining,textile,publishing,brewing,insurance,aerospace,media,railway,"
    "pharmaceutical,furniture"
).split(",")
_OCCUPATIONS = (
    "engineer,painter,physician,lawyer,architect,teacher,chemist,journalist,composer,diplomat"
).split(",")
_CITY_FEATURES = (
    "old harbour,stone bridges,spring festival,botanical garden,textile mills,cathedral,"
    "night market,glass workshops,hot springs,river port"
).split(",")
_COUNTRY_FEATURES = (
    "mountain railways,coffee plantations,long coastline,salt lakes,folk music,river deltas,"
    "wool trade,vineyards"
).split(",")
_REGIONS = "northern,southern,eastern,western,central".split(",")
_CONTINENTS = (
    "the northern continent,the southern continent,the eastern archipelago,the western highlands"
).split(",")

# ---------------------------------------------------------------------------------------------
# Names: two made-up words per entity, each word used once per world
# ---------------------------------------------------------------------------------------------

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
    for np, q in _COMBOS.values():
        texts += [np, q]
    texts += _FILM_GENRES + _BOOK_GENRES + _INDUSTRIES + _OCCUPATIONS + _CITY_FEATURES + _COUNTRY_FEATURES
    texts += _REGIONS + _CONTINENTS + list(_START_NP.values())
    texts += [
        "born is a an the film director and writer entrepreneur novel published in has pages book runs",
        "minutes running time company founded employs about people city population known for its country",
        "million public private university students located capital children shot weeks awards won",
        "then than that this with from into onto upon over under very many much most more only also",
    ]
    return {w for t in texts for w in re.findall(r"[a-z]+", t.lower())}


_RESERVED = _template_vocab()


class _Names:
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


# ---------------------------------------------------------------------------------------------
# Building the world
# ---------------------------------------------------------------------------------------------


@dataclass
class _Entity:
    idx: int
    kind: str
    name: str
    rel: dict[str, int] = field(default_factory=dict)  # relation name -> object entity index
    attrs: dict[str, object] = field(default_factory=dict)


@dataclass
class ToyWorld:
    """A generated world: question splits and the corpus (one paragraph per entity)."""

    seed: int
    train: list[Question]
    dev: list[Question]
    test: list[Question]
    paragraphs: list[Paragraph]

    def split(self, name: str) -> list[Question]:
        if name not in ("train", "dev", "test"):
            raise SteperError(f"toy world: unknown split {name!r}; use train, dev or test")
        return getattr(self, name)

    def fingerprint(self) -> str:
        return world_fingerprint(self)


# Distinct (start entity, path) pairs the base world holds per hop count (measured, rounded down).
# A world is built `scale` times the base so that each hop count uses at most half of them.
_BASE_CAPACITY = {1: 1900, 2: 3300, 3: 4500, 4: 5200, 5: 5200, 6: 5000}


def _scale(per_hop: dict[int, int]) -> int:
    """How many times the base world's entity counts are needed for `per_hop` questions."""
    return max([1] + [math.ceil(n / (_BASE_CAPACITY[h] // 2)) for h, n in per_hop.items()])


def _build_entities(rng: random.Random, scale: int) -> list[_Entity]:
    names = _Names(rng)
    ents: list[_Entity] = []
    of: dict[str, list[int]] = {}
    for kind in KINDS:
        of[kind] = []
        for _ in range(BASE_COUNTS[kind] * scale):
            e = _Entity(idx=len(ents), kind=kind, name=names.new())
            ents.append(e)
            of[kind].append(e.idx)

    countries, cities, unis = of["country"], of["city"], of["university"]
    persons, companies, films, books = of["person"], of["company"], of["film"], of["book"]

    for c in countries:
        ents[c].attrs.update(
            region=rng.choice(_REGIONS),
            continent=rng.choice(_CONTINENTS),
            population=rng.randint(2, 90),
            feature=rng.choice(_COUNTRY_FEATURES),
        )
    # Cities: the first one of each country is its capital; the rest spread at random.
    for i, c in enumerate(cities):
        country = countries[i] if i < len(countries) else rng.choice(countries)
        ents[c].rel["located_in"] = country
        if i < len(countries):
            ents[country].rel["capital"] = c
            ents[c].attrs["is_capital"] = True
        ents[c].attrs.update(population=rng.randint(20, 2500) * 1000, feature=rng.choice(_CITY_FEATURES))
    for u in unis:
        ents[u].rel["campus_in"] = rng.choice(cities)
        ents[u].attrs.update(
            founded=rng.randint(1450, 1990), public=rng.random() < 0.7, students=rng.randint(20, 450) * 100
        )
    for p in persons:
        ents[p].rel["born_in"] = rng.choice(cities)
        ents[p].attrs.update(born=rng.randint(1900, 1985), children=rng.randint(0, 5), roles=[])
        if rng.random() < 0.7:
            ents[p].rel["educated_at"] = rng.choice(unis)
    # Spouses: 60% of persons, in pairs; both paragraphs state the marriage.
    order = list(persons)
    rng.shuffle(order)
    n_married = int(len(order) * 0.6) // 2 * 2
    for a, b in zip(order[0:n_married:2], order[1:n_married:2]):
        ents[a].rel["married_to"] = b
        ents[b].rel["married_to"] = a

    def pick_person(pool: list[int], role: str) -> int:
        p = rng.choice(pool)
        if role not in ents[p].attrs["roles"]:
            ents[p].attrs["roles"].append(role)
        return p

    founders = rng.sample(persons, len(companies))
    for c, p in zip(companies, founders):
        pick_person([p], "entrepreneur")
        ents[c].rel["founded_by"] = p
        ents[c].rel["headquartered_in"] = rng.choice(cities)
        ents[c].attrs.update(
            industry=rng.choice(_INDUSTRIES),
            founded=min(2020, ents[p].attrs["born"] + rng.randint(22, 50)),
            employees=rng.randint(1, 400) * 50,
        )
    for p in persons:
        if rng.random() < 0.5:
            c = rng.choice(companies)
            if ents[c].rel["founded_by"] != p:
                ents[p].rel["works_for"] = c
    directors = rng.sample(persons, max(1, len(films) // 2))
    for f in films:
        d = pick_person(directors, "film director")
        ents[f].rel["directed_by"] = d
        ents[f].rel["produced_by"] = rng.choice(companies)
        ents[f].attrs.update(
            year=min(2023, ents[d].attrs["born"] + rng.randint(24, 60)),
            genre=rng.choice(_FILM_GENRES),
            minutes=rng.randint(78, 190),
        )
    authors = rng.sample(persons, max(1, len(books) // 2))
    for b in books:
        a = pick_person(authors, "writer")
        ents[b].rel["written_by"] = a
        ents[b].rel["published_by"] = rng.choice(companies)
        ents[b].attrs.update(
            year=min(2023, ents[a].attrs["born"] + rng.randint(20, 65)),
            genre=rng.choice(_BOOK_GENRES),
            pages=rng.randint(12, 90) * 10,
        )
    for p in persons:
        if not ents[p].attrs["roles"]:
            ents[p].attrs["roles"].append(rng.choice(_OCCUPATIONS))
    return ents


def _fact(ents: list[_Entity], e: _Entity, rel: str) -> str:
    """The sentence stating `e`'s relation `rel`, exactly as in `e`'s paragraph."""
    o = ents[e.rel[rel]]
    if rel == "located_in" and e.attrs.get("is_capital"):
        return f"{e.name} is the capital of {o.name}."
    return _REL[rel].fact.format(s=e.name, o=o.name)


def _an(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _paragraph_text(ents: list[_Entity], e: _Entity, style: str = "full") -> str:
    """Intro (with distractor attributes), the relational facts in schema order, then more
    distractors; style `facts` keeps the relational facts only (a third of the tokens: prompts that
    a CPU model reads fast)."""
    a, n = e.attrs, e.name
    facts = [_fact(ents, e, r.name) for r in RELATIONS if r.subj == e.kind and r.name in e.rel]
    if style == "facts":
        return " ".join(facts) or f"{n} is {_an(e.kind)}."
    if e.kind == "country":
        head = [f"{n} is a country in the {a['region']} part of {a['continent']}."]
        tail = [
            f"{n} has a population of about {a['population']} million.",
            f"{n} is known for its {a['feature']}.",
        ]
    elif e.kind == "city":
        head = []
        tail = [
            f"{n} has a population of about {a['population']:,}.",
            f"The city is known for its {a['feature']}.",
        ]
    elif e.kind == "university":
        kind = "public" if a["public"] else "private"
        head = [f"{n} is a {kind} university founded in {a['founded']}."]
        tail = [f"{n} has about {a['students']:,} students."]
    elif e.kind == "person":
        head = [f"{n} (born {a['born']}) is {_an(' and '.join(a['roles']))}."]
        kids = a["children"]
        tail = [
            f"{n} has {kids} {'child' if kids == 1 else 'children'}." if kids else f"{n} has no children."
        ]
    elif e.kind == "company":
        head = [f"{n} is {_an(a['industry'])} company founded in {a['founded']}."]
        tail = [f"The company employs about {a['employees']:,} people."]
    elif e.kind == "film":
        head = [f"{n} is a {a['year']} {a['genre']} film."]
        tail = [f"The film has a running time of {a['minutes']} minutes."]
    else:  # book
        head = [f"{n} is {_an(a['genre'])} novel published in {a['year']}."]
        tail = [f"The book has {a['pages']} pages."]
    return " ".join(head + facts + tail)


# ---------------------------------------------------------------------------------------------
# Questions
# ---------------------------------------------------------------------------------------------


def _path_templates(hops: int) -> list[tuple[str, ...]]:
    """Every relation path of `hops` relations (type-level), in a fixed order."""
    out: list[tuple[str, ...]] = []

    def grow(path: tuple[str, ...], kind: str) -> None:
        if len(path) == hops:
            out.append(path)
            return
        for r in RELATIONS:
            if r.subj == kind and not (path and (path[-1], r.name) in _FORBIDDEN_PAIRS):
                grow(path + (r.name,), r.obj)

    for kind in KINDS:
        grow((), kind)
    return out


def _start_np(e: _Entity) -> str:
    return _START_NP.get(e.kind, "{n}").format(n=e.name)


def _question_text(start: _Entity, path: tuple[str, ...]) -> str:
    nps = [_start_np(start)]  # nps[i] = the subject of relation i as a noun phrase
    for i, rel in enumerate(path):
        combo = _COMBOS.get((path[i - 1], rel)) if i > 0 else None
        nps.append(combo[0].format(s=nps[i - 1]) if combo else _REL[rel].np.format(s=nps[i]))
    combo = _COMBOS.get((path[-2], path[-1])) if len(path) > 1 else None
    text = combo[1].format(s=nps[-3]) if combo else _REL[path[-1]].ask.format(s=nps[-2])
    return text[0].upper() + text[1:]


def _walk(ents: list[_Entity], start: int, path: tuple[str, ...]) -> list[int] | None:
    """The entities along `path` from `start`; None if a relation is missing or an entity repeats."""
    seen = [start]
    cur = start
    for rel in path:
        nxt = ents[cur].rel.get(rel)
        if nxt is None or nxt in seen:
            return None
        seen.append(nxt)
        cur = nxt
    return seen


class _QuestionMaker:
    """Draws distinct (start entity, relation path) pairs, hop count by hop count.

    A draw picks a start kind, then a path template of that kind, uniformly among those not used
    up. Per path template the start entities are shuffled once and consumed in order, so no pair is
    ever drawn twice (splits are disjoint by construction) and the draw always terminates.
    """

    def __init__(self, rng: random.Random, ents: list[_Entity], paragraphs: list[Paragraph], seed: int):
        self.rng, self.ents, self.paragraphs, self.seed = rng, ents, paragraphs, seed
        self.active: dict[int, list[tuple[str, ...]]] = {}
        self.queue: dict[tuple[str, ...], list[int]] = {}
        self.texts: set[str] = set()  # membership only
        self.of_kind: dict[str, list[int]] = {k: [e.idx for e in ents if e.kind == k] for k in KINDS}
        # mentions[i] = paragraphs (other than i's own) that name entity i, in index order
        self.mentions: list[list[int]] = [[] for _ in ents]
        for e in ents:
            for r in RELATIONS:
                if r.subj == e.kind and r.name in e.rel:
                    self.mentions[e.rel[r.name]].append(e.idx)

    def draw(self, hops: int) -> tuple[int, tuple[str, ...], list[int]]:
        if hops not in self.active:
            self.active[hops] = _path_templates(hops)
        active = self.active[hops]
        while active:
            # Balance start kinds first (persons would dominate otherwise), then paths of that kind.
            kinds = [k for k in KINDS if any(_REL[t[0]].subj == k for t in active)]
            kind = self.rng.choice(kinds)
            t = self.rng.choice([t for t in active if _REL[t[0]].subj == kind])
            if t not in self.queue:
                q = list(self.of_kind[_REL[t[0]].subj])
                self.rng.shuffle(q)
                self.queue[t] = q
            q = self.queue[t]
            while q:
                start = q.pop()
                walk = _walk(self.ents, start, t)
                if walk is None:
                    continue
                text = _question_text(self.ents[start], t)
                if text in self.texts:  # pragma: no cover - (start, path) already determines the text
                    continue
                self.texts.add(text)
                return start, t, walk
            active.remove(t)
        raise SteperError(
            f"toy world: cannot make that many distinct {hops}-hop questions (every start entity and "
            f"relation path of {hops} hops is used up). Ask for fewer questions (n_train/n_dev/n_test), "
            f"or spread them over more hop counts (hops: 1..{MAX_HOPS}) so the world holds enough entities"
        )

    def question(self, qid: str, hops: int) -> Question:
        start, path, walk = self.draw(hops)
        ents = self.ents
        chain = []
        for i, rel in enumerate(path):
            s, o = ents[walk[i]], ents[walk[i + 1]]
            chain.append(
                ChainStep(
                    sentence=_fact(ents, s, rel),
                    title=s.name,
                    question=_REL[rel].ask.format(s=s.name),
                    answer=o.name,
                    triple=[s.name, rel, o.name],
                )
            )
        support = walk[:-1]
        # Distractors: up to 2 related paragraphs (naming an entity of the chain), the rest random.
        related: list[int] = []
        for i in walk:
            for j in [i, *self.mentions[i]]:
                if j not in support and j not in related:
                    related.append(j)
        distract = self.rng.sample(related, min(2, len(related)))
        while len(distract) < N_DISTRACTORS:
            j = self.rng.randrange(len(ents))
            if j not in support and j not in distract:
                distract.append(j)
        contexts = [self._copy(i, True) for i in support] + [self._copy(i, False) for i in distract]
        self.rng.shuffle(contexts)
        qtype = "-".join([ents[start].kind] + [_REL[r].short for r in path])
        return Question(
            qid=qid,
            question=_question_text(ents[start], path),
            answer=ents[walk[-1]].name,
            aliases=[],
            contexts=contexts,
            hops=hops,
            qtype=qtype,
            chain=chain,
            dataset="toy",
        )

    def _copy(self, i: int, supporting: bool) -> Paragraph:
        p = self.paragraphs[i]
        return Paragraph(title=p.title, text=p.text, is_supporting=supporting, pid=p.pid)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def _check_args(seed: int, n_train: int, n_dev: int, n_test: int, hops: Sequence[int]) -> list[int]:
    for name, v in (("seed", seed), ("n_train", n_train), ("n_dev", n_dev), ("n_test", n_test)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise SteperError(f"toy world: {name} must be an integer, got {v!r}")
        if name != "seed" and v < 0:
            raise SteperError(f"toy world: {name} must be >= 0, got {v}")
    try:
        hs = [int(h) for h in hops]
    except (TypeError, ValueError):
        raise SteperError(f"toy world: hops must be a list of integers, got {hops!r}") from None
    if not hs:
        raise SteperError("toy world: hops is empty; give at least one hop count, e.g. [2, 3, 4]")
    bad = [h for h in hs if not 1 <= h <= MAX_HOPS]
    if bad:
        raise SteperError(f"toy world: hop counts must lie in 1..{MAX_HOPS}, got {bad}; e.g. hops: [2, 3, 4]")
    return list(dict.fromkeys(hs))  # deduplicated, order kept


def make_world(
    seed: int = 0,
    n_train: int = 400,
    n_dev: int = 50,
    n_test: int = 100,
    hops: Sequence[int] = (2, 3, 4),
    paragraphs: str = "full",
) -> ToyWorld:
    """Build the toy world of `seed` with `n_train`/`n_dev`/`n_test` questions.

    `paragraphs`: `full` (facts among distractor sentences) or `facts` (the relational facts only;
    the same entities, names and questions, shorter passages).

    Within a split, question i has `hops[i % len(hops)]` hops. No (start entity, relation path)
    pair, hence no question text, occurs twice across all splits. The corpus is `paragraphs`, one
    per entity, pid `toy{seed}:{i}`. Raises SteperError on bad arguments or when the world cannot
    supply that many distinct questions.
    """
    hs = _check_args(seed, n_train, n_dev, n_test, hops)
    if paragraphs not in PARAGRAPH_STYLES:
        raise SteperError(
            f"toy world: paragraphs must be one of {', '.join(PARAGRAPH_STYLES)}, got {paragraphs!r}"
        )
    total = n_train + n_dev + n_test
    per_hop = {h: 0 for h in hs}
    for n in (n_train, n_dev, n_test):
        for i, h in enumerate(hs):
            per_hop[h] += len(range(i, n, len(hs)))
    scale = _scale(per_hop)
    if scale > MAX_SCALE:
        raise SteperError(
            f"toy world: {total} questions over hops {hs} would need a world {scale}x the base size "
            f"(at most {MAX_SCALE}x). Ask for fewer questions (n_train/n_dev/n_test) or more hop counts"
        )
    ents = _build_entities(random.Random(f"steper-toy-world-{seed}-{scale}"), scale)
    paragraphs = [
        Paragraph(title=e.name, text=_paragraph_text(ents, e, paragraphs), pid=f"toy{seed}:{e.idx}")
        for e in ents
    ]
    maker = _QuestionMaker(random.Random(f"steper-toy-questions-{seed}"), ents, paragraphs, seed)
    splits: dict[str, list[Question]] = {}
    for split, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        splits[split] = [maker.question(f"toy{seed}-{split}-{i:05d}", hs[i % len(hs)]) for i in range(n)]
    return ToyWorld(seed=seed, paragraphs=paragraphs, **splits)


def world_fingerprint(world: ToyWorld) -> str:
    """A short sha256 of the whole world (paragraphs and all splits): equal iff byte-identical."""
    h = hashlib.sha256()
    for rows in (world.paragraphs, world.train, world.dev, world.test):
        h.update(json.dumps([r.to_dict() for r in rows], sort_keys=True, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:16]


def write_world(world: ToyWorld, out_dir: str | Path) -> dict[str, Path]:
    """Write `corpus.jsonl` (Paragraph rows) and `train/dev/test.jsonl` (Question rows) to `out_dir`."""
    from steper.io import write_jsonl

    out = Path(out_dir)
    paths = {name: out / f"{name}.jsonl" for name in ("corpus", "train", "dev", "test")}
    write_jsonl(paths["corpus"], (p.to_dict() for p in world.paragraphs))
    for split in ("train", "dev", "test"):
        write_jsonl(paths[split], (q.to_dict() for q in world.split(split)))
    return paths


def _main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Print sample questions of the toy world (steper.data.toy).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=4, help="questions to print")
    ap.add_argument("--split", default="train", choices=["train", "dev", "test"])
    ap.add_argument("--out", default=None, help="also write corpus/train/dev/test JSONL files here")
    args = ap.parse_args(argv)
    world = make_world(seed=args.seed)
    n_q = len(world.train) + len(world.dev) + len(world.test)
    print(f"toy world seed={world.seed}: {len(world.paragraphs)} paragraphs, {n_q} questions, "
          f"fingerprint {world_fingerprint(world)}")  # fmt: skip
    by_title = {p.title: p for p in world.paragraphs}
    for q in world.split(args.split)[: args.show]:
        print(f"\n[{q.qid}] ({q.hops} hops, {q.qtype})\nQ: {q.question}")
        for step in q.chain:
            print(f"   {step.sentence:<60} <- {step.title!r}  (sub-Q: {step.question})")
        print(f"A: {q.answer}")
    if args.show:
        first = world.split(args.split)[0].chain[0].title
        print(f"\nWikipedia Title: {first}\n{by_title[first].text}")
    if args.out:
        for name, path in write_world(world, args.out).items():
            print(f"wrote {name}: {path}")


if __name__ == "__main__":
    _main()
