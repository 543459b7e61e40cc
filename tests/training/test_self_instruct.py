"""Self-instruct: lenient parsing of messy generations, dedup, stop/resume, bounded failure, grounded mode."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from core.errors import ConfigError
from tasks import get_task
from tests.support.builders import DATA
from tests.support.fakes import ScriptedModel
from training.answer_scoring import (
    choose_answer,
    extract_candidates,
    scoring_prompt,
    states_answer,
)
from training.dedup import DedupIndex
from training.instruct_parsing import read_questions
from training.self_instruct import (
    SelfInstructConfig,
    SelfInstructError,
    SelfInstructReport,
    build_prompt,
    find_groundings,
    page_kind,
    parse_hotpotqa_items,
    parse_scienceqa_items,
    read_items,
    read_seeds,
    run_self_instruct,
)

HOTPOT_SEEDS = DATA / "hotpotqa" / "seeds.jsonl"
SCIENCE_SEEDS = DATA / "scienceqa" / "seeds.jsonl"


def qa(items: list[dict]) -> list[tuple[str, str]]:
    return [(it["question"], it["answer"]) for it in items]


# --------------------------------------------------------------------------- HotpotQA parsing

@pytest.mark.parametrize("text,expected", [
    ("Question: Who directed the film Jaws?\nAnswer: Steven Spielberg\n\n"
     "Question: Which river flows through the capital of Austria?\nAnswer: Danube\n",
     [("Who directed the film Jaws?", "Steven Spielberg"),
      ("Which river flows through the capital of Austria?", "Danube")]),
    # preamble, numbering, indented labels
    ("Here are three new questions:\n1. Question: Where was the author of Dune born?\n   Answer: Tacoma\n"
     "2. Question: Which band released the album Nevermind?\n   Answer: Nirvana\n",
     [("Where was the author of Dune born?", "Tacoma"), ("Which band released the album Nevermind?", "Nirvana")]),
    # Q:/A: labels, numbered labels
    ("Q: What year was the Eiffel Tower finished?\nA: 1889\nQ2: Who founded the company that makes the iPhone?\n"
     "A2: Steve Jobs\n",
     [("What year was the Eiffel Tower finished?", "1889"),
      ("Who founded the company that makes the iPhone?", "Steve Jobs")]),
    # one line per item
    ("1) Q: In which country is the city of Lyon? A: France\n"
     "2) Question: Who wrote the play Hamlet? Answer: Shakespeare\n",
     [("In which country is the city of Lyon?", "France"), ("Who wrote the play Hamlet?", "Shakespeare")]),
    # missing labels
    ("1. Who painted the ceiling of the Sistine Chapel?\nMichelangelo\n2. What is the largest moon of Saturn?\n"
     "Titan\n",
     [("Who painted the ceiling of the Sistine Chapel?", "Michelangelo"),
      ("What is the largest moon of Saturn?", "Titan")]),
    # trailing chatter and an unfinished last item
    ("Question: Which ocean lies west of Portugal?\nAnswer: Atlantic Ocean\n\nI hope these questions help!\n"
     "Question: Who was the first",
     [("Which ocean lies west of Portugal?", "Atlantic Ocean")]),
    # an answer that is a sentence is too long; "The answer is X." becomes X
    ("Question: Why did the Roman Empire fall apart?\nAnswer: Because of many internal and external pressures "
     "that built up over several centuries of rule\nQuestion: Which city hosted the 1992 Summer Olympics?\n"
     "Answer: The answer is Barcelona.\n",
     [("Which city hosted the 1992 Summer Olympics?", "Barcelona")]),
    # markdown bold, yes/no with explanation
    ("**Question 1:** Are both Lyon and Nice cities in France?\n**Answer 1:** Yes, both are in France.\n"
     "**Question 2:** Is the Nile longer than the Thames?\n**Answer 2:** No.\n",
     [("Are both Lyon and Nice cities in France?", "yes"), ("Is the Nile longer than the Thames?", "no")]),
    # placeholder answers and questions too short are dropped; abbreviations keep their dot
    ("Question: Who is he?\nAnswer: John\nQuestion: Which band recorded the song Yesterday first?\nAnswer: ...\n"
     "Question: Which city is the seat of the United States Congress?\nAnswer: Washington, D.C.\n",
     [("Which city is the seat of the United States Congress?", "Washington, D.C.")]),
    # a question over two lines, quotes around the answer
    ("Question: The singer of the song Thriller was born in\nwhich US state?\nAnswer: \"Indiana\"\n",
     [("The singer of the song Thriller was born in which US state?", "Indiana")]),
    # label variants "Question 3 -" / "Answer -"
    ("Question 3 - What is the capital of the country where Mozart was born?\nAnswer - Vienna\n",
     [("What is the capital of the country where Mozart was born?", "Vienna")]),
    # an unlabelled line after the question is more question text when a labelled answer follows
    ("Question: Is the following sentence about a city?\nParis is the capital of France.\nAnswer: yes\n"
     "Question: Which river runs through the city of Paris?\nSeine\n",
     [("Is the following sentence about a city? Paris is the capital of France.", "yes"),
      ("Which river runs through the city of Paris?", "Seine")]),
    # other labelled lines are not answers
    ("1. Which element has the chemical symbol Fe?\nExplanation: Fe comes from Latin.\nAnswer: Iron\n",
     [("Which element has the chemical symbol Fe?", "Iron")]),
    ("", []),
    ("Sorry, I cannot help with that.", []),
])
def test_parse_hotpotqa(text, expected):
    assert qa(parse_hotpotqa_items(text)) == expected


def test_parse_hotpotqa_reasons_and_truncation():
    text = ("Question: Who wrote the novel Emma?\nAnswer: Jane Austen\nQuestion: Who wrote the novel Dracula?\n"
            "Answer: Bram Sto")
    assert read_items(text, "hotpotqa") == [{"question": "Who wrote the novel Emma?", "answer": "Jane Austen"},
                                            {"question": "Who wrote the novel Dracula?", "answer": "Bram Sto"}]
    # when the model ran out of tokens, the last item may be cut mid-answer
    assert read_items(text, "hotpotqa", truncated=True)[-1] == "unfinished"
    assert read_items(text + "\n", "hotpotqa", truncated=True)[-1] == {"question": "Who wrote the novel Dracula?",
                                                                      "answer": "Bram Sto"}
    reasons = read_items("Question: Which is the longest river in the world today?\n"
                         "Answer: It is a very long river that goes through many countries in Africa\n"
                         "Question: Who?\nAnswer: Bob\nQuestion: What is the tallest mountain?\n", "hotpotqa")
    assert reasons == ["answer_too_long", "bad_question", "unfinished"]


# --------------------------------------------------------------------------- ScienceQA parsing

def sqa(items: list[dict]) -> list[tuple]:
    return [(it["question"], it["choices"], it["answer"], it["caption"], it["ocr"]) for it in items]


CAPITAL = "What is the capital of Texas?\nOptions: (A) Austin (B) Dallas (C) Houston"


@pytest.mark.parametrize("text,expected", [
    ("Question: What is the capital of Texas?\nOptions: (A) Austin (B) Dallas (C) Houston\n"
     "Image caption: no image\nImage text: none\nAnswer: A. Austin\n",
     [(CAPITAL, ["Austin", "Dallas", "Houston"], "A", "no img", "no img")]),
    # options one per line, answer "(B)", caption without OCR
    ("Question: Which animal is a mammal?\n(A) frog\n(B) whale\n(C) trout\nImage caption: A whale in the sea.\n"
     "Answer: (B)\n",
     [("Which animal is a mammal?\nOptions: (A) frog (B) whale (C) trout", ["frog", "whale", "trout"], "B",
       "A whale in the sea.", "[]")]),
    # "A." options, bare letter answer, OCR text
    ("1. Question: Which state is highlighted on the map?\nA. Ohio\nB. Iowa\nImage caption: A map of the USA.\n"
     "Image text: Ohio; Iowa\nAnswer: B\n",
     [("Which state is highlighted on the map?\nOptions: (A) Ohio (B) Iowa", ["Ohio", "Iowa"], "B",
       "A map of the USA.", "['Ohio', 'Iowa']")]),
    # answer given as the option text
    ("Question: Which is a solid?\nOptions: (A) milk (B) rock (C) steam\nAnswer: rock\n",
     [("Which is a solid?\nOptions: (A) milk (B) rock (C) steam", ["milk", "rock", "steam"], "B", "no img",
       "no img")]),
    # inline options in the question line, no "Options:" label
    ("Question: Which word is a noun? (A) run (B) table (C) quickly\nAnswer: B. table\n",
     [("Which word is a noun?\nOptions: (A) run (B) table (C) quickly", ["run", "table", "quickly"], "B",
       "no img", "no img")]),
    # Q:/A: labels: "A:" after the options is the answer
    ("Q: Which planet is closest to the Sun?\nOptions: (A) Venus (B) Mars (C) Mercury\nA: C\n",
     [("Which planet is closest to the Sun?\nOptions: (A) Venus (B) Mars (C) Mercury",
       ["Venus", "Mars", "Mercury"], "C", "no img", "no img")]),
    # too many / too few options, answer outside the options, letter and text disagree: all dropped
    ("Question: Pick a colour.\nOptions: (A) red (B) blue (C) green (D) pink (E) gold (F) grey\nAnswer: A\n"
     "Question: Pick a shape please.\nOptions: (A) circle\nAnswer: A\n"
     "Question: Which is warmer?\nOptions: (A) ice (B) fire\nAnswer: (D)\n"
     "Question: Which is colder?\nOptions: (A) ice (B) fire\nAnswer: B. ice\n", []),
    # "The answer is (C).", numbered items, chatter and an unfinished last item
    ("Sure! Here you go.\n1. Question: Which of these is a fruit?\nOptions: (A) carrot (B) potato (C) apple\n"
     "Answer: The answer is (C).\n\nThese questions test basic knowledge.\n2. Question: Which of these",
     [("Which of these is a fruit?\nOptions: (A) carrot (B) potato (C) apple", ["carrot", "potato", "apple"],
       "C", "no img", "no img")]),
    # a stem over several lines (context passage)
    ("Question: Which tense does the sentence use?\nContext: Mia will paint the fence.\n"
     "Options: (A) past tense (B) future tense\nImage caption: none\nAnswer: B\n",
     [("Which tense does the sentence use?\nContext: Mia will paint the fence.\nOptions: (A) past tense "
       "(B) future tense", ["past tense", "future tense"], "B", "no img", "no img")]),
    # bulleted options after an empty "Options:" label, markdown, OCR as a raw list
    ("**Question:** Which material is flexible?\n**Options:**\n- rubber band\n- glass\n"
     "**Image caption:** A photo of a rubber band.\n**Image text:** ['rubber']\n**Answer:** A\n",
     [("Which material is flexible?\nOptions: (A) rubber band (B) glass", ["rubber band", "glass"], "A",
       "A photo of a rubber band.", "['rubber']")]),
    # inline "A) x B) y" options, duplicated options dropped
    ("Question: Which is a mammal?\nOptions: A) cat B) snake\nAnswer: A\n"
     "Question: Which is a bird?\nOptions: (A) robin (B) Robin\nAnswer: A\n",
     [("Which is a mammal?\nOptions: (A) cat (B) snake", ["cat", "snake"], "A", "no img", "no img")]),
    ("no questions here", []),
])
def test_parse_scienceqa(text, expected):
    assert sqa(parse_scienceqa_items(text)) == expected


def test_parsed_scienceqa_rows_validate():
    text = "Question: Which is a gas?\nOptions: (A) air (B) wood\nAnswer: A\n"
    (item,) = parse_scienceqa_items(text)
    assert get_task("scienceqa").validate({"id": "x", **item, "metadata": {}}) is None


# --------------------------------------------------------------------------- dedup

def test_dedup_exact_and_near():
    index = DedupIndex(jaccard=0.8, ratio=0.9)
    index.add("Which city hosted the Summer Olympics in the year 1992?")
    assert len(index) == 1
    assert index.check("which city hosted THE summer olympics in the year 1992") == "duplicate"
    assert index.check("Which city hosted the Summer Olympics in the year 1992 ?") == "duplicate"
    # same words in another order: Jaccard 1.0
    assert index.check("In the year 1992, which city hosted the Summer Olympics?") == "near_duplicate"
    # one word changed, one added: Jaccard 0.7 but characters 93% alike
    assert index.check("Which city hosted the Summer Olympic Games in the year 1992?") == "near_duplicate"
    assert index.check("Which city hosted the Winter Olympics in the year 1994?") is None
    assert index.check("Who directed the film Jaws?") is None


# --------------------------------------------------------------------------- the loop

QUESTIONS = [
    ("Which river flows through the capital city of Hungary?", "Danube"),
    ("Who composed the opera that premiered at La Scala in 1926?", "Puccini"),
    ("What is the home stadium of the football club founded in Turin in 1897?", "Allianz Stadium"),
    ("Which author wrote the novel that inspired the film Blade Runner?", "Philip K. Dick"),
    ("In what year did the ship that rescued the Titanic survivors sink?", "1918"),
    ("Are both Oslo and Helsinki capital cities?", "yes"),
    ("Which mountain range contains the highest peak of Argentina?", "Andes"),
    ("Who founded the record label that signed the band Joy Division?", "Tony Wilson"),
    ("Which landlocked country borders both Chile and Paraguay?", "Bolivia"),
    ("What language is spoken in the country whose capital is Lima?", "Spanish"),
    ("Which university did the inventor of the telephone teach at?", "Boston University"),
    ("Who was born first, Mozart or Beethoven?", "Mozart"),
]


def hotpot_block(i: int) -> str:
    question, answer = QUESTIONS[i]
    return f" {question}\nAnswer: {answer}\n\n"


def rounds(*groups: list[int]) -> list[str]:
    """One scripted generation per group: the continuation after the `Question:` cue."""
    out = []
    for group in groups:
        text = "".join(hotpot_block(i) if j == 0 else "Question:" + hotpot_block(i) for j, i in enumerate(group))
        out.append(text)
    return out


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_stops_at_n_and_rows_validate(tmp_path):
    out = tmp_path / "si.jsonl"
    model = ScriptedModel(generations=rounds([0, 1, 2], [3, 4, 5]))
    report = run_self_instruct(model, "hotpotqa", HOTPOT_SEEDS, out, SelfInstructConfig(n=4), progress=False)
    rows = read_out(out)
    assert len(rows) == 4 and report.accepted == 4 and report.total == 4 and report.rounds == 2
    assert [r["id"] for r in rows] == [f"si-hotpotqa-0000{i}" for i in range(4)]
    assert all(get_task("hotpotqa").validate(r) is None for r in rows)
    assert rows[0]["level"] == "synthetic" and rows[0]["type"] == "bridge"
    assert "Answer: Manhattan" in model.prompts[0] and model.prompts[0].endswith("\nQuestion:")
    assert "Write 10 new questions" in model.prompts[0]
    assert report.stopped_reason == "reached n=4"


def test_questions_of_the_evaluation_are_dropped_and_counted(tmp_path):
    """A generated question equal or near to a held-out (evaluated) question is never kept, and its reason
    says it was an evaluation question."""
    out = tmp_path / "si.jsonl"
    model = ScriptedModel(generations=rounds([0, 1, 2, 3]))
    near = QUESTIONS[2][0].rstrip("?") + " today?"
    report = run_self_instruct(model, "hotpotqa", HOTPOT_SEEDS, out, SelfInstructConfig(n=2), progress=False,
                               held_out=[QUESTIONS[1][0].upper(), near])
    assert [r["question"] for r in read_out(out)] == [QUESTIONS[0][0], QUESTIONS[3][0]]
    assert report.rejected == {"eval_duplicate": 1, "eval_near_duplicate": 1}


def test_rejects_seed_copies_and_near_duplicates(tmp_path):
    out = tmp_path / "si.jsonl"
    copy = " Are both Shangri-La City and Ma'anshan cities in China?\nAnswer: yes\n\n"
    same = "Question: Which river flows through the capital city of Hungary ?\nAnswer: Danube\n\n"
    near = "Question: Which river flows through the capital city of the Hungary nation?\nAnswer: Tisza\n\n"
    model = ScriptedModel(generations=[copy + "Question:" + hotpot_block(0) + same + near + "Question:"
                                       + hotpot_block(1)])
    report = run_self_instruct(model, "hotpotqa", HOTPOT_SEEDS, out, SelfInstructConfig(n=2), progress=False)
    assert [r["answer"] for r in read_out(out)] == ["Danube", "Puccini"]
    assert report.rejected == {"duplicate": 2, "near_duplicate": 1}


def test_resume_continues_to_n_without_duplicates(tmp_path):
    out = tmp_path / "si.jsonl"
    run_self_instruct(ScriptedModel(generations=rounds([0, 1, 2])), "hotpotqa", HOTPOT_SEEDS, out,
                      SelfInstructConfig(n=3), progress=False)
    # a torn last line from an interrupted write is cut off
    with out.open("a") as f:
        f.write('{"id": "si-hotpotqa-00003", "question": "Who')
    model = ScriptedModel(generations=rounds([1, 2, 3], [2, 4, 5, 6]))
    report = run_self_instruct(model, "hotpotqa", HOTPOT_SEEDS, out, SelfInstructConfig(n=6, examples_shown=2),
                               progress=False)
    rows = read_out(out)
    assert len(rows) == 6 and report.accepted == 3 and report.rejected["duplicate"] == 3
    assert [r["id"] for r in rows] == [f"si-hotpotqa-0000{i}" for i in range(6)]
    assert len({r["question"] for r in rows}) == 6
    # earlier generated rows are shown as examples
    assert sum(f"Question: {QUESTIONS[i][0]}" in model.prompts[0] for i in range(3)) == 2
    # already complete: nothing is asked
    again = ScriptedModel()
    report = run_self_instruct(again, "hotpotqa", HOTPOT_SEEDS, out, SelfInstructConfig(n=5), progress=False)
    assert report.accepted == 0 and not again.prompts and len(read_out(out)) == 6


def test_empty_rounds_stop_with_a_clear_error(tmp_path):
    out = tmp_path / "si.jsonl"
    model = ScriptedModel(generations=rounds([0]) + ["I am not sure what you mean."] * 10)
    with pytest.raises(SelfInstructError) as err:
        run_self_instruct(model, "hotpotqa", HOTPOT_SEEDS, out, SelfInstructConfig(n=5, max_empty_rounds=3),
                          progress=False)
    assert len(model.prompts) == 4
    message = str(err.value)
    assert "3 rounds in a row" in message and "1/5 rows" in message and "I am not sure what you mean." in message
    assert err.value.report.accepted == 1 and len(read_out(out)) == 1


class SlowModel:
    """Thread-safe scripted generations that take a while; records how many calls overlapped."""

    def __init__(self, generations: list[str]) -> None:
        self.generations, self.lock = list(generations), threading.Lock()
        self.running = self.most_running = 0

    def generate(self, prompt: str, stop=None, max_tokens: int = 0) -> str:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            text = self.generations.pop(0) if self.generations else "nothing"
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
        return text


def test_concurrent_rounds_overlap_and_keep_the_file_in_order(tmp_path):
    out = tmp_path / "si.jsonl"
    model = SlowModel(rounds([0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]))
    report = run_self_instruct(model, "hotpotqa", HOTPOT_SEEDS, out, SelfInstructConfig(n=9, concurrency=3),
                               progress=False)
    rows = read_out(out)
    assert model.most_running == 3
    assert [r["id"] for r in rows] == [f"si-hotpotqa-0000{i}" for i in range(9)]
    assert {r["question"] for r in rows} == {QUESTIONS[i][0] for i in range(9)}
    assert report.accepted == 9 and report.rounds == 3  # rounds whose results were used


def test_deterministic_given_seed(tmp_path):
    """The seed alone fixes which examples each prompt shows and in what order: the same seed gives the
    same prompts and file, another seed other prompts (same scripted rows, so the same file)."""
    def run(k: int, seed: int) -> tuple[list[str], str]:
        model = ScriptedModel(generations=rounds([0, 1, 2], [3, 4], [5, 6], [7, 8, 9, 10, 11]))
        out = tmp_path / f"{k}.jsonl"
        run_self_instruct(model, "hotpotqa", HOTPOT_SEEDS, out, SelfInstructConfig(n=12, seed=seed),
                          progress=False)
        return model.prompts, out.read_text()

    (first, file_a), (again, file_b), (other, file_c) = run(0, 3), run(1, 3), run(2, 4)
    assert len(first) == 4 and first == again and file_a == file_b
    assert other != first and all(p != q for p, q in zip(first, other))
    # every prompt differs only in which examples it samples and their order, never in what it asks
    counts = [p.count("Question:") for p in first]
    assert [p.count("Question:") for p in other] == counts
    assert [c - counts[0] for c in counts] == [0, 3, 3, 3]  # the seeds, then 3 sampled rows besides them
    assert sorted(first[0].splitlines()) == sorted(other[0].splitlines())
    assert file_c == file_a


def test_scienceqa_run_writes_valid_rows(tmp_path):
    out = tmp_path / "sqa.jsonl"
    gen = (" Which of these is a mammal?\nOptions: (A) shark (B) dolphin\nImage caption: no image\n"
           "Image text: none\nAnswer: B. dolphin\n\nQuestion: Which state is farthest east?\n"
           "Options: (A) Maine (B) Ohio (C) Utah\nImage caption: A map of the United States.\n"
           "Image text: Maine; Ohio; Utah\nAnswer: A. Maine\n")
    model = ScriptedModel(generations=[gen])
    config = SelfInstructConfig(n=2, answer_by="generate", permutations=0, shuffle_options=False)
    report = run_self_instruct(model, "scienceqa", SCIENCE_SEEDS, out, config, progress=False)
    rows = read_out(out)
    assert report.accepted == 2 and all(get_task("scienceqa").validate(r) is None for r in rows)
    assert rows[1]["answer"] == "A" and rows[1]["ocr"] == "['Maine', 'Ohio', 'Utah']"
    assert rows[0]["caption"] == "no img" and rows[1]["metadata"]["has_image"] is True
    prompt = model.prompts[0]
    assert "Options: (A) West Virginia (B) Louisiana (C) Arizona (D) Oklahoma" in prompt
    assert "Image text: Oklahoma; West Virginia; Arizona; Louisiana" in prompt
    assert "Answer: A. West Virginia" in prompt


def test_guided_scienceqa_fills_fields_and_scores_the_answer(tmp_path):
    out = tmp_path / "sqa.jsonl"
    fields = [" Which animal lives in water?", " frog (B) camel (C) whale", " A photo of the sea.", " OCEAN",
              " Which is a solid?", " milk (B) milk", " milk",  # bad options twice: dropped after three calls
              " Which word rhymes with cat?", " hat (B) dog", " none"]  # no image: no OCR question
    model = ScriptedModel(generations=fields, prefer=[" C. whale", " A. hat"])
    config = SelfInstructConfig(n=2, per_round=3, permutations=0, shuffle_options=False)
    report = run_self_instruct(model, "scienceqa", SCIENCE_SEEDS, out, config, progress=False)
    rows = read_out(out)
    assert report.accepted == 2 and report.rejected == {"bad_options": 1}
    assert rows[0]["question"] == "Which animal lives in water?\nOptions: (A) frog (B) camel (C) whale"
    assert rows[0]["answer"] == "C" and rows[0]["caption"] == "A photo of the sea." and rows[0]["ocr"] == "['OCEAN']"
    assert rows[1]["answer"] == "A" and rows[1]["caption"] == "no img" and rows[1]["ocr"] == "no img"
    assert all(get_task("scienceqa").validate(r) is None for r in rows)
    assert all(r["answer_source"] == "scored" for r in rows)
    first = model.prompts[:5]  # stem, options, caption, OCR, then the scored answer
    assert first[0].endswith("Question:") and first[1].endswith("Which animal lives in water?\nOptions: (A)")
    assert first[2].endswith("(A) frog (B) camel (C) whale\nImage caption:")
    assert first[3].endswith("Image caption: A photo of the sea.\nImage text:")
    assert first[4].endswith("Image text: OCEAN\nAnswer:")


GUIDED_FIELDS = [" Which animal lives in water?", " frog (B) camel (C) whale", " A photo of the sea.", " OCEAN"]


def test_guided_items_whose_answer_follows_the_content_are_kept_with_shuffled_options(tmp_path):
    """The model prefers the whale wherever it stands: every other order agrees, the item is kept with its
    agreement, and its options are shuffled with the answer letter following the whale."""
    out = tmp_path / "sqa.jsonl"
    model = ScriptedModel(generations=list(GUIDED_FIELDS), prefer=[" whale"] * 4)
    report = run_self_instruct(model, "scienceqa", SCIENCE_SEEDS, out, SelfInstructConfig(n=1, per_round=1),
                               progress=False)
    [row] = read_out(out)
    assert report.accepted == 1 and report.agreement == [1.0] and row["answer_agreement"] == 1.0
    assert sorted(row["choices"]) == ["camel", "frog", "whale"]
    assert row["choices"][ord(row["answer"]) - 65] == "whale"
    assert row["question"].endswith("Options: " + " ".join(f"({'ABC'[i]}) {c}" for i, c in enumerate(row["choices"])))
    scored = [p for p in model.prompts if p.endswith("Answer:")]
    assert len(scored) == 4  # the original order and three others
    assert len({p.rsplit("\nOptions: ", 1)[1].split("\n")[0] for p in scored}) == 4  # four distinct orders
    assert report.summary()["answer_letters"] == {row["answer"]: 1}
    assert get_task("scienceqa").validate(row) is None


def test_guided_items_whose_answer_is_a_position_are_dropped_and_counted(tmp_path):
    """A model that always prefers (A) picks the frog first, then whatever the other orders put first: both
    cyclic shifts move the frog off (A), so the item is `position_bias`, and its agreement is recorded."""
    out = tmp_path / "sqa.jsonl"
    model = ScriptedModel(generations=list(GUIDED_FIELDS), prefer=[" A."] * 4)
    config = SelfInstructConfig(n=1, per_round=1, max_empty_rounds=1)
    with pytest.raises(SelfInstructError) as err:
        run_self_instruct(model, "scienceqa", SCIENCE_SEEDS, out, config, progress=False)
    report = err.value.report
    assert report.rejected["position_bias"] == 1 and read_out(out) == []
    assert len(report.agreement) == 1 and report.agreement[0] <= 1 / 3  # the third order is random
    summary = report.summary()
    assert summary["rejected_by"]["position_bias"] == 1 and summary["order_agreement"] == round(report.agreement[0], 4)
    assert summary["order_checked"] == 1 and "answer_letters" not in summary


def test_min_agreement_keeps_an_item_most_orders_agree_on(tmp_path):
    """With min_agreement 2/3 an item two of three other orders agree on is kept; at 1.0 it is not."""
    def run(min_agreement: float, k: int) -> SelfInstructReport:
        # the original order and two others pick the whale, the third other order the frog
        model = ScriptedModel(generations=list(GUIDED_FIELDS), prefer=[" whale", " whale", " whale", " frog"])
        config = SelfInstructConfig(n=1, per_round=1, max_empty_rounds=1, min_agreement=min_agreement)
        try:
            return run_self_instruct(model, "scienceqa", SCIENCE_SEEDS, tmp_path / f"{k}.jsonl", config,
                                     progress=False)
        except SelfInstructError as err:
            return err.report

    kept, dropped = run(0.6, 0), run(1.0, 1)
    assert kept.accepted == 1 and kept.agreement == [pytest.approx(2 / 3)]
    assert dropped.accepted == 0 and dropped.rejected["position_bias"] == 1


def test_generated_items_are_checked_against_their_written_letter(tmp_path):
    """answer_by="generate": the written answer (B, dolphin) must be what the model scores in the written
    order and the other one; a model preferring the dolphin keeps it, one preferring (A) drops it."""
    gen = (" Which of these is a mammal?\nOptions: (A) shark (B) dolphin\nImage caption: no image\n"
           "Image text: none\nAnswer: B. dolphin\n")
    config = SelfInstructConfig(n=1, answer_by="generate", max_empty_rounds=1, shuffle_options=False)
    keeps = ScriptedModel(generations=[gen], prefer=[" dolphin"] * 2)
    report = run_self_instruct(keeps, "scienceqa", SCIENCE_SEEDS, tmp_path / "a.jsonl", config, progress=False)
    assert report.accepted == 1 and report.agreement == [1.0]
    assert read_out(tmp_path / "a.jsonl")[0]["answer"] == "B"  # not shuffled: shuffle_options=False
    drops = ScriptedModel(generations=[gen], prefer=[" A."] * 2)
    with pytest.raises(SelfInstructError) as err:
        run_self_instruct(drops, "scienceqa", SCIENCE_SEEDS, tmp_path / "b.jsonl", config, progress=False)
    assert err.value.report.rejected == {"position_bias": 1} and err.value.report.agreement == [0.5]


def test_guided_scienceqa_rejects_a_missing_question():
    from training.guided_items import guided_scienceqa_item
    model = ScriptedModel(generations=["  \n"])
    assert guided_scienceqa_item(model, "Question:") == "no_question" and len(model.prompts) == 1


def test_seeds_and_config_errors(tmp_path):
    for bad in ({"permutations": -1}, {"min_agreement": 1.5}):
        with pytest.raises(ConfigError, match="permutations|min_agreement"):
            run_self_instruct(ScriptedModel(), "scienceqa", SCIENCE_SEEDS, tmp_path / "x.jsonl",
                              SelfInstructConfig(**bad), progress=False)
    seeds = read_seeds(SCIENCE_SEEDS, get_task("scienceqa"))
    assert [s["answer"] for s in seeds] == ["A", "B"] and len(seeds[1]["choices"]) == 2
    with pytest.raises(ConfigError):
        run_self_instruct(ScriptedModel(), "scienceqa", SCIENCE_SEEDS, tmp_path / "x.jsonl",
                          SelfInstructConfig(grounded=True), progress=False)
    with pytest.raises(ConfigError):
        run_self_instruct(ScriptedModel(), "hotpotqa", HOTPOT_SEEDS, tmp_path / "x.jsonl",
                          SelfInstructConfig(task="scienceqa"), progress=False)


# --------------------------------------------------------------------------- grounded mode

CORPUS = [
    {"id": "c1", "question": "Where was the director of Blue Harbor born?", "answer": "Tarnow", "type": "bridge",
     "level": "easy", "supporting_facts": [["Blue Harbor", 0], ["Anna Kowal", 1]],
     "context": [["Blue Harbor", ["Blue Harbor is a 1990 drama film directed by Anna Kowal.",
                                  " It was shot in Gdynia."]],
                 ["Anna Kowal", ["Anna Kowal is a Polish film director.", " She was born in Tarnow in 1950."]],
                 ["Gdynia", ["Gdynia is a port city in Poland."]]]},
    {"id": "c2", "question": "Which band formed first, Red Kite or Grey Owl?", "answer": "Red Kite",
     "type": "comparison", "level": "easy", "supporting_facts": [["Red Kite", 0], ["Grey Owl", 0]],
     "context": [["Red Kite", ["Red Kite is a rock band formed in 1971."]],
                 ["Grey Owl", ["Grey Owl is a rock band formed in 1984."]]]},
]


def test_find_groundings_and_page_kind():
    found = find_groundings(CORPUS)
    assert [(g.titles, g.kind) for g in found] == [(("Blue Harbor", "Anna Kowal"), "bridge"),
                                                   (("Red Kite", "Grey Owl"), "comparison")]
    assert found[1].what == "band"
    bare = [{k: v for k, v in CORPUS[0].items() if k not in ("supporting_facts", "type")}]
    derived = find_groundings(bare)
    assert (("Blue Harbor", "Anna Kowal"), "bridge") in [(g.titles, g.kind) for g in derived]
    assert page_kind(["Red Kite is a rock band formed in 1971."]) == "band"
    assert page_kind(["Blue Harbor is a 1990 drama film directed by Anna Kowal."]) == "film"


def test_grounded_prompts_show_pages_and_rows_record_grounding(tmp_path):
    out = tmp_path / "g.jsonl"
    model = ScriptedModel(generations=[
        " In which year was the director of Blue Harbor born?\nAnswer: 1950\n\n"
        "Question: In which country was the director of Blue Harbor working?\nAnswer: France\n",
        " Which was formed later, Red Kite or Grey Owl?\nAnswer: Grey Owl\n",
    ])
    report = run_self_instruct(model, "hotpotqa", HOTPOT_SEEDS, out,
                               SelfInstructConfig(n=2, seed=1, answer_by="generate"),
                               corpus_rows=CORPUS, progress=False)
    rows = read_out(out)
    assert report.accepted == 2 and report.rejected == {"answer_not_in_pages": 1}
    assert all(get_task("hotpotqa").validate(r) is None for r in rows)
    by_answer = {r["answer"]: r for r in rows}
    assert by_answer["1950"]["grounding"] == ["Blue Harbor", "Anna Kowal"]
    assert by_answer["1950"]["type"] == "bridge" and by_answer["1950"]["level"] == "synthetic"
    assert by_answer["Grey Owl"]["grounding"] == ["Red Kite", "Grey Owl"]
    assert by_answer["Grey Owl"]["type"] == "comparison"
    assert [c[0] for c in by_answer["1950"]["context"]] == ["Blue Harbor", "Anna Kowal", "Gdynia"]
    joined = "\n".join(model.prompts)
    assert "Page: Anna Kowal\nAnna Kowal is a Polish film director. She was born in Tarnow in 1950." in joined
    assert "Page: Grey Owl\nGrey Owl is a rock band formed in 1984." in joined
    assert "(band)" in joined
    # the corpus rows' own questions and answers are never shown
    assert not any(row["question"] in joined for row in CORPUS)
    assert "Answer: Tarnow" not in joined and "Answer: Red Kite" not in joined


def test_grounded_rejects_corpus_questions(tmp_path):
    model = ScriptedModel(generations=[" Where was the director of Blue Harbor born?\nAnswer: Tarnow\n"] * 2)
    with pytest.raises(SelfInstructError):
        run_self_instruct(model, "hotpotqa", HOTPOT_SEEDS, tmp_path / "g.jsonl",
                          SelfInstructConfig(n=1, max_empty_rounds=2), corpus_rows=CORPUS, progress=False)


def test_build_prompt_forms():
    seeds = read_seeds(HOTPOT_SEEDS, get_task("hotpotqa"))
    prompt = build_prompt("hotpotqa", seeds, 2, pages=[("A", "a text")], kind="single")
    assert "Page: A\na text" in prompt and "write 2 new question(s)" in prompt and prompt.endswith("Question:")
    assert "$" not in prompt


# --------------------------------------------------------------------------- grounded mode, scored answers

PAGES = [("Blue Harbor", "Blue Harbor is a 1990 drama film directed by Anna Kowal. It was shot in Gdynia."),
         ("Anna Kowal (director)", "Anna Kowal is a Polish film director. She was born in Tarnow on March 3, 1950. "
                                   "She studied at the University of Warsaw.")]


def test_extract_candidates_from_two_pages():
    cands = extract_candidates(PAGES, "bridge", "Where was the director of Blue Harbor born?")
    assert cands[:2] == ["Blue Harbor", "Anna Kowal"]  # titles first, disambiguation stripped
    for want in ("Tarnow", "Gdynia", "University of Warsaw", "Polish", "March 3, 1950", "1950", "1990"):
        assert want in cands
    # no sentence-initial stopwords, lone month names, yes/no (bridge) or the question itself
    assert not {"It", "She", "March", "yes", "no", "Where was the director of Blue Harbor born?"} & set(cands)
    assert len(cands) == len({c.lower() for c in cands})
    # spans of the second page come before the first page's other spans (bridge answers live there)
    assert cands.index("Tarnow") < cands.index("Gdynia")
    comparison = extract_candidates([("Red Kite", "Red Kite is a rock band formed in 1971."),
                                     ("Grey Owl", "Grey Owl is a rock band formed in 1984.")], "comparison")
    assert comparison == ["Red Kite", "Grey Owl", "1971", "1984", "yes", "no"]
    assert len(extract_candidates(PAGES, "bridge", limit=3)) == 3
    assert extract_candidates(PAGES, "comparison", limit=4)[-2:] == ["yes", "no"]  # yes/no survive the cap


def test_choose_answer_picks_the_preferred_candidate_with_a_leading_space():
    model = ScriptedModel(prefer=["Tarnow"])
    prompt = scoring_prompt(PAGES, "Where was the director of Blue Harbor born?")
    assert prompt.endswith("Question: Where was the director of Blue Harbor born?\nAnswer:")
    assert "Page: Anna Kowal (director)\nAnna Kowal is a Polish" in prompt
    answer, score = choose_answer(model, prompt, ["Gdynia", "Tarnow", "1950"])
    assert answer == "Tarnow" and model.prompts == [prompt]

    class Recorder(ScriptedModel):
        def score(self, prompt, candidates):
            self.seen = list(candidates)
            return [-10.0, -12.0]  # sums: the long span is likelier per character

    rec = Recorder()
    assert choose_answer(rec, "p", ["Li", "University of Warsaw"])[0] == "University of Warsaw"
    assert rec.seen == [" Li", " University of Warsaw"]
    assert choose_answer(rec, "p", ["Li", "University of Warsaw"], norm="none")[0] == "Li"
    with pytest.raises(ValueError):
        choose_answer(rec, "p", [])


def test_states_answer():
    assert states_answer("Where was Anna Kowal born?", "Anna Kowal")
    assert not states_answer("Where was Anna Kowal born?", "Tarnow")
    # a comparison choice question names its answer as an alternative: allowed
    assert not states_answer("Which formed first, Red Kite or Grey Owl?", "Red Kite", "comparison")


def test_read_questions_ignores_answer_lines():
    text = ("Question: Where was the director of Blue Harbor born?\nAnswer: Paris\n"
            "Question: In which year was the director of Blue Harbor born?\n"
            "Question: Who\nQuestion: What city did the film Blue")
    assert read_questions(text, truncated=True) == [
        "Where was the director of Blue Harbor born?", "In which year was the director of Blue Harbor born?",
        "bad_question", "unfinished"]


def test_grounded_scored_answers_come_from_the_pages(tmp_path):
    out = tmp_path / "g.jsonl"
    model = ScriptedModel(
        generations=[" In which year was the director of Blue Harbor born?\nAnswer: France\n\n"
                     "Question: Where was the director of Blue Harbor born?\n",
                     " Which was formed later, Red Kite or Grey Owl?\n"],
        prefer=["1950", "Grey Owl"])
    report = run_self_instruct(model, "hotpotqa", HOTPOT_SEEDS, out, SelfInstructConfig(n=2, seed=1),
                               corpus_rows=CORPUS, progress=False)
    rows = read_out(out)
    # the corpus row's own question is a duplicate, dropped before it costs a scoring call
    assert report.accepted == 2 and report.rejected == {"duplicate": 1} and len(model.prompts) == 4
    assert all(get_task("hotpotqa").validate(r) is None for r in rows)
    assert all(r["answer_source"] == "scored" and r["level"] == "synthetic" for r in rows)
    by_answer = {r["answer"]: r for r in rows}
    assert set(by_answer) == {"1950", "Grey Owl"}  # "France", the generated answer line, is ignored
    assert by_answer["1950"]["grounding"] == ["Blue Harbor", "Anna Kowal"] and by_answer["1950"]["type"] == "bridge"
    assert by_answer["Grey Owl"]["type"] == "comparison"
    assert [c[0] for c in by_answer["1950"]["context"]] == ["Blue Harbor", "Anna Kowal", "Gdynia"]
    # the generation prompt asks for questions only; the scoring prompt ends with the answer cue
    gen_prompt = model.prompts[0]
    assert "Answer:" not in gen_prompt and gen_prompt.endswith("Question:") and "Page: Anna Kowal" in gen_prompt
    assert model.prompts[1].endswith("Question: In which year was the director of Blue Harbor born?\nAnswer:")
    # the corpus rows' own questions and answers are never shown
    joined = "\n".join(model.prompts)
    assert not any(row["question"] in joined for row in CORPUS)


def test_grounded_scored_rejects_a_question_that_states_its_answer(tmp_path):
    model = ScriptedModel(generations=[" Who directed the film Blue Harbor in 1990?\n"] * 2,
                          prefer=["Blue Harbor"] * 2)
    with pytest.raises(SelfInstructError) as e:
        run_self_instruct(model, "hotpotqa", HOTPOT_SEEDS, tmp_path / "g.jsonl",
                          SelfInstructConfig(n=1, max_empty_rounds=2, per_pair=1), corpus_rows=CORPUS[:1],
                          progress=False)
    assert e.value.report.rejected == {"question_contains_answer": 2}
    with pytest.raises(ConfigError):
        run_self_instruct(model, "hotpotqa", HOTPOT_SEEDS, tmp_path / "x.jsonl",
                          SelfInstructConfig(answer_by="guess"), corpus_rows=CORPUS, progress=False)


def test_cli_answer_by_flag():
    from autoact.cli import build_parser
    base = ["self-instruct", "--task", "hotpotqa", "--seeds", "s.jsonl", "--out", "o.jsonl"]
    assert build_parser().parse_args(base).answer_by == "score"
    assert build_parser().parse_args([*base, "--answer-by", "generate"]).answer_by == "generate"
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--answer-by", "guess"])


def test_guided_options_that_fail_their_check_are_written_again_once_for_the_same_stem():
    from training.guided_items import OPTION_TRIES, guided_scienceqa_item
    model = ScriptedModel(generations=[" Which is a solid?", " milk (B) milk", " rock (B) milk", " no image"],
                          prefer=[" A. rock"])
    item = guided_scienceqa_item(model, "Question:")
    assert OPTION_TRIES == 2 and item["choices"] == ["rock", "milk"] and item["answer"] == "A"
    assert model.prompts[1] == model.prompts[2]  # the second options line is asked for with the same text
