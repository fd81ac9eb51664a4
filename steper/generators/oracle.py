"""The oracle teacher: writes the gold reasoning chain, one sentence per step, no model.

For step s < len(chain) it returns `chain[s].sentence` — but only when the paragraph that step
rests on (`chain[s].title`) is among the passages the loop has retrieved so far (title match,
case-insensitive; a step without a title counts as found). Otherwise it could not know the fact
from what it was shown, and it says so: "So the answer is: unknown." After the chain
(s >= len(chain)) it writes "So the answer is: <gold answer>.". A question without a chain is
answered directly at step 0.

So the oracle answers right exactly when retrieval found every step's gold paragraph in time:
its accuracy measures the retrieval half of the loop, and its traces are well-formed
step-wise data on any dataset that has chains (the toy world, 2Wiki evidences, MuSiQue
decompositions). It is instant; `render`/`fits` still work (plain rendering, always fits).
"""

from __future__ import annotations

import time
from typing import Any

from steper.errors import SteperError
from steper.generators.base import GenerationRequest, Generator, pick
from steper.reasoning.trace import norm_title

UNKNOWN = "So the answer is: unknown."


class OracleGenerator(Generator):
    name = "oracle"

    @classmethod
    def from_config(cls, opts: dict[str, Any], **objects: Any) -> OracleGenerator:
        """`objects` (a model/tokenizer) are ignored: the oracle runs no model."""
        return cls(**pick(opts, ("max_new_tokens", "stop")))

    def next_sentence(self, req: GenerationRequest) -> str:
        q = req.question
        if q is None:
            raise SteperError(
                "the oracle teacher needs GenerationRequest.question (its gold chain and answer)"
            )
        if req.step < len(q.chain):
            step = q.chain[req.step]
            if step.title is not None:
                seen = {norm_title(p.title) for p in req.passages}
                if norm_title(step.title) not in seen:
                    return UNKNOWN
            return step.sentence
        return f"So the answer is: {q.answer}."

    def generate(self, requests: list[GenerationRequest]) -> list[str | None]:
        t0 = time.perf_counter()
        out: list[str | None] = [self.next_sentence(r) for r in requests]
        self._count(requests=len(requests), seconds=time.perf_counter() - t0)
        return out

    def __repr__(self) -> str:
        return "OracleGenerator()"
