"""The one small interface every text generator implements (teacher and student alike).

The reasoning loop (docs/method.md §3) builds a `GenerationRequest` per open question and step, hands
a batch of them to `Generator.generate`, and gets back one raw continuation per request (or
`None` when that request failed after retries; the caller counts and decides). The loop keeps
the first sentence of each continuation itself; a request's `settled` (the framework's
`unit_settled`) tells a generator that can stop mid-generation when that part is written for good
(the hf backend does; the rest of the continuation would be thrown away).

`Generator.render` is the exact text a model sees for a request: `prompts.render` with the
backend's tokenizer and chat setting, so the training data (which renders through the same
function) and inference never disagree. `Generator.fits` says whether a rendered prompt leaves room
for `max_new_tokens` in the context window; the loop uses it with `prompts.fit_passages` to cut
passages, never the question.

Backends: `oracle` (writes the gold chain, no model), `hf` (a local transformers model), `openai`
(any OpenAI-compatible server: vLLM, TGI, SGLang, OpenAI). `build_generator(cfg)` makes one from
a `teacher` config section (`steper.generators.registry`, which imports the backends; this
module imports none of them); `steper.config.GeneratorConfig` is that section's schema.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from steper.errors import SteperError

if TYPE_CHECKING:  # for annotations only: importing steper.data loads every dataset reader
    from steper.data.schema import Paragraph, Question

log = logging.getLogger(__name__)


@dataclass
class GenerationRequest:
    """One generation: the prompt (user part), the reasoning so far, and what the oracle needs."""

    prompt: str  # the user part, from prompts.build_prompt(question, passages, demos)
    prefix: str = ""  # reasoning so far r_1..r_{s-1}, joined by " "
    question: Question | None = None  # for the oracle
    step: int = 0  # 0-based index of the sentence to write
    passages: list[Paragraph] = field(default_factory=list)  # the accumulated passages in the prompt
    steps_left: int | None = None  # units the loop still allows, this one included (None: no limit known)
    # settled(text): no continuation of `text` changes what the loop keeps of it, so generation may
    # stop there (None: generate up to a stop string or max_new_tokens)
    settled: Callable[[str], bool] | None = None


def cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """`text` up to (not including) the earliest occurrence of any stop string."""
    if not stop:
        return text
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if 0 <= i < cut:
                cut = i
    return text[:cut]


def chat_setting(value: Any) -> bool | str:
    """Normalise a `chat` option (`auto`, true/false, or their string forms) to `"auto"` or a bool."""
    if isinstance(value, bool):
        return value
    if value is None:
        return "auto"
    v = str(value).strip().lower()
    if v == "auto":
        return "auto"
    if v in ("true", "yes", "on", "1"):
        return True
    if v in ("false", "no", "off", "0"):
        return False
    raise SteperError(f"teacher.chat must be auto, true or false, got {value!r}")


def stop_list(value: Any) -> list[str]:
    """Normalise a `stop` option: None, one string, or a list of strings (empty strings dropped)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(s) for s in value if s]


class Generator(ABC):
    """Base class: rendering, fitting, stats and lifecycle; subclasses implement `generate`.

    `stats` counts: `requests`, `failures` (requests answered None), `retries`, `prompt_tokens`
    and `generated_tokens` (when the backend knows them), `seconds` (wall time inside generate).
    Counters are updated under a lock, so backends may update them from worker threads.
    """

    name: str = "base"

    def __init__(
        self, max_new_tokens: int = 64, stop: Sequence[str] | str | None = None, temperature: float = 0.0
    ):
        if int(max_new_tokens) < 1:
            raise SteperError(f"teacher.max_new_tokens must be >= 1, got {max_new_tokens}")
        self.max_new_tokens = int(max_new_tokens)
        self.stop = stop_list(stop)
        self.temperature = float(temperature or 0.0)
        if not self.temperature >= 0.0:  # NaN too
            raise SteperError(
                f"temperature must be at least 0 (0 = greedy), got {temperature}: set teacher.temperature=0 "
                "(target.temperature for evaluate.py)"
            )
        self.tokenizer = None  # set by backends that have one; used by render
        self.chat = False  # whether render uses the tokenizer's chat template
        self.stats: dict[str, Any] = {
            "requests": 0,
            "failures": 0,
            "retries": 0,
            "prompt_tokens": 0,
            "generated_tokens": 0,
            "seconds": 0.0,
        }
        self._stats_lock = threading.Lock()

    # -- what the model sees -------------------------------------------------------------------
    def render(self, prompt: str, prefix: str = "") -> str:
        """The exact text sent to the model for this prompt and reasoning so far."""
        from steper.reasoning import prompts

        return prompts.render(prompt, prefix, self.tokenizer, self.chat)

    def fits(self, rendered: str) -> bool:
        """Whether `rendered` fits the context window with room for `max_new_tokens`."""
        return True

    # -- generation ----------------------------------------------------------------------------
    @abstractmethod
    def generate(self, requests: list[GenerationRequest]) -> list[str | None]:
        """One raw continuation per request, in order; None for a request that failed."""

    def _count(self, **deltas: float) -> None:
        with self._stats_lock:
            for k, v in deltas.items():
                self.stats[k] = self.stats.get(k, 0) + v

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Release resources (threads, connections, GPU memory). Safe to call twice."""
        return None

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_new_tokens={self.max_new_tokens}, stop={self.stop!r})"


def pick(opts: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The entries of `opts` a backend uses (the shared schema carries the other backends' too)."""
    return {k: opts[k] for k in names if k in opts}
