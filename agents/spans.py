"""Name, number and date spans of running text: the candidates of scored answers and arguments.

A weak model cannot be trusted to write a name, but it can rank names that are
already on the page. These helpers find them: capitalised multi-word spans
("University of Warsaw"), single capitalised words that are not stopwords,
dates ("July 5, 1989") and numbers ("1,024", "3.5").
"""

from __future__ import annotations

import re

__all__ = ["NUMBER", "name_spans", "number_spans", "strip_title"]

_STOP = frozenset("""a an the this that these those it its he she his her they their them we our you your i
in on at of for from by with to as and or but if so after before when while during since until although
there here what which who whom whose where why how is was are were be been has had have do does did not
no yes also both however then thus one some many most all each""".split())
_JOIN = frozenset({"of", "the", "de", "da", "del", "della", "van", "von", "der", "la", "le", "du"})
_MONTH = (r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
          r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?")
_DATE = re.compile(rf"\b(?:{_MONTH}\s+\d{{1,2}},?\s+\d{{3,4}}|\d{{1,2}}\s+{_MONTH}\s+\d{{3,4}}|{_MONTH}\s+\d{{3,4}})\b")
NUMBER = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.])\d+(?:\.\d+)?(?![\w])")
_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ][\w'’.-]*[\w]|[A-Za-zÀ-ÖØ-öø-ÿ]")
_SENTENCE_END = re.compile(r"[.!?]\s*$")


def strip_title(title: str) -> str:
    """A page title without its trailing disambiguation ("Beowulf (2007 film)" -> "Beowulf")."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", title).strip()


_MONTHS = frozenset(re.findall(r"[A-Z][a-z]+", _MONTH))


def _joined(text: str, words: list[tuple[str, int, int]], k: int) -> bool:
    """Whether word `k` follows word `k - 1` with only a space or a hyphen between them."""
    gap = text[words[k - 1][2]:words[k][1]]
    return gap.strip() in ("", "-") and "\n" not in gap


def _is_cap(word: str) -> bool:
    return word[:1].isupper()


def name_spans(text: str) -> list[str]:
    """Capitalised multi-word spans ("University of Warsaw") and single capitalised words.

    A capitalised stopword ("The", "She", "In") is never a candidate on its
    own; it may open a span only mid-sentence ("The Beatles" in running text).
    """
    out: list[str] = []
    words = [(m.group(0), m.start(), m.end()) for m in _WORD.finditer(text)]
    i = 0
    while i < len(words):
        word, start, _ = words[i]
        initial = not text[:start].strip() or bool(_SENTENCE_END.search(text[:start]))
        if not _is_cap(word) or (word.lower() in _STOP and (initial or word.lower() != "the")):
            i += 1
            continue
        j = last = i
        while True:
            k = j + 1
            while k < len(words) and words[k][0] in _JOIN and _joined(text, words, k):
                k += 1
            if k < len(words) and _joined(text, words, k) and _is_cap(words[k][0]) \
                    and words[k][0].lower() not in _STOP and (k == j + 1 or words[k][0] not in _MONTHS):
                j = last = k
            else:
                break
        span = text[words[i][1]:words[last][2]].rstrip(".")
        if last > i:
            out.append(span)
            if word.lower() == "the":
                out.append(text[words[i + 1][1]:words[last][2]].rstrip("."))
        elif word.lower() not in _STOP and word.rstrip(".") not in _MONTHS:
            out.append(span)
        i = last + 1
    return out


def number_spans(text: str) -> list[str]:
    dates = [m.group(0).rstrip(".,") for m in _DATE.finditer(text)]
    return dates + [m.group(0) for m in NUMBER.finditer(text)]
