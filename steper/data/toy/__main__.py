"""`python -m steper.data.toy`: print sample questions of the toy world (and optionally write it).

`--evidence gated` shows the gated world; `--measure` adds what steper's BM25 retrieves with the
loop's queries (`steper.data.toy.evidence.bm25_evidence`), the number that tells the worlds apart.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from steper.constants import QUESTION_SPLITS
from steper.data.toy import ToyWorld, make_world, world_fingerprint, write_world
from steper.data.toy.schema import EVIDENCE_MODES, PARAGRAPH_STYLES


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Print sample questions of the toy world (steper.data.toy).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=4, help="questions to print")
    ap.add_argument("--split", default="train", choices=list(QUESTION_SPLITS))
    ap.add_argument("--paragraphs", default="full", choices=list(PARAGRAPH_STYLES))
    ap.add_argument(
        "--evidence", default="open", choices=list(EVIDENCE_MODES),
        help="open: the first world; gated: each hop's paragraph reachable only through the previous hop",
    )  # fmt: skip
    ap.add_argument(
        "--measure", action="store_true",
        help="also measure BM25 (top-2 and top-4) with the loop's queries on all questions",
    )  # fmt: skip
    ap.add_argument("--out", default=None, help="also write corpus/train/dev/test JSONL files here")
    args = ap.parse_args(argv)
    world = make_world(seed=args.seed, paragraphs=args.paragraphs, evidence=args.evidence)
    n_q = len(world.train) + len(world.dev) + len(world.test)
    print(f"toy world seed={world.seed} evidence={world.evidence} paragraphs={args.paragraphs}: "
          f"{len(world.paragraphs)} paragraphs, {n_q} questions, fingerprint {world_fingerprint(world)}")  # fmt: skip
    by_title = {p.title: p for p in world.paragraphs}
    for q in world.split(args.split)[: args.show]:
        print(f"\n[{q.qid}] ({q.hops} hops, {q.qtype})\nQ: {q.question}")
        for step in q.chain:
            print(f"   {step.sentence:<60} <- {step.title!r}  (sub-Q: {step.question})")
        print(f"A: {q.answer}")
        # Where the start entity's name occurs: what step 1 can reach by name.
        start = q.chain[0].title
        named = [p.title for p in world.paragraphs if start in p.text and p.title != start]
        later = [s.title for s in q.chain[1:] if s.title in named]
        print(f"   the start entity is also named in {len(named)} other paragraph(s)"
              + (f", of them later hops' {later}" if later else ", none of a later hop"))  # fmt: skip
    if args.show:
        first = world.split(args.split)[0].chain[0].title
        print(f"\nWikipedia Title: {first}\n{by_title[first].text}")
    if args.measure:
        _measure(world)
    if args.out:
        for name, path in write_world(world, args.out).items():
            print(f"wrote {name}: {path}")


def _measure(world: ToyWorld) -> None:
    from steper.data.toy.evidence import bm25_evidence
    from steper.retrieval import BM25Retriever

    retriever = BM25Retriever.build(world.paragraphs)
    qs = world.train + world.dev + world.test
    print(f"\nBM25 with the loop's queries over all {len(qs)} questions:")
    for k in (2, 4):
        m = bm25_evidence(qs, retriever, k)
        print(f"  top-{k}: step 1 finds a hop>=2 gold paragraph {m['step1_later']:.1%}, hop 1's "
              f"{m['step1_hop1']:.1%}; a chain sentence's query finds the next hop's {m['next_hop']:.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
