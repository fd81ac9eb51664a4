"""Reasoning sentences for gold chains: from (subject, relation, object) triples and from sub-questions.

Chain sentences never contain the loop's stop phrase ("answer is"): the final "So the answer is: a."
is added by whoever writes the final step, from `Question.answer`.
"""

from __future__ import annotations

import re

# 2WikiMultihopQA (Wikidata) relations → a plain sentence. {s} subject, {o} object.
RELATION_TEMPLATES: dict[str, str] = {
    "director": "The director of {s} is {o}.",
    "composer": "The composer of {s} is {o}.",
    "producer": "The producer of {s} is {o}.",
    "screenwriter": "The screenwriter of {s} is {o}.",
    "editor": "The editor of {s} is {o}.",
    "performer": "{s} is performed by {o}.",
    "cast member": "{o} is a cast member of {s}.",
    "author": "The author of {s} is {o}.",
    "publisher": "The publisher of {s} is {o}.",
    "manufacturer": "{s} is manufactured by {o}.",
    "founded by": "{s} was founded by {o}.",
    "inception": "{s} was founded in {o}.",
    "publication date": "{s} was published in {o}.",
    "date of birth": "{s} was born on {o}.",
    "date of death": "{s} died on {o}.",
    "place of birth": "{s} was born in {o}.",
    "place of death": "{s} died in {o}.",
    "place of burial": "{s} was buried in {o}.",
    "cause of death": "{s} died of {o}.",
    "country of citizenship": "{s} is a citizen of {o}.",
    "country of origin": "{s} is from {o}.",
    "country": "{s} is in {o}.",
    "located in the administrative territorial entity": "{s} is located in {o}.",
    "capital": "The capital of {s} is {o}.",
    "father": "The father of {s} is {o}.",
    "mother": "The mother of {s} is {o}.",
    "spouse": "{s} is married to {o}.",
    "child": "{o} is a child of {s}.",
    "sibling": "{o} is a sibling of {s}.",
    "educated at": "{s} was educated at {o}.",
    "employer": "{s} worked for {o}.",
    "award received": "{s} received the {o}.",
    "occupation": "{s} is a {o}.",
    "doctoral advisor": "The doctoral advisor of {s} is {o}.",
    "student of": "{s} was a student of {o}.",
    "record label": "The record label of {s} is {o}.",
    "original language of film or TV show": "The original language of {s} is {o}.",
    "genre": "The genre of {s} is {o}.",
    "member of sports team": "{s} played for {o}.",
    "position held": "{s} held the position of {o}.",
    "head of government": "The head of government of {s} is {o}.",
    "headquarters location": "The headquarters of {s} are in {o}.",
    "owned by": "{s} is owned by {o}.",
    "parent organization": "The parent organization of {s} is {o}.",
    "religion": "The religion of {s} is {o}.",
    "languages spoken, written or signed": "{s} speaks {o}.",
}
GENERIC_RELATION_TEMPLATE = "The {rel} of {s} is {o}."


def relation_sentence(subj: str, rel: str, obj: str) -> str:
    """A plain sentence for a (subject, relation, object) fact; generic fallback for unknown relations."""
    subj, rel, obj = str(subj).strip(), str(rel).strip(), str(obj).strip()
    template = RELATION_TEMPLATES.get(rel.lower())
    if template is None:
        return GENERIC_RELATION_TEMPLATE.format(rel=rel, s=subj, o=obj)
    return template.format(s=subj, o=obj)


_PREPOSITIONS = {
    "of", "in", "on", "at", "for", "by", "with", "from", "to", "about", "into", "after", "before",
    "under", "over", "during", "since", "as", "than", "between", "through", "against", "among",
}  # fmt: skip
_AUX = {"is", "was", "are", "were", "did", "does", "do", "has", "have", "had", "can", "could", "will"}
_IRREGULAR_PARTICIPLES = {
    "born", "built", "made", "written", "held", "won", "given", "taken", "shown", "drawn", "sold",
    "begun", "done", "seen", "known", "run", "set", "found", "lost", "led", "fought", "bought", "sent",
    "kept", "left", "sung", "shot", "struck", "chosen", "spoken", "broken", "grown", "thrown", "hidden",
    "driven", "laid", "paid", "heard", "met", "read", "fed", "hung", "dug", "shut", "spread",
}  # fmt: skip
_WH_BE = re.compile(r"^(who|what|which)\s+(is|was|are|were)\s+(.+)$", re.IGNORECASE)
_WHEN_WHERE_BE = re.compile(r"^(when|where)\s+(is|was|are|were)\s+(.+)$", re.IGNORECASE)
_WHO_VERB = re.compile(r"^who\s+([A-Za-z]+)\s+(.+)$", re.IGNORECASE)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def _is_participle(word: str) -> bool:
    w = word.lower()
    return (w.endswith("ed") and len(w) > 3) or w in _IRREGULAR_PARTICIPLES


def step_sentence(question: str, answer: str) -> str:
    """A reasoning sentence for a (sub-question, answer) pair: deterministic, simple rules.

    - "X >> relation" (MuSiQue's Wikidata-style steps) → `relation_sentence(X, relation, answer)`.
    - "Who/What/Which is|was <phrase>?" → "<Phrase> is|was <answer>."
    - "When/Where is|was <subject> <participle>?" → "<Subject> was <participle> in <answer>."
    - "Who <verb> <rest>?" → "<answer> <verb> <rest>."
    - otherwise → "<question without '?'>: <answer>."
    """
    q = " ".join(str(question).split()).rstrip("?").strip()
    a = str(answer).strip()
    if ">>" in q:
        subj, _, rel = q.partition(">>")
        return relation_sentence(subj, rel, a)
    m = _WH_BE.match(q)
    if m:
        be, rest = m.group(2).lower(), m.group(3)
        words = rest.split()
        if words[0].lower() not in _PREPOSITIONS and words[-1].lower() not in _PREPOSITIONS:
            return f"{_cap(rest)} {be} {a}."
    m = _WHEN_WHERE_BE.match(q)
    if m:
        be, rest = m.group(2).lower(), m.group(3)
        words = rest.split()
        if words[-1].lower() not in _PREPOSITIONS:
            if len(words) > 1 and _is_participle(words[-1]):
                return f"{_cap(' '.join(words[:-1]))} {be} {words[-1]} in {a}."
            return f"{_cap(rest)} {be} in {a}."
    m = _WHO_VERB.match(q)
    if m and m.group(1).lower() not in _AUX:
        return f"{a} {m.group(1)} {m.group(2)}."
    return f"{_cap(q)}: {a}."


def substitute_refs(question: str, answers: dict[int, str]) -> str:
    """Replace "#1", "#2", ... by the answers of the earlier steps (as IRCoT's process_musique.py)."""
    for k in range(9, 0, -1):  # high first, so "#1" never eats the head of a "#12"
        if f"#{k}" in question and k in answers:
            question = question.replace(f"#{k}", answers[k])
    return question
