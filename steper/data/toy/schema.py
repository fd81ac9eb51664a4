"""The schema of the toy world: its entity kinds and counts, its relations and how to say them,
and the vocabulary of its distractor attributes."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("country", "city", "university", "person", "company", "film", "book")

# Entity counts of the base world (934 paragraphs). Larger requests scale every count (`world_scale`).
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
# How evidence reaches the loop (`make_world(evidence=...)`, `dataset.evidence`): `open` is the first
# world (spouses state their marriage in both paragraphs; any walk is a question); `gated` states
# every fact in its subject's paragraph only and keeps the walks whose paragraphs name no other walk
# entity than the next one, so each hop's paragraph is reachable only through the previous hop's
# bridge entity (steper.data.toy.evidence).
EVIDENCE_MODES = ("open", "gated")
N_DISTRACTORS = 4  # non-supporting paragraphs in each question's `contexts` (2 related + random)

# How the start entity is named in a question ("the film Zorvak Telu").
START_NP = {"film": "the film {n}", "book": "the novel {n}", "company": "the company {n}"}


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


def _relations(table: str) -> tuple[Relation, ...]:
    """Relations from a text table, one a line, cells separated by "|" (in `Relation`'s field order)."""
    rows = [line.split("|") for line in table.strip().splitlines()]
    return tuple(Relation(*(cell.strip() for cell in row)) for row in rows)


# name | subject kind | object kind | short | fact | noun phrase | question
# A capital city states "{s} is the capital of {o}." instead of `located_in`'s fact (see `fact_sentence`).
RELATIONS: tuple[Relation, ...] = _relations("""
directed_by      | film       | person     | director     | {s} was directed by {o}.     | the director of {s}                 | Who directed {s}?
produced_by      | film       | company    | producer     | {s} was produced by {o}.     | the company that produced {s}       | Which company produced {s}?
written_by       | book       | person     | author       | {s} was written by {o}.      | the author of {s}                   | Who wrote {s}?
published_by     | book       | company    | publisher    | {s} was published by {o}.    | the publisher of {s}                | Which company published {s}?
founded_by       | company    | person     | founder      | {s} was founded by {o}.      | the founder of {s}                  | Who founded {s}?
headquartered_in | company    | city       | headquarters | {s} is headquartered in {o}. | the city where {s} is headquartered | In which city is {s} headquartered?
born_in          | person     | city       | birthplace   | {s} was born in {o}.         | the birthplace of {s}               | In which city was {s} born?
married_to       | person     | person     | spouse       | {s} is married to {o}.       | the spouse of {s}                   | Who is {s} married to?
educated_at      | person     | university | university   | {s} studied at {o}.          | the university where {s} studied    | At which university did {s} study?
works_for        | person     | company    | employer     | {s} works for {o}.           | the employer of {s}                 | Which company does {s} work for?
campus_in        | university | city       | city         | {s} is located in {o}.       | the city where {s} is located       | In which city is {s} located?
located_in       | city       | country    | country      | {s} is a city in {o}.        | the country in which {s} lies       | In which country is {s}?
capital          | country    | city       | capital      | The capital of {s} is {o}.   | the capital of {s}                  | What is the capital of {s}?
""")
REL = {r.name: r for r in RELATIONS}

# Two relations in a row that read better as one phrase; {s} = the subject of the first one.
COMBOS = {
    ("born_in", "located_in"): ("the country where {s} was born", "In which country was {s} born?"),
    ("headquartered_in", "located_in"): ("the country where {s} is headquartered", "In which country is {s} headquartered?"),
    ("campus_in", "located_in"): ("the country where {s} is located", "In which country is {s} located?"),
}  # fmt: skip

# Paths that always come back to where they started: never generated.
FORBIDDEN_PAIRS = {("married_to", "married_to"), ("capital", "located_in")}

# Distractor attributes (comma-separated lists).
FILM_GENRES = "drama,comedy,thriller,western,musical,documentary,science fiction,horror,romance,war".split(",")  # fmt: skip
BOOK_GENRES = "mystery,historical,adventure,fantasy,crime,satirical,gothic,coming-of-age".split(",")
INDUSTRIES = (
    "software,shipping,mining,textile,publishing,brewing,insurance,aerospace,media,railway,"
    "pharmaceutical,furniture"
).split(",")
OCCUPATIONS = (
    "engineer,painter,physician,lawyer,architect,teacher,chemist,journalist,composer,diplomat"
).split(",")
CITY_FEATURES = (
    "old harbour,stone bridges,spring festival,botanical garden,textile mills,cathedral,"
    "night market,glass workshops,hot springs,river port"
).split(",")
COUNTRY_FEATURES = (
    "mountain railways,coffee plantations,long coastline,salt lakes,folk music,river deltas,"
    "wool trade,vineyards"
).split(",")
REGIONS = "northern,southern,eastern,western,central".split(",")
CONTINENTS = (
    "the northern continent,the southern continent,the eastern archipelago,the western highlands"
).split(",")
