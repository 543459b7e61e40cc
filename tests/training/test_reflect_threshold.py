"""The reflect verdict's threshold, fitted on the agent's own verdict pairs, and its use by `eval --group`."""

from __future__ import annotations

import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from agents.base import AgentSettings
from core.errors import ConfigError
from training.dataset import HELD_OUT_FILE
from training.reflect_threshold import (
    THRESHOLD_FILE,
    fit_and_save,
    fit_pairs,
    fit_threshold,
    load_threshold,
    pair_margins,
    save_threshold,
    verdict_pairs,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_threshold_maximises_right_kept_plus_wrong_caught_nearest_zero_on_ties():
    scored = [(3.0, True), (2.0, True), (2.5, False), (1.0, False)]
    # candidates 0, 1.5, 2.25, 2.75, 4.0 (and 0.0 again): kept + caught = 1.0, 1.5, 1.0, 1.5, 1.0
    fit = fit_threshold(scored)
    assert (fit.threshold, fit.right_kept, fit.wrong_caught) == (1.5, 1.0, 0.5)
    assert (fit.right_kept_at_zero, fit.wrong_caught_at_zero) == (1.0, 0.0) and (fit.n_right, fit.n_wrong) == (2, 2)
    assert fit_threshold([(-1.0, True), (-2.0, False)]).threshold == -1.5  # the threshold may be below zero
    with pytest.raises(ConfigError, match="right and wrong"):
        fit_threshold([(1.0, True)])


def pairs_file(directory: Path, lines: list[dict]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "reflect.jsonl").write_text("".join(json.dumps(p) + "\n" for p in lines))
    return directory


VERDICTS = [{"prompt": "Q: 1+1?\nThought: it is 2.\nAction: Reflect[", "completion": "right]", "kind": "verdict"},
            {"prompt": "Q: 1+1?\nThought: it is 3.\nAction: Reflect[", "completion": "wrong]", "kind": "verdict",
             "negative": True},
            {"prompt": "Q: 1+1?\nThought 2:", "completion": " It is 2.\n", "kind": "thought"}]


def test_verdict_pairs_are_read_and_a_malformed_one_is_named_with_its_line(tmp_path):
    pairs = verdict_pairs(pairs_file(tmp_path / "ok", VERDICTS))
    assert [p["completion"] for p in pairs] == ["right]", "wrong]"]  # thought pairs are not verdicts
    bad = pairs_file(tmp_path / "bad", [VERDICTS[0], {**VERDICTS[1], "completion": "maybe]"}])
    with pytest.raises(ConfigError, match=r"bad/reflect.jsonl:2: .*'maybe\]'"):
        verdict_pairs(bad)
    with pytest.raises(ConfigError, match="not found"):
        verdict_pairs(tmp_path / "none")


class Scores:
    """Scores `right]` above `wrong]` by the margin the prompt's thought implies."""

    name = "scores"

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def generate(self, prompt, *, stop, max_tokens):  # pragma: no cover - not used
        return ""

    def score(self, prompt, candidates):
        self.calls.append((prompt, list(candidates)))
        return [-1.0, -3.0] if "it is 2" in prompt else [-1.0, -1.5]


def test_pairs_are_scored_as_the_reflect_agent_scores_its_verdict_and_the_fit_is_kept(tmp_path):
    model = Scores()
    scored = pair_margins(model, verdict_pairs(pairs_file(tmp_path / "d", VERDICTS)))
    assert scored == [(2.0, True), (0.5, False)]
    assert model.calls[0] == (VERDICTS[0]["prompt"], ["right]", "wrong]"])
    adapter = tmp_path / "group" / "reflect"
    adapter.mkdir(parents=True)
    path = save_threshold(adapter, fit_threshold(scored), source="test")
    assert path.name == THRESHOLD_FILE and json.loads(path.read_text())["threshold"] == 1.25
    assert load_threshold(adapter) == 1.25 and load_threshold(tmp_path / "elsewhere") is None
    path.write_text("{}")
    with pytest.raises(ConfigError, match="calibrate-reflect"):
        load_threshold(adapter)


def test_a_threshold_moves_where_the_scored_verdict_turns_wrong():
    from agents.reflect import ModelReflectAgent
    from tests.agents.test_reflect import MarginModel, view
    model = MarginModel({"Paris": 2.0, "Lyon": 0.5})
    plain = ModelReflectAgent(model, "reflect", AgentSettings())
    fitted = ModelReflectAgent(model, "reflect", AgentSettings(reflect_threshold=1.25))
    assert [plain(view(a)).verdict for a in ("Paris", "Lyon")] == ["right", "right"]
    assert [fitted(view(a)).verdict for a in ("Paris", "Lyon")] == ["right", "wrong"]


def test_eval_applies_the_groups_fitted_threshold_unless_told_otherwise(tmp_path):
    from autoact.agent_options import agent_settings, reflect_threshold
    (tmp_path / "reflect").mkdir()
    args = Namespace(group=str(tmp_path), reflect_threshold="auto")
    assert reflect_threshold(args) == 0.0  # nothing fitted yet
    (tmp_path / "reflect" / THRESHOLD_FILE).write_text(json.dumps({"threshold": 1.75}))
    assert reflect_threshold(args) == 1.75 and agent_settings(args)["reflect_threshold"] == 1.75
    assert reflect_threshold(Namespace(group=str(tmp_path), reflect_threshold="none")) == 0.0
    assert reflect_threshold(Namespace(group=None, reflect_threshold="-0.5")) == -0.5
    for bad in ("often", "nan"):
        with pytest.raises(ConfigError, match="--reflect-threshold"):
            reflect_threshold(Namespace(group=None, reflect_threshold=bad))


@pytest.mark.integration
def test_calibrate_reflect_scores_the_pairs_on_a_real_server_and_writes_the_threshold(tiny_stack, tmp_path):
    group = tmp_path / "adapters"
    (group / "reflect").mkdir(parents=True)
    (group / "reflect" / "adapter_config.json").write_text("{}")  # the served model is named with --model
    data = pairs_file(tmp_path / "data", VERDICTS)
    done = subprocess.run([sys.executable, "-m", "autoact", "calibrate-reflect", "--group", str(group), "--data",
                           str(data), "--base-url", tiny_stack.base_url, "--model", tiny_stack.model_name],
                          cwd=ROOT, capture_output=True, text=True, env=None)
    assert done.returncode == 0, done.stdout + done.stderr
    fit = json.loads((group / "reflect" / THRESHOLD_FILE).read_text())
    assert (fit["n_right"], fit["n_wrong"]) == (1, 1) and tiny_stack.model_name in fit["source"]
    assert fit["right_kept"] + fit["wrong_caught"] >= fit["right_kept_at_zero"] + fit["wrong_caught_at_zero"]
    assert "fitted" in done.stdout and "training pairs" in " ".join(done.stdout.split()) and fit["held_out"] is False
    (data / HELD_OUT_FILE).write_text("".join(json.dumps(p) + "\n" for p in VERDICTS[:2]))
    done = subprocess.run([sys.executable, "-m", "autoact", "calibrate-reflect", "--group", str(group), "--data",
                           str(data), "--base-url", tiny_stack.base_url, "--model", tiny_stack.model_name],
                          cwd=ROOT, capture_output=True, text=True, env=None)
    assert done.returncode == 0 and "held-out pairs" in " ".join(done.stdout.split()), done.stdout + done.stderr
    fit = json.loads((group / "reflect" / THRESHOLD_FILE).read_text())
    assert fit["held_out"] is True and fit["source"].startswith(str(data / HELD_OUT_FILE))


def test_the_fit_prefers_the_pairs_held_out_of_training_and_says_so(tmp_path):
    data = pairs_file(tmp_path / "d", VERDICTS)
    assert fit_pairs(data)[1:] == (data / "reflect.jsonl", False)  # nothing held out: the training pairs
    held = [{**VERDICTS[0], "prompt": "Q: 2+2?\nThought: it is 2.\nAction: Reflect["}, VERDICTS[1]]
    (data / HELD_OUT_FILE).write_text(json.dumps(held[0]) + "\n")
    assert fit_pairs(data)[2] is False  # held out, but only right ones: nothing to fit a threshold on
    (data / HELD_OUT_FILE).write_text("".join(json.dumps(p) + "\n" for p in held))
    pairs, path, held_out = fit_pairs(data)
    assert (pairs, path, held_out) == (held, data / HELD_OUT_FILE, True)
    adapter = tmp_path / "reflect"
    adapter.mkdir()
    fit = fit_and_save(Scores(), data, adapter)
    saved = json.loads((adapter / THRESHOLD_FILE).read_text())
    assert fit.held_out and saved["held_out"] is True and saved["source"].startswith(str(data / HELD_OUT_FILE))
