"""Guided ScienceQA self-instruct: the model writes one field at a time, the answer is scored.

A small model rarely writes a whole multiple-choice example in the right shape
(question, lettered options, caption, image text, answer). Guided generation
writes the labels itself and lets the model fill in one field after another,
each stopped at the end of its line; the answer, a closed choice, is the
option the model finds likeliest after `Answer:` instead of a generated letter
(`option_order.scored_option`; self-instruct then checks it against other option orders).
Every field is checked as it comes, and an item that fails a check is
returned as the reason (the same reasons `instruct_parsing` reports).
"""

from __future__ import annotations

from typing import Any

from agents.llm import CompletionModel
from core.answers import normalize_answer
from training.answer_scoring import Norm
from training.instruct_parsing import LETTERS, NO_IMG, is_empty, render_options, split_options
from training.option_order import scored_option

__all__ = ["FIELD_TOKENS", "guided_scienceqa_item"]

#: token budgets of the generated fields
FIELD_TOKENS = {"stem": 96, "options": 64, "caption": 40, "image text": 32}
_STEM_TOKENS, _OPTION_TOKENS, _CAPTION_TOKENS, _OCR_TOKENS = FIELD_TOKENS.values()
_FIELD_STOPS = ["\nOptions", "\nAnswer", "\nImage", "\nQuestion", "\n\n\n"]
#: options lines written for one stem before the item is dropped as `bad_options` (a sampled retry costs less
#: than a new stem: benchmarks/self_instruct.py)
OPTION_TRIES = 2


def _line(text: str) -> str:
    return " ".join(text.split("\n", 1)[0].split())


def _options(raw: str) -> list[str]:
    """The options of a generated `(A) … (B) …` line, or [] unless they are 2-5 distinct, non-empty ones."""
    _, options = split_options("(A) " + _line(raw), parens_only=True)
    if len(raw) >= 3 * _OPTION_TOKENS and len(options) > 2:
        options = options[:-1]  # the last option was cut off
    options = options[:len(LETTERS)]
    norms = [normalize_answer(o) for o in options]
    return [] if len(options) < 2 or not all(norms) or len(set(norms)) < len(norms) else options


def guided_scienceqa_item(model: CompletionModel, prompt: str, norm: Norm = "char") -> dict[str, Any] | str:
    """One `{question, choices, answer, caption, ocr}` item, or the reason it was dropped.

    `prompt` is a round prompt ending with the `Question:` cue
    (`instruct_prompts.build_prompt`); the fields are appended to it in the
    form `instruct_prompts.render_example` shows examples.
    """
    stem = model.generate(prompt, stop=_FIELD_STOPS, max_tokens=_STEM_TOKENS).strip()
    if len(stem.split()) < 2:
        return "no_question"
    if len(stem) >= 3 * _STEM_TOKENS:  # ran out of tokens mid-question
        return "unfinished"
    text = f"{prompt} {stem}\nOptions: (A)"
    for _ in range(OPTION_TRIES):
        options = _options(model.generate(text, stop=["\n"], max_tokens=_OPTION_TOKENS))
        if options:
            break
    else:
        return "bad_options"
    text = f"{text[:-len('(A)')]}" + render_options(options)
    caption = _line(model.generate(text + "\nImage caption:", stop=["\n"], max_tokens=_CAPTION_TOKENS))
    has_image = not is_empty(caption)
    text += f"\nImage caption: {caption if has_image else 'no image'}"
    ocr = _line(model.generate(text + "\nImage text:", stop=["\n"], max_tokens=_OCR_TOKENS)) if has_image else ""
    texts = [] if is_empty(ocr) else [t.strip() for t in ocr.split(";") if t.strip()]
    text += f"\nImage text: {'; '.join(texts) if texts else 'none'}\nAnswer:"
    best = scored_option(model, text, options, norm)
    return {
        "question": f"{stem}\nOptions: {render_options(options)}",
        "choices": options,
        "answer": LETTERS[best],
        "caption": caption if has_image else NO_IMG,
        "ocr": repr(texts) if has_image else NO_IMG,
        "answer_source": "scored",
    }
