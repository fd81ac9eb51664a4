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
import hashlib
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steper.errors import SteperError
from steper.io import iter_jsonl, read_json, write_json

ABILITIES = ("initialization", "expansion", "aggregation")
RUBRIC_PATH = Path(__file__).with_name("rubric.txt")
RUBRIC_SECTIONS = ("task", *ABILITIES, "reply")
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


# ------------------------------------------------------------------------------------------ rubric


def load_rubric(path: str | Path | None = None) -> tuple[dict[str, str], str]:
    """The rubric's sections by name, and the SHA-256 (first 16 hex) of the file's text."""
    p = Path(path) if path else RUBRIC_PATH
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SteperError(f"cannot read the judge rubric {p}: {e}") from None
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        m = re.match(r"^##\s+(\S.*?)\s*$", line)
        if m:
            current = m.group(1).strip().lower()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    missing = [s for s in RUBRIC_SECTIONS if s not in sections]
    if missing:
        raise SteperError(
            f"judge rubric {p} lacks section(s) {', '.join('## ' + s for s in missing)}; "
            f"it needs: {', '.join('## ' + s for s in RUBRIC_SECTIONS)}"
        )
    return {k: "\n".join(v).strip() for k, v in sections.items()}, hashlib.sha256(text.encode()).hexdigest()[
        :16
    ]


# ---------------------------------------------------------------------------------------- prompts


@dataclass
class Item:
    qid: str
    ability: str
    prompt: str


def _passages(
    row: dict[str, Any], step: dict[str, Any], steps_before: list[dict[str, Any]], cfg: JudgeConfig
) -> list[str]:
    """The passages available at `step`: its accumulated ids through the row's `passages` map, else
    the titles retrieved up to and including it."""
    table = row["passages"]
    out: list[str] = []
    for pid in step.get("accumulated") or []:
        p = table.get(str(pid))
        if not isinstance(p, dict):
            continue
        title = str(p.get("title") or "").strip()
        text = " ".join(str(p.get("text") or "").split())
        if cfg.passage_chars > 0 and text:
            cut = text[: cfg.passage_chars]
            out.append(f"{title}: {cut}{'…' if len(text) > len(cut) else ''}")
        else:
            out.append(title)
    if not out:
        titles: list[str] = []
        for s in [*steps_before, step]:
            titles += [str(t) for t in s.get("retrieved_titles") or []]
        out = list(dict.fromkeys(t for t in titles if t))
    return out[: cfg.max_passages]


def _case(
    row: dict[str, Any], before: list[dict[str, Any]], judged: list[dict[str, Any]], cfg: JudgeConfig
) -> str:
    golds = [str(g) for g in row["golds"] if g is not None]
    passages = _passages(row, judged[-1], before + judged[:-1], cfg)
    lines = [
        "--- Case ---",
        f"Question: {str(row['question']).strip()}",
        f"Gold answer: {' | '.join(golds) if golds else '(not given)'}",
        "",
        "Passages available at the step(s) under evaluation:",
    ]
    lines += [f"[{i}] {p}" for i, p in enumerate(passages, 1)] or ["(none)"]
    lines += ["", "Reasoning written before:"]
    lines += [f"Step {i}: {s['sentence'].strip()}" for i, s in enumerate(before, 1)] or [
        "(none: this is the first step)"
    ]
    lines += ["", "Step(s) to evaluate:"]
    lines += [f"Step {i}: {s['sentence'].strip()}" for i, s in enumerate(judged, len(before) + 1)]
    return "\n".join(lines)


def _trace_view(row: dict[str, Any]) -> dict[str, Any]:
    """The fields the judge reads, from a predictions row whose trace is nested under `trace`
    (evaluate.py's layout: `steps` there is the list, the row's own `steps` a count) or flat."""
    trace = row.get("trace") if isinstance(row.get("trace"), dict) else {}
    steps = row.get("steps") if isinstance(row.get("steps"), list) else trace.get("steps")
    passages = trace.get("passages") if isinstance(trace.get("passages"), dict) else row.get("passages")
    return {
        "qid": row.get("qid", trace.get("qid", "")),
        "question": row.get("question") or trace.get("question") or "",
        "golds": row.get("golds") or trace.get("golds") or row.get("answers") or [],
        "steps": steps if isinstance(steps, list) else [],
        "passages": passages if isinstance(passages, dict) else {},
        "finish": row.get("finish") or trace.get("finish"),
    }


def build_items(row: dict[str, Any], rubric: dict[str, str], cfg: JudgeConfig) -> list[Item]:
    """The judge prompts of one prediction row (0 to 3 of them, see the module doc)."""
    row = _trace_view(row)
    steps = [
        s
        for s in row.get("steps") or []
        if isinstance(s, dict) and isinstance(s.get("sentence"), str) and s["sentence"].strip()
    ]
    if not steps or row.get("finish") == "error":
        return []
    spans: dict[str, tuple[list[dict], list[dict]]] = {}
    if len(steps) >= 2:
        spans["initialization"] = ([], steps[:1])
    if len(steps) >= 3:
        spans["expansion"] = (steps[:1], steps[1:-1])
    spans["aggregation"] = (steps[:-1], steps[-1:])
    qid = str(row.get("qid", ""))
    items = []
    for ability in ABILITIES:
        if ability not in spans:
            continue
        before, judged = spans[ability]
        prompt = "\n\n".join(
            [
                rubric["task"],
                f"Ability under evaluation: {ability}\n\n{rubric[ability]}",
                rubric["reply"],
                _case(row, before, judged, cfg),
                "Your evaluation:",
            ]
        )
        items.append(Item(qid, ability, prompt))
    return items


# ---------------------------------------------------------------------------------------- parsing

_SCORE = re.compile(
    r"\bscore\b(?:\s*\(\s*1\s*-\s*5\s*\))?[^\w\n]{0,4}(?:(?:is|of)\s+)?[^\w\n]{0,3}"
    r"([1-5](?:\.\d+)?)(?![\d.]*\d)(?!\s*(?:-|–|to)\s*\d)",
    re.IGNORECASE,
)
_BARE = re.compile(r"^\W*([1-5](?:\.0+)?)\s*(?:/\s*5|out of 5)?\W*$", re.IGNORECASE)


def parse_score(reply: str | None) -> float | None:
    """The score of a judge reply: the last `Score: N` (also `score = N`, `**Score:** N/5`, …), else a
    bare digit on the last non-empty line; None when there is none in 1..5."""
    if not reply:
        return None
    hits = _SCORE.findall(reply)
    if hits:
        return float(hits[-1])
    lines = [ln for ln in reply.strip().splitlines() if ln.strip()]
    if lines:
        m = _BARE.match(lines[-1].strip())
        if m:
            return float(m.group(1))
    return None


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


def judge_predictions(predictions: str | Path, cfg: JudgeConfig, generator: Any = None) -> dict[str, Any]:
    """Judge one predictions file; write and return `judge.json` beside it.

    `generator` (a `steper.generators.Generator`) is built from `cfg` when not given. Raises a
    SteperError when the file is missing or the endpoint cannot be reached.
    """
    predictions = Path(predictions)
    rubric, sha = load_rubric(cfg.rubric)
    existing = load_judge(predictions)
    if (
        existing is not None
        and not cfg.force
        and existing.get("rubric_sha") == sha
        and existing.get("limit") == cfg.limit
        and (existing.get("judge") or {}).get("model") == cfg.model
        and cfg.model is not None
    ):
        existing["reused"] = True
        return existing

    skipped_lines: list[int] = []
    rows = []
    for _, row in iter_jsonl(predictions, strict=False, skipped=skipped_lines):
        rows.append(row)
        if cfg.limit is not None and len(rows) >= cfg.limit:
            break
    items: list[Item] = []
    not_judged = 0
    for row in rows:
        its = build_items(row, rubric, cfg)
        not_judged += not its
        items += its

    replies: list[str | None] = []
    model = cfg.model
    if items:
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
            model = getattr(gen, "model", None) or model
        finally:
            gen_log.setLevel(level)
            if own:
                gen.close()
    abilities, records = summarize(items, replies)
    result = {
        "predictions": str(predictions),
        "judge": {"base_url": cfg.base_url, "model": model, "api": cfg.api, "temperature": cfg.temperature},
        "rubric": str(cfg.rubric or "builtin:rubric.txt"),
        "rubric_sha": sha,
        "limit": cfg.limit,
        "questions": len(rows),
        "questions_not_judged": not_judged,
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
    p.add_argument(
        f"--{prefix}limit",
        type=int,
        default=None,
        metavar="N",
        help="judge the first N questions of each predictions file",
    )
    p.add_argument(
        f"--{prefix}concurrency",
        type=int,
        default=d.concurrency,
        metavar="N",
        help="parallel requests (default %(default)s)",
    )
    p.add_argument(
        f"--{prefix}max-retries",
        type=int,
        default=d.max_retries,
        metavar="N",
        help="retries per request on 429/5xx/timeouts (default %(default)s)",
    )
    p.add_argument(
        f"--{prefix}timeout",
        type=float,
        default=d.timeout_s,
        metavar="S",
        help="seconds per request (default %(default)s)",
    )
    p.add_argument(
        f"--{prefix}max-new-tokens",
        type=int,
        default=d.max_new_tokens,
        metavar="N",
        help="reply length limit (default %(default)s)",
    )
    p.add_argument(
        f"--{prefix}passage-chars",
        type=int,
        default=d.passage_chars,
        metavar="N",
        help="characters of each passage shown to the judge; 0 = titles only (default %(default)s)",
    )
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
