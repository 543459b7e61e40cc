"""`autoact report`: tables, failed stages, missing evaluations, several runs, plots, errors, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoact.cli import main
from core.errors import DataError
from evaluation import report_format, report_markdown
from evaluation.report import interval_text
from evaluation.run_report import write_report
from evaluation.yardsticks import add_yardsticks
from tasks import get_task

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_run(root: Path, name: str, task: str, stages: list[dict], evaluations: dict[str, str],
             results: dict[str, list[dict]], task_rows: list[dict] | None = None, **extra) -> Path:
    """A run directory; `results` maps an eval dir to result rows, written as results.jsonl and summarized
    as the runner does (the task's summary with intervals), so the files have exactly the runner's format."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    data = {"name": name, "task": task, "preset": "quick", "model": "SmolLM2-135M-Instruct",
            "settings": {"n_questions": 8, "epochs": 1, "lora_r": 8, "eval_limit": None},
            "versions": {"autoact": "0.1.0"}, "started_at": "2026-11-26T09:00:00Z",
            "finished_at": "2026-11-26T09:15:00Z", "stages": stages, "evaluations": evaluations, **extra}
    (run_dir / "run.json").write_text(json.dumps(data), encoding="utf-8")
    for rel, rows in results.items():
        (run_dir / rel).mkdir(parents=True)
        summary = add_yardsticks(get_task(task).summarize(rows), get_task(task), rows, task_rows or [])
        (run_dir / rel / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
        (run_dir / rel / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return run_dir


def intervals(eval_dir: Path, *metrics: str) -> list[str]:
    """The interval cells the report should show for an evaluation's summary."""
    summary = json.loads((eval_dir / "summary.json").read_text())
    assert all(summary["intervals"][m] for m in metrics)
    return [interval_text(summary["intervals"][m]) for m in metrics]


def stage(name, status="done", seconds=1.0, counts=None, error=None):
    return {"name": name, "status": status, "seconds": seconds, "counts": counts or {}, "error": error}


HOTPOT_STAGES = [
    stage("serve", seconds=12.34),
    stage("self-instruct", seconds=123.4, counts={"questions": 8, "rejected": 3}),
    stage("train", status="failed", seconds=3725.0,
          error="RuntimeError: out of memory\nwhile training the plan adapter"),
    stage("eval-zero-shot", seconds=30.0, counts={"n": 3}),
]
HOTPOT_EVALS = {"Meta-Agent zero-shot": "eval/zero-shot", "AutoAct": "eval/autoact",
                "AutoAct w/o reflect": "eval/no-reflect"}
HOTPOT_RESULTS = {
    # easy: EM (1+0)/2 = 50.0, F1 (1+0.5)/2 = 75.0; hard: EM 0.0, F1 25.0;
    # overall: EM 1/3 = 33.3, F1 1.75/3 = 58.3; n 3, one halted
    "eval/zero-shot": [
        {"id": "q1", "group": "easy", "em": 1.0, "f1": 1.0, "halted": False, "error": None},
        {"id": "q2", "group": "easy", "em": 0.0, "f1": 0.5, "halted": True, "error": None},
        {"id": "q3", "group": "hard", "em": 0.0, "f1": 0.25, "halted": False, "error": None},
    ],
    # q2 ended in an error: not scored. easy: EM 100.0, F1 100.0; medium: nothing answered;
    # overall (answered): EM 100.0, F1 100.0; over all rows, the error counted as wrong: EM 50.0, F1 50.0
    "eval/autoact": [
        {"id": "q1", "group": "easy", "em": 1.0, "f1": 1.0, "halted": False, "error": None},
        {"id": "q2", "group": "medium", "em": 0.0, "f1": 2 / 3, "halted": False, "error": "boom"},
    ],
    # "eval/no-reflect" is absent: that evaluation is shown as not run
}


def table_row(text: str, label: str) -> list[str]:
    """The cells after the label of the Markdown table row that starts with `label`."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no table row {label!r} in:\n{text}")


def table_header(text: str, first: str) -> list[str]:
    return [first, *table_row(text, first)]


@pytest.fixture
def hotpot_run(tmp_path) -> Path:
    return make_run(tmp_path, "hp", "hotpotqa", HOTPOT_STAGES, HOTPOT_EVALS, HOTPOT_RESULTS)


def test_hotpotqa_results_stages_and_missing_evaluation(hotpot_run):
    report = write_report([hotpot_run])
    assert report == hotpot_run / "report.md"
    text = report.read_text(encoding="utf-8")

    assert table_header(text, "evaluation") == [
        "evaluation", "easy F1", "easy EM", "medium F1", "medium EM", "hard F1", "hard EM",
        "overall F1", "overall EM", "overall F1 95% CI", "overall EM 95% CI", "n", "halted", "errors"]
    assert table_row(text, "Meta-Agent zero-shot") == [
        "75.0", "50.0", "—", "—", "25.0", "0.0", "58.3", "33.3", *intervals(hotpot_run / "eval/zero-shot", "f1", "em"),
        "3", "1", "0"]
    assert table_row(text, "AutoAct") == [
        "100.0", "100.0", "—", "—", "—", "—", "100.0", "100.0", *intervals(hotpot_run / "eval/autoact", "f1", "em"),
        "2", "0", "1"]
    assert ("- AutoAct: 1 of 2 questions ended in an error and are not scored above; over all 2 questions, "
            "errors counted as wrong: F1 50.0, EM 50.0.") in text
    assert table_row(text, "AutoAct w/o reflect")[0] == "not run"

    # run facts and settings
    assert table_row(text, "task") == ["hotpotqa"] and table_row(text, "preset") == ["quick"]
    assert table_row(text, "model") == ["SmolLM2-135M-Instruct"]
    assert table_row(text, "wall time") == ["15 min 00 s"]
    assert table_row(text, "lora_r") == ["8"] and table_row(text, "eval_limit") == ["none"]

    # stages: times, counts, the failed stage with its error and how to resume
    assert table_row(text, "serve")[:2] == ["done", "12.3 s"]
    assert table_row(text, "self-instruct") == ["done", "2 min 03 s", "questions=8, rejected=3", ""]
    train = table_row(text, "train")
    assert train[0] == "**FAILED**" and train[1] == "1 h 02 min" and train[3] == "RuntimeError: out of memory"
    assert "Stage `train` failed" in text
    assert "while training the plan adapter" in text  # the whole message below the table
    assert "run the same `autoact pipeline` command again" in text
    assert table_row(text, "**total**")[1] == "1 h 05 min"  # 12.34 + 123.4 + 3725 + 30 s


def test_failed_evaluation_stage_without_entry_is_listed_as_not_run(tmp_path):
    stages = [stage("eval-autoact", status="failed", error="EndpointError: down")]
    run_dir = make_run(tmp_path, "r", "hotpotqa", stages, {}, {})
    text = write_report([run_dir]).read_text()
    assert table_row(text, "eval-autoact (stage failed)")[0] == "not run"


def test_scienceqa_accuracy_per_grade_band(tmp_path):
    rows = [  # grade1-4: 2/3 = 66.7; grade5-8: 0/1 = 0.0; grade9-12: 1/1 = 100.0; overall 3/5 = 60.0
        {"id": "a", "group": "grade1-4", "correct": 1.0}, {"id": "b", "group": "grade1-4", "correct": 1.0},
        {"id": "c", "group": "grade1-4", "correct": 0.0}, {"id": "d", "group": "grade9-12", "correct": 1.0},
        {"id": "e", "group": "grade5-8", "correct": 0.0},
    ]
    run_dir = make_run(tmp_path, "sq", "scienceqa", [stage("eval-autoact", seconds=5.0)],
                       {"AutoAct": "eval/autoact"}, {"eval/autoact": rows})
    text = write_report([run_dir]).read_text()
    assert table_header(text, "evaluation") == [
        "evaluation", "grade1-4 Acc", "grade5-8 Acc", "grade9-12 Acc", "overall Acc", "overall Acc 95% CI", "n", "halted",
        "errors"]
    assert table_row(text, "AutoAct") == ["66.7", "0.0", "100.0", "60.0", *intervals(run_dir / "eval/autoact", "correct"),
                                          "5", "0", "0"]


def test_two_runs_side_by_side(tmp_path):
    a = make_run(tmp_path, "A", "hotpotqa", HOTPOT_STAGES, HOTPOT_EVALS, HOTPOT_RESULTS)
    b_rows = [{"id": "q1", "group": "easy", "em": 0.0, "f1": 0.4}]  # F1 40.0, EM 0.0
    b = make_run(tmp_path, "B", "hotpotqa", [stage("serve", seconds=3.0)], {"AutoAct": "eval/autoact"},
                 {"eval/autoact": b_rows})
    out = tmp_path / "compare" / "both.md"
    report = write_report([a, b], out)
    assert report == out
    text = out.read_text()
    assert table_row(text, "A / AutoAct")[-7:-5] == ["100.0", "100.0"]  # its errored row is not scored
    assert table_row(text, "A / AutoAct w/o reflect")[0] == "not run"
    assert table_row(text, "B / AutoAct")[:2] == ["40.0", "0.0"]
    assert table_row(text, "B / AutoAct")[-7:-5] == ["40.0", "0.0"]
    assert "## Run `A`" in text and "## Run `B`" in text
    for png in ("scores.png", "stage_times.png"):
        assert (out.parent / png).read_bytes().startswith(PNG_SIGNATURE)


def test_runs_with_one_name_are_told_apart(tmp_path):
    a = make_run(tmp_path / "x", "run", "hotpotqa", [], {"AutoAct": "eval/autoact"},
                 {"eval/autoact": HOTPOT_RESULTS["eval/autoact"]})
    b = make_run(tmp_path / "y", "run", "hotpotqa", [], {"AutoAct": "eval/autoact"},
                 {"eval/autoact": HOTPOT_RESULTS["eval/autoact"]})
    text = write_report([a, b], tmp_path / "r.md").read_text()
    assert table_row(text, f"run ({a}) / AutoAct") and table_row(text, f"run ({b}) / AutoAct")


def test_plots_are_pngs_linked_from_the_report(hotpot_run):
    text = write_report([hotpot_run]).read_text()
    for png in ("scores.png", "stage_times.png"):
        data = (hotpot_run / png).read_bytes()
        assert len(data) > 1000 and data.startswith(PNG_SIGNATURE)
        assert f"]({png})" in text


def test_nothing_to_plot_is_said_not_drawn(tmp_path):
    run_dir = make_run(tmp_path, "empty", "hotpotqa", [stage("serve", status="running", seconds=None)], {}, {})
    text = write_report([run_dir]).read_text()
    assert not (run_dir / "scores.png").exists() and not (run_dir / "stage_times.png").exists()
    assert "Scores: nothing to plot" in text and "Time per stage: nothing to plot" in text
    assert "No evaluation is recorded" in text


def test_missing_or_malformed_run_json_names_the_file(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nowhere" / "run.json")):
        write_report([tmp_path / "nowhere"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match=str(bad / "run.json")):
        write_report([bad])
    (bad / "run.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DataError, match=str(bad / "run.json")):
        write_report([bad])
    (bad / "run.json").write_text(json.dumps({"task": "chess", "stages": []}), encoding="utf-8")
    with pytest.raises(DataError, match="run.json.*unknown task"):
        write_report([bad])
    (bad / "run.json").write_text(json.dumps({"task": "hotpotqa", "stages": "serve"}), encoding="utf-8")
    with pytest.raises(DataError, match="stages"):
        write_report([bad])


def test_malformed_summary_names_the_file(tmp_path):
    run_dir = make_run(tmp_path, "r", "hotpotqa", [], {"AutoAct": "eval/autoact"}, {})
    (run_dir / "eval" / "autoact").mkdir(parents=True)
    (run_dir / "eval" / "autoact" / "summary.json").write_text("{", encoding="utf-8")
    with pytest.raises(DataError, match="summary.json"):
        write_report([run_dir])


def test_paper_reference_section(hotpot_run, monkeypatch):
    text = write_report([hotpot_run]).read_text()
    assert "Reference values from the AutoAct paper" in text and "arXiv 2401.05268" in text
    assert "much larger" in text
    if not report_markdown.PAPER_REFERENCE.get("hotpotqa"):
        assert "reference values were not available" in text
    # the rendering of a filled-in table (dummy values, for the test only)
    monkeypatch.setattr(report_markdown, "PAPER_REFERENCE", {"hotpotqa": {
        "source": "Table X (test)", "metric": "F1", "columns": ["easy", "overall"],
        "rows": [{"model": "dummy-model", "method": "dummy", "values": [1.0, 2.5]}]}})
    text = write_report([hotpot_run]).read_text()
    assert table_row(text, "dummy-model") == ["dummy", "1.0", "2.5"]
    assert "Table X (test)" in text


def test_cli_report(hotpot_run, tmp_path, capsys):
    assert main(["report", str(hotpot_run)]) == 0
    assert (hotpot_run / "report.md").is_file()
    printed = capsys.readouterr().out
    assert "report.md" in printed and "not run" in printed and "failed: train" in printed

    out = tmp_path / "elsewhere" / "r.md"
    assert main(["report", str(hotpot_run), str(hotpot_run), "--out", str(out)]) == 0
    assert out.is_file() and (out.parent / "scores.png").is_file()

    assert main(["report", str(tmp_path / "missing")]) == 2


def test_durations_read_naturally():
    assert [report_format.duration(s) for s in (None, 12.34, 59.96, 119.6, 3599.6, 3725)] == [
        "—", "12.3 s", "1 min 00 s", "2 min 00 s", "1 h 00 min", "1 h 02 min"]


def test_behaviour_table_and_plot_come_from_the_diagnostics(tmp_path):
    from evaluation.diagnostics import summarize_diagnostics
    rows = [
        {"id": "q1", "group": "easy", "em": 0.0, "f1": 0.0, "steps": 3, "halted": False, "error": None,
         "diagnostics": {"actions": 3, "valid_actions": 3, "finished": True,
                         "reflections": [{"verdict": "right", "correct": False}],
                         "evidence_recall": 0.5, "evidence_all": False}},
        {"id": "q2", "group": "easy", "em": 0.0, "f1": 0.0, "steps": 5, "halted": True, "error": None,
         "diagnostics": {"actions": 5, "valid_actions": 4, "finished": False, "reflections": [],
                         "evidence_recall": 1.0, "evidence_all": True}},
    ]
    run_dir = make_run(tmp_path, "diag", "hotpotqa", [stage("eval-zero-shot")],
                       {"Meta-Agent zero-shot": "eval/zero-shot"}, {"eval/zero-shot": rows})
    summary_path = run_dir / "eval" / "zero-shot" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["diagnostics"] = summarize_diagnostics(rows)
    summary_path.write_text(json.dumps(summary))
    text = write_report([run_dir]).read_text()
    assert "## Behaviour" in text
    # valid 7/8 = 87.5; finished 1/2 = 50.0; right 1/1; wrong 0/1; correct 0/1; wrong caught 0/1; right kept:
    # no right answer judged; recall 75.0; all 1/2; 4.0 steps
    behaviour = text.split("## Behaviour", 1)[1]
    assert table_row(behaviour, "Meta-Agent zero-shot") == ["87.5", "50.0", "100.0", "0.0", "0.0", "0.0", "—",
                                                             "75.0", "50.0", "4.0"]
    verdicts = behaviour.split("### The reflect agent's verdicts", 1)[1]
    assert table_row(verdicts, "Meta-Agent zero-shot") == ["0", "0", "1", "0", "—"]  # a wrong answer said right
    png = run_dir / "behaviour.png"
    assert png.read_bytes().startswith(PNG_SIGNATURE) and "](behaviour.png)" in text


def test_eval_directories_are_reported_as_one_comparison(tmp_path):
    holder = make_run(tmp_path, "holder", "hotpotqa", [], {}, {f"cmp/{name}": rows for name, rows in (
        ("cot", HOTPOT_RESULTS["eval/zero-shot"]), ("react", HOTPOT_RESULTS["eval/autoact"]))})
    out = write_report([holder / "cmp"], tmp_path / "report.md")
    text = out.read_text()
    assert "## Evaluations `cmp`" in text
    assert table_row(text, "cot")[-2:] == table_row(write_report([holder / "cmp" / "cot"], tmp_path / "one.md")
                                                    .read_text(), "cot")[-2:]
    assert table_row(text, "react")[0] == "100.0"  # easy F1 of the second directory's rows
    (holder / "cmp" / "sqa").mkdir()
    (holder / "cmp" / "sqa" / "summary.json").write_text(json.dumps({"task": "scienceqa", "n": 0}))
    with pytest.raises(DataError, match="different tasks"):
        write_report([holder / "cmp"])


def test_a_collection_names_each_evaluations_design_from_the_registry(tmp_path):
    from graph.designs import DESIGNS

    holder = make_run(tmp_path, "holder", "hotpotqa", [], {}, {"cmp/mine": HOTPOT_RESULTS["eval/zero-shot"]})
    summary_path = holder / "cmp" / "mine" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["settings"] = {"agent": "react", "max_steps": 4}
    summary_path.write_text(json.dumps(summary))
    text = write_report([holder / "cmp"], tmp_path / "report.md").read_text()
    assert f"`mine` (react: {DESIGNS['react'].description})" in text


def test_chance_levels_and_paired_comparisons_are_reported(tmp_path):
    """The report gives the chance level of the questions and compares each evaluation with the zero-shot
    Meta-Agent on the same questions, wording a difference inside the noise as none."""
    questions = [{"id": str(i), "question": f"Q{i}", "choices": ["x", "y"] if i % 2 else ["x", "y", "z", "w"],
                  "answer": "A" if i < 3 else "B", "metadata": {"grade": 2}} for i in range(6)]
    zero = [{"id": q["id"], "group": "grade1-4", "correct": 1.0 if i < 2 else 0.0, "error": None}
            for i, q in enumerate(questions)]
    trained = [{**r, "correct": 1.0 if i < 4 else 0.0} for i, r in enumerate(zero)]
    run_dir = make_run(tmp_path, "sq", "scienceqa", [], {"Meta-Agent zero-shot": "eval/zero-shot",
                                                         "AutoAct": "eval/autoact"},
                       {"eval/zero-shot": zero, "eval/autoact": trained}, task_rows=questions)
    text = write_report([run_dir]).read_text()
    uniform = round(100 * (3 * 1 / 2 + 3 * 1 / 4) / 6, 2)
    assert f"Chance on these 6 questions: {uniform:.1f}% (uniform guess among the options), " \
           "50.0% (always the first option)." in text
    section = text.split("## Comparisons", 1)[1]
    row = table_row(section, "AutoAct")
    # 2 questions right only for AutoAct, none only for zero-shot: McNemar p = 2 * (1/2)^2 = 0.5
    assert row[:6] == ["Meta-Agent zero-shot", "Acc", "6", "33.3", "66.7", "+33.3"]
    assert row[7:] == ["0.5", "McNemar (exact)", "no difference detectable at n=6"]


def test_an_ablation_run_gets_the_papers_table_against_autoact(tmp_path):
    """A run made with --ablations reports every variant against AutoAct with a paired test, besides the usual
    comparisons against the zero-shot Meta-Agent; a plain run has no such section."""
    base = [{"id": str(i), "group": "grade1-4", "correct": 0.0, "error": None} for i in range(8)]
    autoact = [{**r, "correct": 1.0} for r in base]  # right on all 8 questions
    no_reflect = [{**r, "correct": 1.0 if i < 6 else 0.0} for i, r in enumerate(base)]
    evaluations = {"Meta-Agent zero-shot": "eval/zero-shot", "AutoAct": "eval/autoact",
                   "AutoAct w/o reflect": "eval/no-reflect", "chance (base model)": "eval/chance"}
    results = {"eval/zero-shot": base, "eval/autoact": autoact, "eval/no-reflect": no_reflect, "eval/chance": base}
    run_dir = make_run(tmp_path, "ab", "scienceqa", [], evaluations, results, ablations=True)
    text = write_report([run_dir]).read_text()
    section = text.split("## Ablations of `ab` (the paper's Table 2)", 1)[1]
    assert table_row(section, "AutoAct w/o reflect")[:6] == ["AutoAct", "Acc", "8", "100.0", "75.0", "-25.0"]
    # 8 questions only AutoAct got right: McNemar p = 2 * (1/2)^8
    zero = table_row(section, "Meta-Agent zero-shot")
    assert zero[:6] == ["AutoAct", "Acc", "8", "100.0", "0.0", "-100.0"] and zero[7] == "0.0078"  # 2 * (1/2)^8 = 0.0078125
    assert table_row(section, "chance (base model)")[0] == "AutoAct"
    plain = make_run(tmp_path, "plain", "scienceqa", [], evaluations, results)
    assert "## Ablations" not in write_report([plain]).read_text()


def test_the_report_states_the_overlap_of_training_and_evaluation_data(tmp_path):
    none = {"corpus": "split", "evaluated_rows": 50, "training_rows": 250, "evaluated_pages": 500,
            "pages_shared": 0, "gold_pages_shared": 0, "questions_shared": 0}
    run_dir = make_run(tmp_path, "o", "hotpotqa", [], {}, {}, overlap=none)
    text = write_report([run_dir]).read_text()
    assert ("**Training data and evaluation: no overlap.** Self-instruct and synthesis read the other part of the "
            "evaluation file; of their 250 rows, 0 questions repeat or nearly repeat one of the 50 evaluated "
            "questions, and they carry 0 of the 500 pages the evaluated rows show (0 of them gold supporting "
            "pages).") in text
    asked = make_run(tmp_path, "a", "hotpotqa", [], {}, {}, overlap={**none, "corpus": "evaluation rows (asked for)",
                                                                      "pages_shared": 500, "questions_shared": 50})
    assert "**Training data and evaluation overlap.**" in write_report([asked]).read_text()


def test_a_run_with_a_learning_curve_gets_its_plot(tmp_path):
    rows = lambda right: [{"id": str(i), "group": "grade1-4", "correct": float(i < right), "error": None}  # noqa: E731
                          for i in range(6)]
    evaluations = {"Meta-Agent zero-shot": "eval/zero-shot", "AutoAct (2 kept)": "eval/curve-2", "AutoAct": "eval/autoact"}
    results = {"eval/zero-shot": rows(1), "eval/curve-2": rows(2), "eval/autoact": rows(4)}
    curve = [{"kept": 0, "evaluation": "Meta-Agent zero-shot"}, {"kept": 2, "evaluation": "AutoAct (2 kept)"},
             {"kept": 5, "evaluation": "AutoAct"}]
    run_dir = make_run(tmp_path, "c", "scienceqa", [], evaluations, results, curve=curve)
    text = write_report([run_dir]).read_text()
    assert "![Learning curve](learning_curve.png)" in text
    assert (run_dir / "learning_curve.png").read_bytes().startswith(PNG_SIGNATURE)
    plain = make_run(tmp_path, "p", "scienceqa", [], evaluations, results)
    assert "Learning curve" not in write_report([plain]).read_text() and not (plain / "learning_curve.png").exists()
