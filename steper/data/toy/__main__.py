"""`python -m steper.data.toy`: print sample questions of the toy world (and optionally write it)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from steper.constants import QUESTION_SPLITS
from steper.data.toy import make_world, world_fingerprint, write_world


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Print sample questions of the toy world (steper.data.toy).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=4, help="questions to print")
    ap.add_argument("--split", default="train", choices=list(QUESTION_SPLITS))
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
    main()
