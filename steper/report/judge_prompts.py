"""The judge's prompts and how its replies are scored (see `steper.report.judge`).

For one predictions row, up to three prompts, one per reasoning ability (rubric: `rubric.txt`
beside this file, or `--rubric FILE`): **initialization** (the first step; traces of two or more
steps), **expansion** (the mid steps 2..S-1 together; three or more), **aggregation** (the final
step). Each shows the question, the gold answer(s), the passages available at the step(s) in
question (titles and the start of each text, from the row's `passages` map and the step's
`accumulated` ids; titles only when the texts were not kept), the reasoning before, and the
step(s). The reply must end with `Score: N`; a bare digit is accepted too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steper.errors import SteperError

if TYPE_CHECKING:
    from steper.report.judge import JudgeConfig

ABILITIES = ("initialization", "expansion", "aggregation")
RUBRIC_PATH = Path(__file__).with_name("rubric.txt")
RUBRIC_SECTIONS = ("task", *ABILITIES, "reply")


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
