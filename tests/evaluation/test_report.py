"""The terminal summary table (evaluation/report.py), checked in its rendered text."""

from __future__ import annotations

from rich.console import Console

from evaluation.report import summary_table


def _render(table) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(table)
    return console.export_text()


def _cells(text: str) -> dict[str, list[str]]:
    """Body and header rows of a rendered table, keyed by their first cell."""
    out = {}
    for line in text.splitlines():
        if line.startswith(("│", "┃")):
            cells = [c.strip() for c in line.strip("│┃").replace("┃", "│").split("│")]
            out[cells[0]] = cells[1:]
    return out


CLEAN = {"task": "hotpotqa", "n": 3, "answered": 3, "errors": 0, "em": 66.667, "f1": 80.0,
         "all_rows": {"em": 66.667, "f1": 80.0}, "intervals": {"em": [0.0, 100.0], "f1": [40.0, 100.0]},
         "groups": {"easy": {"n": 2, "errors": 0, "em": 100.0, "f1": 100.0},
                    "hard": {"n": 1, "errors": 0, "em": 0.0, "f1": 40.0}}}

WITH_ERRORS = {"task": "hotpotqa", "n": 4, "answered": 3, "errors": 1, "em": 33.333, "f1": None,
               "all_rows": {"em": 25.0, "f1": 0.0},
               "groups": {"easy": {"n": 2, "errors": 0, "em": 50.0, "f1": 75.0,
                                   "all_rows": {"em": 50.0, "f1": 75.0}},
                          "hard": {"n": 2, "errors": 1, "em": 0.0, "f1": None,
                                   "all_rows": {"em": 0.0, "f1": 0.0}}}}


def test_default_title_names_the_task_and_a_given_title_replaces_it():
    assert summary_table(CLEAN, ("em",)).title == "hotpotqa results"
    assert "hotpotqa results" in _render(summary_table(CLEAN, ("em",))).splitlines()[0]
    text = _render(summary_table(CLEAN, ("em",), title="synthesis on hotpotqa"))
    assert "synthesis on hotpotqa" in text and "hotpotqa results" not in text


def test_columns_are_group_n_and_each_metric_short_names_upper_cased():
    cells = _cells(_render(summary_table(CLEAN, ("em", "f1", "accuracy"))))
    assert cells["group"] == ["n", "EM", "EM 95% CI", "F1", "F1 95% CI", "accuracy", "accuracy 95% CI"]


def test_rows_are_each_group_in_order_then_overall_with_two_decimals():
    text = _render(summary_table(CLEAN, ("em", "f1")))
    cells = _cells(text)
    assert cells["easy"] == ["2", "100.00", "—", "100.00", "—"]  # a group without intervals
    assert cells["hard"] == ["1", "0.00", "—", "40.00", "—"]
    assert cells["overall"] == ["3", "66.67", "[0.0, 100.0]", "80.00", "[40.0, 100.0]"]
    assert text.index("easy") < text.index("hard") < text.index("overall")
    assert "errors" not in text and "(all rows)" not in text  # no errors: no extra columns


def test_a_missing_metric_renders_as_a_dash():
    cells = _cells(_render(summary_table({"task": "t", "n": 0, "em": None}, ("em", "f1"))))
    assert cells["overall"] == ["0", "—", "—", "—", "—"]
    assert list(cells) == ["group", "overall"]  # no groups, just the overall row


def test_errors_add_an_errors_column_and_each_metric_over_all_rows():
    cells = _cells(_render(summary_table(WITH_ERRORS, ("em", "f1"))))
    assert cells["group"] == ["n", "errors", "EM", "EM 95% CI", "F1", "F1 95% CI", "EM (all rows)", "F1 (all rows)"]
    assert cells["easy"] == ["2", "0", "50.00", "—", "75.00", "—", "50.00", "75.00"]
    assert cells["hard"] == ["2", "1", "0.00", "—", "—", "—", "0.00", "0.00"]
    assert cells["overall"] == ["4", "1", "33.33", "—", "—", "—", "25.00", "0.00"]


def test_a_group_without_an_errors_count_shows_zero_errors():
    summary = {**WITH_ERRORS, "groups": {"g": {"n": 1, "em": 10.0, "f1": 20.0, "all_rows": {"em": 5.0, "f1": 6.0}}}}
    assert _cells(_render(summary_table(summary, ("em", "f1"))))["g"] == ["1", "0", "10.00", "—", "20.00", "—", "5.00", "6.00"]


def test_the_overall_row_is_bold():
    table = summary_table(CLEAN, ("em",))
    assert table.rows[-1].style == "bold"
    assert all(row.style != "bold" for row in table.rows[:-1])


def test_closed_option_tasks_show_the_chance_level_of_their_questions():
    summary = {"task": "scienceqa", "n": 5, "answered": 5, "errors": 0, "correct": 60.0,
               "intervals": {"correct": [20.0, 100.0]}, "chance": {"uniform": 38.33, "first_option": 40.0}}
    text = _render(summary_table(summary, ("correct",)))
    assert "chance on these 5 questions: 38.3% (uniform guess among the options), 40.0% (always the first option)" \
        in " ".join(text.split())
    assert "chance" not in _render(summary_table(CLEAN, ("em",)))  # open answers: no chance line
