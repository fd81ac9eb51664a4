"""The sentence rules of the loop (docs/method.md §3): what a step keeps, which query it makes, when
it stops.

- a query is the last sentence with wh-words stripped; a sentence that only reasons over what is
  already known (so/thus/therefore/hence, "that is,", arithmetic) is not a query;
- a question stops when its sentence matches `.* answer is:? (.*)\\.?`;
- a generation keeps its first sentence (abbreviations, initials and decimals do not end one).
"""

from __future__ import annotations

import re
import string

WH_WORDS = frozenset({"who", "what", "when", "where", "why", "which", "how", "does", "is"})
# A sentence that only reasons over what is already known: not a retrieval query (IRCoT also
# treats "that is," and "a + b = c" arithmetic as reasoning).
_REASONING_START = re.compile(r"^\s*(?:(?:so|thus|therefore|hence)(?=[\s,:;]|$)|that is,)", re.IGNORECASE)
_ARITHMETIC = re.compile(r".*(?:\d[\d,]*\.?\d+|\d+) [+-] (?:\d[\d,]*\.?\d+|\d+) = (?:\d[\d,]*\.?\d+|\d+)")
# The stop rule of docs/method.md §3 (IRCoT's answer extractor, colon optional).
ANSWER_RE = re.compile(r".* answer is:? (.*)\.?")

_PUNCT = string.punctuation + "“”‘’«»"


def strip_wh_words(text: str) -> str:
    """Drop the wh-words (and does/is) from a query; punctuation around a word does not hide it."""
    return " ".join(w for w in text.split() if w.strip(_PUNCT).lower() not in WH_WORDS)


def is_reasoning_sentence(sentence: str) -> bool:
    """True for sentences starting with so/thus/therefore/hence (or "that is,"), or doing arithmetic."""
    return bool(_REASONING_START.match(sentence) or _ARITHMETIC.match(sentence))


def is_answer_sentence(sentence: str) -> bool:
    return bool(ANSWER_RE.match(sentence))


def answer_of(sentence: str) -> str | None:
    """The answer a final sentence states (`extract_answer`; the stop regex's capture as fallback)."""
    from steper.evaluation.metrics import extract_answer

    answer = extract_answer(sentence)
    if answer is None:
        m = ANSWER_RE.match(sentence)
        if m is None:
            return None
        answer = m.group(1).strip()
        if answer.endswith("."):
            answer = answer[:-1].rstrip()
    return answer


# Words followed by a period that usually do not end a sentence (titles, name suffixes, months...).
_ABBREVIATIONS = frozenset(
    """mr mrs ms messrs dr prof st jr sr mt ft gen col lt capt cmdr sgt rev hon gov pres sen rep
    adm brig maj cpl pvt lieut cdr
    no nos vs etc inc ltd co corp bros jan feb mar apr jun jul aug sep sept oct nov dec approx est
    ca vol pp fig dept univ assn ave blvd rd op ed eds""".split()
)
# ...but a period after one of them does end a sentence when the next word starts a conclusion.
_CONNECTIVES = frozenset({"so", "thus", "therefore", "hence"})
# Sentence-final punctuation, closing quotes/brackets included, followed by white space.
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)")
_INITIALS = re.compile(r"(?:[A-Za-z]\.)*[A-Za-z]")


def _ends_with_abbreviation(head: str) -> bool:
    """Whether `head` ends with a period after an abbreviation or an initials ("Dr.", "U.S.", "J.")."""
    punct = head.rstrip("\"'”’)]")
    if not punct.endswith(".") or punct.endswith(".."):
        return False  # "!", "?" or an ellipsis
    word = punct.rsplit(None, 1)[-1][:-1]  # the token before the period, without it
    word = word.lstrip("\"'“‘([")
    return word.lower() in _ABBREVIATIONS or bool(_INITIALS.fullmatch(word))


def _is_boundary(head: str, rest: str) -> bool:
    """Whether the punctuation that ends `head` ends a sentence, `rest` being the text after it."""
    if not rest or rest[0].islower():
        return False  # "approx. one", "e.g. the"
    if _ends_with_abbreviation(head):
        next_word = rest.split(None, 1)[0].strip(_PUNCT).lower()
        return next_word in _CONNECTIVES
    return True


_WHOLE_WORD = re.compile(r"\S+\s")


def first_sentence_settled(text: str) -> bool:
    """Whether `first_sentence(text + more)` equals `first_sentence(text)` whatever `more` is, so a
    generation may stop here: the text has a line break after its first non-blank character, or a
    sentence end whose decision is already made (the next non-blank character is there, and after
    an abbreviation the whole next word), and every sentence end before it was already rejected
    for good."""
    t = text.lstrip()
    if "\n" in t:
        return True
    for m in _SENTENCE_END.finditer(t):
        head, rest = t[: m.end()], t[m.end() :].lstrip()
        if not rest:
            return False  # the next character decides
        if _ends_with_abbreviation(head) and not rest[0].islower() and not _WHOLE_WORD.match(rest):
            return False  # the next word, still being written, decides
        if _is_boundary(head, rest):
            return True
    return False


def first_sentence(text: str) -> str:
    """The first sentence of a generation: up to the first line break, then up to the first sentence
    end that is not an abbreviation ("U.S.", "Jr.", "Dr."), an initial, or a decimal point."""
    text = text.strip()
    if not text:
        return ""
    text = text.split("\n", 1)[0].strip()
    for m in _SENTENCE_END.finditer(text):
        rest = text[m.end() :].lstrip()
        if _is_boundary(text[: m.end()], rest):
            return text[: m.end()].strip()
    return text
