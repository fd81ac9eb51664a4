"""Questions of the toy world: distinct (start entity, relation path) pairs, walked into chains."""

from __future__ import annotations

import random

from steper.data.schema import ChainStep, Paragraph, Question
from steper.data.toy.entities import Entity
from steper.data.toy.evidence import walk_is_gated
from steper.data.toy.render import fact_sentence, question_text
from steper.data.toy.schema import FORBIDDEN_PAIRS, KINDS, MAX_HOPS, N_DISTRACTORS, REL, RELATIONS
from steper.errors import SteperError


def _path_templates(hops: int) -> list[tuple[str, ...]]:
    """Every relation path of `hops` relations (type-level), in a fixed order."""
    out: list[tuple[str, ...]] = []

    def grow(path: tuple[str, ...], kind: str) -> None:
        if len(path) == hops:
            out.append(path)
            return
        for r in RELATIONS:
            if r.subj == kind and not (path and (path[-1], r.name) in FORBIDDEN_PAIRS):
                grow(path + (r.name,), r.obj)

    for kind in KINDS:
        grow((), kind)
    return out


def _walk(ents: list[Entity], start: int, path: tuple[str, ...]) -> list[int] | None:
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


class QuestionMaker:
    """Draws distinct (start entity, relation path) pairs, hop count by hop count.

    A draw picks a start kind, then a path template of that kind, uniformly among those not used
    up. Per path template the start entities are shuffled once and consumed in order, so no pair is
    ever drawn twice (splits are disjoint by construction) and the draw always terminates.

    `gated`: skip walks that fail `walk_is_gated` (the gated world). The skip draws nothing from
    `rng`, and with `gated=False` nothing is skipped, so the open world's questions stay as they were.
    """

    def __init__(
        self, rng: random.Random, ents: list[Entity], paragraphs: list[Paragraph], gated: bool = False
    ):
        self.rng, self.ents, self.paragraphs, self.gated = rng, ents, paragraphs, gated
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
            kinds = [k for k in KINDS if any(REL[t[0]].subj == k for t in active)]
            kind = self.rng.choice(kinds)
            t = self.rng.choice([t for t in active if REL[t[0]].subj == kind])
            if t not in self.queue:
                q = list(self.of_kind[REL[t[0]].subj])
                self.rng.shuffle(q)
                self.queue[t] = q
            q = self.queue[t]
            while q:
                start = q.pop()
                walk = _walk(self.ents, start, t)
                if walk is None or (self.gated and not walk_is_gated(walk, self.mentions)):
                    continue
                text = question_text(self.ents[start], t)
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
                    sentence=fact_sentence(ents, s, rel),
                    title=s.name,
                    question=REL[rel].ask.format(s=s.name),
                    answer=o.name,
                    triple=[s.name, rel, o.name],
                )
            )
        return Question(
            qid=qid,
            question=question_text(ents[start], path),
            answer=ents[walk[-1]].name,
            aliases=[],
            contexts=self._contexts(walk),
            hops=hops,
            qtype="-".join([ents[start].kind] + [REL[r].short for r in path]),
            chain=chain,
            dataset="toy",
        )

    def _contexts(self, walk: list[int]) -> list[Paragraph]:
        """The supporting paragraphs of a walk and `N_DISTRACTORS` others, shuffled: up to 2 related
        ones (naming an entity of the chain), the rest random."""
        support = walk[:-1]
        related: list[int] = []
        for i in walk:
            for j in [i, *self.mentions[i]]:
                if j not in support and j not in related:
                    related.append(j)
        distract = self.rng.sample(related, min(2, len(related)))
        while len(distract) < N_DISTRACTORS:
            j = self.rng.randrange(len(self.ents))
            if j not in support and j not in distract:
                distract.append(j)
        contexts = [self._copy(i, True) for i in support] + [self._copy(i, False) for i in distract]
        self.rng.shuffle(contexts)
        return contexts

    def _copy(self, i: int, supporting: bool) -> Paragraph:
        p = self.paragraphs[i]
        return Paragraph(title=p.title, text=p.text, is_supporting=supporting, pid=p.pid)
