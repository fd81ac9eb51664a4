"""The reasoning-ability judge (the paper's Figure 3): an LLM scores each trace's steps, G-Eval style.

For every question of a predictions file (one JSON line per question, with its `steps`), the judge
scores up to three reasoning abilities on a 1–5 scale (rubric: `rubric.txt` beside this file, or
`--rubric FILE`):

- **initialization**: the first step (traces of two or more steps);
- **expansion**: the mid steps 2..S-1 together (traces of three or more steps);
- **aggregation**: the final step (every trace with at least one step).

The judge sees the question, the gold answer(s), the passages available at the step(s) in question
(titles and the start of each text, from the row's `passages` map and the step's `accumulated`
ids; titles only when the texts were not kept), the reasoning before, and the step(s). It must end
its reply with `Score: N`; a bare digit is accepted too. A request that fails (after the generator's
retries) or a reply without a score counts as a failure of that ability and is excluded from its
mean; it never stops the run. Traces that ended in a generation error (`finish: error`) are not
judged (the model did not fail at reasoning; the infrastructure did).

Results per ability: `mean` (1–5), `share_ge4` (percent of scored items with score ≥ 4),
`counts` per score, `scored`, `applicable`, `failures` (= `request_failures` + `unparseable`).
They are written to `judge.json` beside the predictions, with each item's score and the start of
its reply; a later run with the same judge model, rubric and limit reuses that file unless forced.

    python -m steper.report.judge outputs/evaluate/runs/<run>/predictions.jsonl \\
        --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-72B-Instruct [--limit 100]

The judge talks to any OpenAI-compatible server through
`steper.generators.openai_compat.OpenAICompatGenerator` (`api: chat` by default). The API key is
read from the environment variable named by `--api-key-env` (default OPENAI_API_KEY), never from
the command line. An unreachable server is a SteperError (one clear line from the CLI).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steper.errors import SteperError
from steper.io import iter_jsonl, read_json, write_json
from steper.report.judge_prompts import ABILITIES, Item, build_items, load_rubric, parse_score

__all__ = ["JudgeConfig", "build_items", "judge_predictions", "load_rubric", "main", "parse_score"]

JUDGE_FILE = "judge.json"
REPLY_KEEP = 400  # characters of each reply kept in judge.json


@dataclass
class JudgeConfig:
    """How to reach the judge and what to show it."""

    base_url: str
    model: str | None = None
    api: str = "chat"  # chat | completions
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    max_retries: int = 3
    timeout_s: float = 120.0
    backoff_base_s: float = 0.5
    max_new_tokens: int = 256
    temperature: float = 0.0
    limit: int | None = None  # judge the first N questions only
    passage_chars: int = 300  # characters of each passage's text shown (0 = titles only)
    max_passages: int = 15
    rubric: str | None = None  # a rubric file; None = the built-in rubric.txt
    force: bool = False  # re-judge even when a matching judge.json exists

    def generator_config(self) -> dict[str, Any]:
        return {
            "name": "openai",
            "base_url": self.base_url,
            "model": self.model,
            "api": self.api,
            "api_key_env": self.api_key_env,
            "concurrency": self.concurrency,
            "max_retries": self.max_retries,
            "timeout_s": self.timeout_s,
            "backoff_base_s": self.backoff_base_s,
            "backoff_max_s": max(self.backoff_base_s, 8.0),
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "stop": [],
            "chat": False,
        }


# ---------------------------------------------------------------------------------------- scoring


def summarize(items: list[Item], replies: list[str | None]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Per-ability statistics and per-item records from the replies."""
    stats = {
        a: {"applicable": 0, "scored": 0, "request_failures": 0, "unparseable": 0, "scores": []}
        for a in ABILITIES
    }
    records = []
    for item, reply in zip(items, replies):
        st = stats[item.ability]
        st["applicable"] += 1
        score = parse_score(reply)
        if reply is None:
            st["request_failures"] += 1
        elif score is None:
            st["unparseable"] += 1
        else:
            st["scored"] += 1
            st["scores"].append(score)
        records.append(
            {
                "qid": item.qid,
                "ability": item.ability,
                "score": score,
                "error": "request failed"
                if reply is None
                else ("no score in reply" if score is None else None),
                "reply": None if reply is None else reply.strip()[:REPLY_KEEP],
            }
        )
    out = {}
    for a, st in stats.items():
        scores = st.pop("scores")
        st["failures"] = st["request_failures"] + st["unparseable"]
        st["mean"] = round(sum(scores) / len(scores), 4) if scores else None
        st["share_ge4"] = round(100.0 * sum(s >= 4 for s in scores) / len(scores), 4) if scores else None
        st["counts"] = {str(k): sum(1 for s in scores if round(s) == k) for k in range(1, 6)}
        out[a] = st
    return out, records


def judge_path(predictions: Path) -> Path:
    return Path(predictions).with_name(JUDGE_FILE)


def load_judge(predictions: Path) -> dict[str, Any] | None:
    """The judge.json beside a predictions file, or None (absent or unreadable)."""
    p = judge_path(predictions)
    if not p.is_file():
        return None
    try:
        d = read_json(p)
    except SteperError:
        return None
    return d if isinstance(d, dict) and isinstance(d.get("abilities"), dict) else None


def _reusable(existing: dict[str, Any] | None, cfg: JudgeConfig, sha: str) -> bool:
    """Whether a judge.json already there was made by the same judge model, rubric and limit."""
    return (
        existing is not None
        and not cfg.force
        and existing.get("rubric_sha") == sha
        and existing.get("limit") == cfg.limit
        and (existing.get("judge") or {}).get("model") == cfg.model
        and cfg.model is not None
    )


def _read_rows(predictions: Path, limit: int | None, skipped: list[int]) -> list[dict[str, Any]]:
    rows = []
    for _, row in iter_jsonl(predictions, strict=False, skipped=skipped):
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    return rows


def _ask(items: list[Item], cfg: JudgeConfig, generator: Any) -> tuple[list[str | None], str | None]:
    """The judge's replies to `items` (None for a failed request) and the model that answered."""
    if not items:
        return [], cfg.model
    from steper.generators import GenerationRequest, build_generator

    own = generator is None
    gen = generator if generator is not None else build_generator(cfg.generator_config())
    # one warning per failed request from the generator would flood the terminal on a bad
    # endpoint; failures are counted per ability instead
    gen_log = logging.getLogger("steper.generators.openai_compat")
    level = gen_log.level
    gen_log.setLevel(logging.ERROR)
    try:
        replies = gen.generate([GenerationRequest(it.prompt) for it in items])
        return replies, getattr(gen, "model", None) or cfg.model
    finally:
        gen_log.setLevel(level)
        if own:
            gen.close()


def judge_predictions(predictions: str | Path, cfg: JudgeConfig, generator: Any = None) -> dict[str, Any]:
    """Judge one predictions file; write and return `judge.json` beside it.

    `generator` (a `steper.generators.Generator`) is built from `cfg` when not given. Raises a
    SteperError when the file is missing or the endpoint cannot be reached.
    """
    predictions = Path(predictions)
    rubric, sha = load_rubric(cfg.rubric)
    existing = load_judge(predictions)
    if existing is not None and _reusable(existing, cfg, sha):
        existing["reused"] = True
        return existing
    skipped_lines: list[int] = []
    rows = _read_rows(predictions, cfg.limit, skipped_lines)
    per_row = [build_items(row, rubric, cfg) for row in rows]
    items = [it for its in per_row for it in its]
    replies, model = _ask(items, cfg, generator)
    abilities, records = summarize(items, replies)
    result = {
        "predictions": str(predictions),
        "judge": {"base_url": cfg.base_url, "model": model, "api": cfg.api, "temperature": cfg.temperature},
        "rubric": str(cfg.rubric or "builtin:rubric.txt"),
        "rubric_sha": sha,
        "limit": cfg.limit,
        "questions": len(rows),
        "questions_not_judged": sum(not its for its in per_row),
        "malformed_lines": skipped_lines,
        "abilities": abilities,
        "items": records,
    }
    write_json(judge_path(predictions), result)
    return result


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for a in ABILITIES:
        d = result["abilities"].get(a) or {}
        if not d.get("applicable"):
            lines.append(f"{a:<15} not applicable (no trace has this step)")
            continue
        mean = "—" if d.get("mean") is None else f"{d['mean']:.2f}"
        share = "—" if d.get("share_ge4") is None else f"{d['share_ge4']:.1f}%"
        lines.append(
            f"{a:<15} mean {mean}  ≥4: {share}  scored {d['scored']}/{d['applicable']}"
            + (
                f"  failures {d['failures']} (request {d['request_failures']}, no score {d['unparseable']})"
                if d["failures"]
                else ""
            )
        )
    return lines


# -------------------------------------------------------------------------------------------- CLI


# the judge's options: (flag, JudgeConfig field or None for no default, type, metavar, help)
_OPTIONS: tuple[tuple[str, str | None, type, str, str], ...] = (
    ("limit", None, int, "N", "judge the first N questions of each predictions file"),
    ("concurrency", "concurrency", int, "N", "parallel requests (default %(default)s)"),
    ("max-retries", "max_retries", int, "N", "retries per request on 429/5xx/timeouts (default %(default)s)"),
    ("timeout", "timeout_s", float, "S", "seconds per request (default %(default)s)"),
    ("max-new-tokens", "max_new_tokens", int, "N", "reply length limit (default %(default)s)"),
    (
        "passage-chars",
        "passage_chars",
        int,
        "N",
        "characters of each passage shown to the judge; 0 = titles only (default %(default)s)",
    ),
)


def add_judge_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The judge's options; `prefix="judge-"` for the report's `--judge-…` spelling."""
    d = JudgeConfig(base_url="")
    p.add_argument(
        f"--{prefix}api",
        choices=("chat", "completions"),
        default=d.api,
        help="endpoint: /v1/chat/completions (default) or /v1/completions",
    )
    p.add_argument(
        f"--{prefix}api-key-env",
        default=d.api_key_env,
        metavar="NAME",
        help="environment variable holding the API key (default %(default)s; unset = 'EMPTY', fine for a local vLLM)",
    )
    for flag, attr, kind, metavar, text in _OPTIONS:
        default = None if attr is None else getattr(d, attr)
        p.add_argument(f"--{prefix}{flag}", type=kind, default=default, metavar=metavar, help=text)
    p.add_argument(
        f"--{prefix}rubric",
        default=None,
        metavar="FILE",
        help="a rubric file with ## task / initialization / expansion / aggregation / reply sections (default: the built-in one)",
    )
    p.add_argument(
        f"--{prefix}force",
        action="store_true",
        help="re-judge even when a judge.json with the same model, rubric and limit exists",
    )


def config_from_args(
    args: argparse.Namespace, base_url: str, model: str | None, prefix: str = ""
) -> JudgeConfig:
    a = prefix.replace("-", "_")

    def get(name: str) -> Any:
        return getattr(args, a + name)

    return JudgeConfig(
        base_url=base_url,
        model=model,
        api=get("api"),
        api_key_env=get("api_key_env"),
        limit=get("limit"),
        concurrency=get("concurrency"),
        max_retries=get("max_retries"),
        timeout_s=get("timeout"),
        max_new_tokens=get("max_new_tokens"),
        passage_chars=get("passage_chars"),
        rubric=get("rubric"),
        force=get("force"),
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m steper.report.judge",
        description=(
            "Score the reasoning traces of a predictions file for reasoning initialization (first step), "
            "expansion (mid steps) and aggregation (final step), 1-5, with an LLM judge on an "
            "OpenAI-compatible server (G-Eval style rubric). Writes judge.json beside the predictions."
        ),
    )
    p.add_argument(
        "predictions", type=Path, help="a predictions.jsonl (an evaluate run's, or a train run's eval/)"
    )
    p.add_argument("--base-url", required=True, help="the server, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", default=None, help="the served model name (default: the server's only model)")
    add_judge_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from steper.cli import friendly_errors

    @friendly_errors
    def run() -> int:
        args = build_parser().parse_args(argv)
        cfg = config_from_args(args, args.base_url, args.model)
        result = judge_predictions(args.predictions, cfg)
        where = judge_path(args.predictions)
        print(
            f"{'reused' if result.get('reused') else 'wrote'} {where}  ({result['questions']} questions, judge {result['judge']['model']})"
        )
        for line in summary_lines(result):
            print("  " + line)
        return 0

    return run()


if __name__ == "__main__":
    sys.exit(main())
