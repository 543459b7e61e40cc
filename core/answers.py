"""Answer metrics: HotpotQA exact match / token F1 and ScienceQA option choice.

HotpotQA follows the standard normalisation (lower-case, drop punctuation and
articles, collapse whitespace). A yes/no/noanswer mismatch scores 0 F1.
"""

from __future__ import annotations

import difflib
import re
import string
from collections import Counter
from typing import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_SPECIAL = ("yes", "no", "noanswer")


def normalize_answer(text: str) -> str:
    """Lower-case, strip punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token-level F1 after normalisation; yes/no/noanswer must match exactly."""
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if (pred in _SPECIAL or ref in _SPECIAL) and pred != ref:
        return 0.0
    pred_tokens, ref_tokens = pred.split(), ref.split()
    common = Counter(pred_tokens) & Counter(ref_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


_LETTER_FORMS = (
    re.compile(r"^\(?([A-Z])\)?(?:[.:)]\s*.*)?$"),  # "B", "(B)", "B.", "B) Dover", "B. Dover"
    re.compile(r"\b(?:answer|option|choice)\s+(?:is\s+)?\(?([A-Z])\)?(?:\W|$)", re.IGNORECASE),
)


def letter_index(letter: str) -> int:
    return ord(letter.upper()) - ord("A")


def choose_option(prediction: str, choices: Sequence[str]) -> int | None:
    """Index of the option a prediction names: a letter, or the closest choice text."""
    text = prediction.strip()
    if not text or not choices:
        return None
    norm = normalize_answer(text)
    for i, choice in enumerate(choices):  # exact text first: "Dover"
        if normalize_answer(choice) == norm:
            return i
    for pattern in _LETTER_FORMS:
        match = pattern.search(text)
        if match and 0 <= letter_index(match.group(1)) < len(choices):
            idx = letter_index(match.group(1))
            rest = text[match.end(1):].lstrip(").:] ").strip()
            # "B. Dover" is B; "B. Wilmington" names two options: trust the text.
            if not rest or normalize_answer(rest) == normalize_answer(choices[idx]):
                return idx
            break
    ratios = [difflib.SequenceMatcher(None, norm, normalize_answer(c)).ratio() for c in choices]
    best = max(range(len(choices)), key=ratios.__getitem__)
    return best if ratios[best] >= 0.5 else None
