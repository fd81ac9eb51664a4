"""The entities of the toy world and their relations and attributes, drawn from one seeded `random.Random`.

The order of the draws is part of the world: changing it changes every world of every seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from steper.data.toy.names import Names
from steper.data.toy.schema import (
    BASE_COUNTS,
    BOOK_GENRES,
    CITY_FEATURES,
    CONTINENTS,
    COUNTRY_FEATURES,
    FILM_GENRES,
    INDUSTRIES,
    KINDS,
    OCCUPATIONS,
    REGIONS,
)


@dataclass
class Entity:
    idx: int
    kind: str
    name: str
    rel: dict[str, int] = field(default_factory=dict)  # relation name -> object entity index
    attrs: dict[str, object] = field(default_factory=dict)


# Distinct (start entity, path) pairs the base world holds per hop count (measured, rounded down).
# A world is built `scale` times the base so that each hop count uses at most half of them.
_BASE_CAPACITY = {1: 1900, 2: 3300, 3: 4500, 4: 5200, 5: 5200, 6: 5000}
# The gated world keeps fewer walks (`walk_is_gated`: long walks more often meet a paragraph naming
# two of their entities); measured the same way, the lowest of seeds 0-2, rounded down.
_GATED_CAPACITY = {1: 1750, 2: 2550, 3: 2900, 4: 2350, 5: 1700, 6: 1000}


def world_scale(per_hop: dict[int, int], gated: bool = False) -> int:
    """How many times the base world's entity counts are needed for `per_hop` questions."""
    capacity = _GATED_CAPACITY if gated else _BASE_CAPACITY
    return max([1] + [math.ceil(n / (capacity[h] // 2)) for h, n in per_hop.items()])


# The works of the world: (their creator's relation and role, the company relation, the creator's
# age at the work (lo, hi), genres, a size attribute (name, lo, hi, unit)).
_WORKS = {
    "film": ("directed_by", "film director", "produced_by", (24, 60), FILM_GENRES, ("minutes", 78, 190, 1)),
    "book": ("written_by", "writer", "published_by", (20, 65), BOOK_GENRES, ("pages", 12, 90, 10)),
}


def build_entities(rng: random.Random, scale: int, mutual_marriage: bool = True) -> list[Entity]:
    """The entities of a world `scale` times the base counts, related and described (draws in a fixed order).

    `mutual_marriage=False` (the gated world) records each marriage on one partner only, so only that
    partner's paragraph names the other; it changes no draw, so names and every other relation stay
    those of the open world of the same seed.
    """
    names = Names(rng)
    ents: list[Entity] = []
    of: dict[str, list[int]] = {}
    for kind in KINDS:
        of[kind] = []
        for _ in range(BASE_COUNTS[kind] * scale):
            e = Entity(idx=len(ents), kind=kind, name=names.new())
            ents.append(e)
            of[kind].append(e.idx)
    _places(rng, ents, of)
    _persons(rng, ents, of, mutual_marriage)
    _companies(rng, ents, of)
    for kind in ("film", "book"):
        _works(rng, ents, of, kind)
    for p in of["person"]:
        if not ents[p].attrs["roles"]:
            ents[p].attrs["roles"].append(rng.choice(OCCUPATIONS))
    return ents


def _places(rng: random.Random, ents: list[Entity], of: dict[str, list[int]]) -> None:
    """Countries, cities (the first one of each country is its capital) and universities."""
    countries, cities = of["country"], of["city"]
    for c in countries:
        ents[c].attrs.update(
            region=rng.choice(REGIONS),
            continent=rng.choice(CONTINENTS),
            population=rng.randint(2, 90),
            feature=rng.choice(COUNTRY_FEATURES),
        )
    for i, c in enumerate(cities):
        country = countries[i] if i < len(countries) else rng.choice(countries)
        ents[c].rel["located_in"] = country
        if i < len(countries):
            ents[country].rel["capital"] = c
            ents[c].attrs["is_capital"] = True
        ents[c].attrs.update(population=rng.randint(20, 2500) * 1000, feature=rng.choice(CITY_FEATURES))
    for u in of["university"]:
        ents[u].rel["campus_in"] = rng.choice(cities)
        ents[u].attrs.update(
            founded=rng.randint(1450, 1990), public=rng.random() < 0.7, students=rng.randint(20, 450) * 100
        )


def _persons(rng: random.Random, ents: list[Entity], of: dict[str, list[int]], mutual_marriage: bool) -> None:
    """Birthplaces, universities, and spouses (60% of persons, in pairs; both paragraphs state it,
    or with `mutual_marriage=False` only the first partner's, so the second's is no back-reference)."""
    persons = of["person"]
    for p in persons:
        ents[p].rel["born_in"] = rng.choice(of["city"])
        ents[p].attrs.update(born=rng.randint(1900, 1985), children=rng.randint(0, 5), roles=[])
        if rng.random() < 0.7:
            ents[p].rel["educated_at"] = rng.choice(of["university"])
    order = list(persons)
    rng.shuffle(order)
    n_married = int(len(order) * 0.6) // 2 * 2
    for a, b in zip(order[0:n_married:2], order[1:n_married:2]):
        ents[a].rel["married_to"] = b
        if mutual_marriage:
            ents[b].rel["married_to"] = a


def _pick_person(rng: random.Random, ents: list[Entity], pool: list[int], role: str) -> int:
    p = rng.choice(pool)
    if role not in ents[p].attrs["roles"]:
        ents[p].attrs["roles"].append(role)
    return p


def _companies(rng: random.Random, ents: list[Entity], of: dict[str, list[int]]) -> None:
    """Each company's founder (a person of its own) and headquarters; then who works where."""
    persons, companies = of["person"], of["company"]
    founders = rng.sample(persons, len(companies))
    for c, p in zip(companies, founders):
        _pick_person(rng, ents, [p], "entrepreneur")
        ents[c].rel["founded_by"] = p
        ents[c].rel["headquartered_in"] = rng.choice(of["city"])
        ents[c].attrs.update(
            industry=rng.choice(INDUSTRIES),
            founded=min(2020, ents[p].attrs["born"] + rng.randint(22, 50)),
            employees=rng.randint(1, 400) * 50,
        )
    for p in persons:
        if rng.random() < 0.5:
            c = rng.choice(companies)
            if ents[c].rel["founded_by"] != p:
                ents[p].rel["works_for"] = c


def _works(rng: random.Random, ents: list[Entity], of: dict[str, list[int]], kind: str) -> None:
    """Films or books: a creator among half as many persons as works, a company, year, genre, size."""
    creator_rel, role, company_rel, (age_lo, age_hi), genres, (size, lo, hi, unit) = _WORKS[kind]
    works = of[kind]
    creators = rng.sample(of["person"], max(1, len(works) // 2))
    for w in works:
        creator = _pick_person(rng, ents, creators, role)
        ents[w].rel[creator_rel] = creator
        ents[w].rel[company_rel] = rng.choice(of["company"])
        ents[w].attrs.update(
            year=min(2023, ents[creator].attrs["born"] + rng.randint(age_lo, age_hi)),
            genre=rng.choice(genres),
        )
        ents[w].attrs[size] = rng.randint(lo, hi) * unit
