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

`evidence=gated` holds the later evidence back until its step (the situation of the paper's
Figure 1): a marriage is stated in one partner's paragraph only, and a walk is asked only if no
paragraph names two of its entities except each hop's own paragraph naming the next one
(`steper.data.toy.evidence`). Step 1 then retrieves no later hop's paragraph by name; each one is
found through the query of the previous hop's sentence. The default `open` is the first world.

Names are two made-up words, every word used by one entity only in a world and chosen so that the
English Snowball stemmer leaves it unchanged. A prototype measured why: with shared name parts
(first/last-name pools) BM25 on IRCoT's sentence queries found each step's gold paragraph only
68/39/25% of the time for 2/3/4 hops (top-2); with unique two-word names 98/98/97%.

Everything is drawn from `random.Random` seeded from `seed` (no `hash()`, no set order), so the
same arguments give byte-identical worlds, and different seeds give different names. The world
itself depends only on the seed (while the questions asked stay within the base world's capacity;
beyond that it grows, see `entities.world_scale`). Run `python -m steper.data.toy` to see sample
questions.

Modules: `schema` (kinds, relations, vocabulary), `names`, `entities` (generation), `render` (the
paragraphs and question texts), `questions` (drawing the questions), `evidence` (the gate and its
BM25 measure); this one builds and writes whole worlds.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from steper.constants import QUESTION_SPLITS
from steper.data.schema import Paragraph, Question
from steper.data.toy.entities import build_entities, world_scale
from steper.data.toy.questions import QuestionMaker
from steper.data.toy.render import paragraph_text
from steper.data.toy.schema import EVIDENCE_MODES, MAX_HOPS, MAX_SCALE, PARAGRAPH_STYLES, RELATIONS
from steper.errors import SteperError

__all__ = [
    "ToyWorld", "make_world", "world_fingerprint", "write_world", "RELATIONS", "MAX_HOPS", "EVIDENCE_MODES",
]  # fmt: skip


@dataclass
class ToyWorld:
    """A generated world: question splits and the corpus (one paragraph per entity)."""

    seed: int
    train: list[Question]
    dev: list[Question]
    test: list[Question]
    paragraphs: list[Paragraph]
    evidence: str = "open"  # how it was built (EVIDENCE_MODES); the rows above already differ by it

    def split(self, name: str) -> list[Question]:
        if name not in QUESTION_SPLITS:
            raise SteperError(f"toy world: unknown split {name!r}; use train, dev or test")
        return getattr(self, name)


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


def _scale_for(hs: list[int], counts: tuple[int, int, int], gated: bool = False) -> int:
    """The world's size (times the base) for `counts` questions per split over the hop counts `hs`."""
    per_hop = {h: 0 for h in hs}
    for n in counts:
        for i, h in enumerate(hs):
            per_hop[h] += len(range(i, n, len(hs)))
    scale = world_scale(per_hop, gated)
    if scale > MAX_SCALE:
        raise SteperError(
            f"toy world: {sum(counts)} questions over hops {hs} would need a world {scale}x the base size "
            f"(at most {MAX_SCALE}x). Ask for fewer questions (n_train/n_dev/n_test) or more hop counts"
        )
    return scale


def make_world(
    seed: int = 0,
    n_train: int = 400,
    n_dev: int = 50,
    n_test: int = 100,
    hops: Sequence[int] = (2, 3, 4),
    paragraphs: str = "full",
    evidence: str = "open",
) -> ToyWorld:
    """Build the toy world of `seed` with `n_train`/`n_dev`/`n_test` questions.

    `paragraphs`: `full` (facts among distractor sentences) or `facts` (the relational facts only;
    the same entities, names and questions, shorter passages).

    `evidence`: `open` (the first world) or `gated` (each fact in its subject's paragraph only, and
    only walks whose later hops' paragraphs the question cannot reach by name: the same names, other
    questions; `steper.data.toy.evidence`).

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
    if evidence not in EVIDENCE_MODES:
        raise SteperError(f"toy world: evidence must be one of {', '.join(EVIDENCE_MODES)}, got {evidence!r}")
    gated = evidence == "gated"
    scale = _scale_for(hs, (n_train, n_dev, n_test), gated)
    # The same seeds in both modes: at the same scale (the default sizes) a gated world has the open
    # world's names and entities, differing only in the marriages stated and the walks asked.
    ents = build_entities(random.Random(f"steper-toy-world-{seed}-{scale}"), scale, mutual_marriage=not gated)
    corpus = [
        Paragraph(title=e.name, text=paragraph_text(ents, e, paragraphs), pid=f"toy{seed}:{e.idx}")
        for e in ents
    ]
    maker = QuestionMaker(random.Random(f"steper-toy-questions-{seed}"), ents, corpus, gated=gated)
    splits: dict[str, list[Question]] = {}
    for split, n in zip(QUESTION_SPLITS, (n_train, n_dev, n_test)):
        splits[split] = [maker.question(f"toy{seed}-{split}-{i:05d}", hs[i % len(hs)]) for i in range(n)]
    return ToyWorld(seed=seed, paragraphs=corpus, evidence=evidence, **splits)


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
    paths = {name: out / f"{name}.jsonl" for name in ("corpus", *QUESTION_SPLITS)}
    write_jsonl(paths["corpus"], (p.to_dict() for p in world.paragraphs))
    for split in QUESTION_SPLITS:
        write_jsonl(paths[split], (q.to_dict() for q in world.split(split)))
    return paths
