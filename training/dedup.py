"""Exact and near-duplicate detection for generated questions.

Texts are compared after the HotpotQA answer normalisation (lower-case, no
punctuation or articles). Two texts are near duplicates when their word sets
overlap by Jaccard >= `jaccard`, or their characters match by difflib ratio
>= `ratio`. Candidates are found through an inverted word index, so checking a
text costs little even against thousands of known ones.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from core.answers import normalize_answer

Verdict = Literal["duplicate", "near_duplicate"]


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass
class DedupIndex:
    """Texts seen so far; `check` says whether a new one repeats any of them."""

    jaccard: float = 0.8
    ratio: float = 0.9
    _exact: set[str] = field(default_factory=set, init=False, repr=False)
    _entries: list[tuple[str, frozenset[str]]] = field(default_factory=list, init=False, repr=False)
    _postings: dict[str, list[int]] = field(default_factory=dict, init=False, repr=False)

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, text: str) -> Verdict | None:
        key = normalize_answer(text)
        if key in self._exact:
            return "duplicate"
        words = frozenset(key.split())
        overlap: Counter[int] = Counter()
        for w in words:
            overlap.update(self._postings.get(w, ()))
        # Both criteria imply sharing at least ~half the words of the smaller text.
        for idx, shared in overlap.items():
            other_key, other_words = self._entries[idx]
            if shared * 2 < min(len(words), len(other_words)):
                continue
            if jaccard(words, other_words) >= self.jaccard:
                return "near_duplicate"
            matcher = difflib.SequenceMatcher(None, key, other_key, autojunk=False)
            if matcher.real_quick_ratio() >= self.ratio and matcher.quick_ratio() >= self.ratio \
                    and matcher.ratio() >= self.ratio:
                return "near_duplicate"
        return None

    def add(self, text: str) -> None:
        key = normalize_answer(text)
        if key in self._exact:
            return
        self._exact.add(key)
        idx = len(self._entries)
        words = frozenset(key.split())
        self._entries.append((key, words))
        for w in words:
            self._postings.setdefault(w, []).append(idx)
