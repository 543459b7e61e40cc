"""Self-instruct prompts: example blocks (in the form the parser reads back) and round prompts."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from core.answers import letter_index
from prompts.builder import load_template
from tools.image2text import ocr_texts
from training.instruct_parsing import is_empty, question_stem, render_options

CUE = "Question:"


def render_example(row: Mapping[str, Any], task_name: str) -> str:
    """One example block as the prompt shows it (and as the parser reads it back)."""
    if task_name != "scienceqa":
        return f"Question: {row['question'].strip()}\nAnswer: {row['answer'].strip()}"
    letter = row["answer"].strip()
    return f"{scienceqa_item_text(row)}\nAnswer: {letter}. {row['choices'][letter_index(letter)]}"


def scienceqa_item_text(row: Mapping[str, Any], choices: Sequence[str] | None = None) -> str:
    """A ScienceQA example block up to its answer line, with `choices` (default: the row's) as its options."""
    choices = row["choices"] if choices is None else choices
    has_image = not is_empty(row.get("caption"))
    texts = ocr_texts(row.get("ocr"))
    return "\n".join([
        f"Question: {question_stem(row['question'])}",
        f"Options: {render_options(choices)}",
        f"Image caption: {row['caption'].strip() if has_image else 'no image'}",
        f"Image text: {'; '.join(texts) if texts else 'none'}",
    ])


def answer_scoring_text(prompt: str, row: Mapping[str, Any], choices: Sequence[str] | None = None) -> str:
    """The text a ScienceQA item's options are scored after: the round `prompt` (ending with the `Question:`
    cue), the item's fields with `choices` as its options, and the `Answer:` cue."""
    return f"{prompt}{scienceqa_item_text(row, choices).removeprefix(CUE)}\nAnswer:"


_HINTS = {
    "bridge": "The first page leads to the second: ask about the second page through what the first page "
              "says, so that both pages are needed.",
    "comparison": "Both pages are about the same kind of thing{kind}: ask a question that compares them (which "
                  "one is older, larger or first, or whether both share something), so that both pages are needed.",
    "single": "Ask about a fact stated on the page.",
}


def build_prompt(task_name: str, examples: Sequence[Mapping[str, Any]], count: int,
                 pages: Sequence[tuple[str, str]] = (), kind: str = "", what: str = "",
                 questions_only: bool = False) -> str:
    """The round's prompt: instruction, examples, (grounded) pages and hint, then the `Question:` cue.

    `questions_only` (grounded mode, scored answers): the examples show only
    their questions and the model is asked for questions alone.
    """
    if questions_only:
        blocks = "\n".join(f"Question: {r['question'].strip()}" for r in examples)
    else:
        blocks = "\n\n".join(render_example(r, task_name) for r in examples)
    if pages:
        hint = _HINTS[kind].format(kind=f" ({what})" if what else "")
        template = "self_instruct_grounded_questions" if questions_only else "self_instruct_grounded"
        text = load_template(template).substitute(
            examples=blocks, count=count, hint=hint,
            pages="\n\n".join(f"Page: {title}\n{body}" for title, body in pages))
    else:
        text = load_template(f"self_instruct_{task_name}").substitute(examples=blocks, count=count)
    return f"{text}\n\n{CUE}"
