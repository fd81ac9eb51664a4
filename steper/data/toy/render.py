"""The toy world in words: each entity's paragraph, its fact sentences, and question texts."""

from __future__ import annotations

from steper.data.toy.entities import Entity
from steper.data.toy.schema import COMBOS, REL, RELATIONS, START_NP


def fact_sentence(ents: list[Entity], e: Entity, rel: str) -> str:
    """The sentence stating `e`'s relation `rel`, exactly as in `e`'s paragraph."""
    o = ents[e.rel[rel]]
    if rel == "located_in" and e.attrs.get("is_capital"):
        return f"{e.name} is the capital of {o.name}."
    return REL[rel].fact.format(s=e.name, o=o.name)


def _an(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def paragraph_text(ents: list[Entity], e: Entity, style: str = "full") -> str:
    """Intro (with distractor attributes), the relational facts in schema order, then more
    distractors; style `facts` keeps the relational facts only (a third of the tokens: prompts that
    a CPU model reads fast)."""
    a, n = e.attrs, e.name
    facts = [fact_sentence(ents, e, r.name) for r in RELATIONS if r.subj == e.kind and r.name in e.rel]
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


def _start_np(e: Entity) -> str:
    return START_NP.get(e.kind, "{n}").format(n=e.name)


def question_text(start: Entity, path: tuple[str, ...]) -> str:
    nps = [_start_np(start)]  # nps[i] = the subject of relation i as a noun phrase
    for i, rel in enumerate(path):
        combo = COMBOS.get((path[i - 1], rel)) if i > 0 else None
        nps.append(combo[0].format(s=nps[i - 1]) if combo else REL[rel].np.format(s=nps[i]))
    combo = COMBOS.get((path[-2], path[-1])) if len(path) > 1 else None
    text = combo[1].format(s=nps[-3]) if combo else REL[path[-1]].ask.format(s=nps[-2])
    return text[0].upper() + text[1:]
