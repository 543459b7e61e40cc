"""The ablation table's variants (autoact.ablations) and its section of the report."""

from __future__ import annotations

from autoact.ablations import ABLATION_BASELINES, served_ablations, variants
from autoact.assembly import RoleModels
from autoact.pipeline import PIPELINE_STAGES


def test_the_plain_run_evaluates_the_zero_shot_and_the_trained_group():
    got = variants("base", ["plan", "reflect"])
    assert [(v.name, v.label, v.prompts) for v in got] == [("zero-shot", "Meta-Agent zero-shot", "meta"),
                                                           ("autoact", "AutoAct", "roles")]
    assert got[1].roles == RoleModels("plan", "base", "reflect")  # an untrained role is the base model
    assert [v.name for v in variants("base", ["plan"], no_reflect=True)] == ["zero-shot", "autoact", "no-reflect"]
    assert [v.name for v in variants("base", [], zero_shot=True)] == ["zero-shot"]
    assert [v.name for v in variants("base", ["plan"], zero_shot=False)] == ["autoact"]


def test_the_ablation_table_has_every_row_of_the_papers_and_the_baselines():
    served = {"all": "x", "unfiltered-plan": "y", "unfiltered-tool": "z"}
    got = {v.name: v for v in variants("base", ["plan", "tool", "reflect"], ablations=served)}
    assert list(got) == ["zero-shot", "autoact", "no-reflect", "no-multi", "no-filter", *ABLATION_BASELINES]
    assert got["no-reflect"].roles == RoleModels("plan", "tool", None)
    assert got["no-multi"].roles == RoleModels("all", "all", "all") and got["no-multi"].prompts == "roles"
    assert got["no-filter"].roles == RoleModels("unfiltered-plan", "unfiltered-tool", "base")
    for name in ABLATION_BASELINES:
        assert got[name].design == name and got[name].roles == RoleModels("base", "base", "base")
        assert got[name].prompts == "meta" and f"eval-{name}" in PIPELINE_STAGES
    open_answers = [v.name for v in variants("base", ["plan"], ablations=served, closed_options=False)]
    assert "chance" not in open_answers and "direct" in open_answers  # HotpotQA: no options to draw among
    # ablation adapters that did not train are left out, not evaluated as the base model
    assert [v.name for v in variants("base", [], ablations={})][:1] == ["zero-shot"]
    assert "no-multi" not in {v.name for v in variants("base", ["plan"], ablations={})}


def test_served_ablations_are_the_adapters_that_finished_training(tmp_path):
    for d in ("adapters-multi/all", "adapters-unfiltered/plan", "adapters-unfiltered/tool"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "adapters-multi/all/training_args.json").write_text("{}")
    finished = {tmp_path / "adapters-unfiltered": ["plan"]}
    served = served_ablations(tmp_path, lambda d: finished.get(d, []))
    assert served == {"unfiltered-plan": tmp_path / "adapters-unfiltered/plan", "all": tmp_path / "adapters-multi/all"}


def test_ablate_is_the_pipeline_with_the_ablation_table():
    from autoact.cli import build_parser
    args = build_parser().parse_args(["ablate", "--task", "scienceqa", "--workdir", "w"])
    plain = build_parser().parse_args(["pipeline", "--task", "scienceqa", "--workdir", "w"])
    assert args.func is plain.func and args.ablations is True and plain.ablations is False
    assert build_parser().parse_args(["pipeline", "--task", "scienceqa", "--workdir", "w", "--ablations"]).ablations


def test_learning_curve_points_variants_and_served_names(tmp_path):
    from autoact.curve import curve_dirs, curve_points, curve_variants, served_curve
    assert curve_dirs(tmp_path, 25) == (tmp_path / "data-curve" / "25", tmp_path / "adapters-curve" / "25")
    finished = {curve_dirs(tmp_path, 25)[1]: ["plan", "tool"], curve_dirs(tmp_path, 50)[1]: []}
    served = served_curve(tmp_path, [25, 50], lambda d: finished.get(d, []))
    assert served == {"curve25-plan": tmp_path / "adapters-curve/25/plan", "curve25-tool": tmp_path / "adapters-curve/25/tool"}
    [point] = curve_variants("base", [25, 50], served)  # 50 trained nothing: no evaluation
    assert point.name == "curve-25" and point.label == "AutoAct (25 kept)"
    assert point.roles == RoleModels("curve25-plan", "curve25-tool", "base")
    evaluations = {"Meta-Agent zero-shot": "a", "AutoAct (25 kept)": "b", "AutoAct": "c"}
    assert curve_points([50, 25], 80, evaluations) == [
        {"kept": 0, "evaluation": "Meta-Agent zero-shot"}, {"kept": 25, "evaluation": "AutoAct (25 kept)"},
        {"kept": 80, "evaluation": "AutoAct"}]


def test_curve_sizes_parse():
    from autoact.cli import build_parser
    args = build_parser().parse_args(["pipeline", "--task", "hotpotqa", "--workdir", "w", "--curve", "25,50,100"])
    assert args.curve == (25, 50, 100)
    import pytest
    for bad in ("0,5", "a", ""):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["pipeline", "--task", "hotpotqa", "--workdir", "w", "--curve", bad])


def test_with_nothing_kept_the_ablations_train_nothing(tmp_path, monkeypatch):
    from autoact import pipeline
    from autoact.presets import PipelineConfig
    from autoact.run_record import RunRecord
    from tasks import get_task
    from training.overlap import split_rows

    def must_not_run(*args, **kwargs):
        raise AssertionError("an ablation was trained with no AutoAct group to compare it with")
    monkeypatch.setattr(pipeline, "differentiate_file", must_not_run)
    monkeypatch.setattr(pipeline, "train_roles", must_not_run)
    config = PipelineConfig(task="scienceqa", workdir=tmp_path, progress=False, ablations=True)
    preset = config.preset_values()
    record = RunRecord.open(tmp_path, config, preset)
    with record.running("differentiate") as counts:
        counts.update(trajectories=80, kept=0)
    run = pipeline._Run(config, get_task("scienceqa"), preset, record, base=None, split=split_rows([{"id": "q"}], needs_corpus=False))  # type: ignore[arg-type]
    run.ablation_stages()
    for stage in ("differentiate-unfiltered", "train-multi", "train-unfiltered"):
        entry = record.stage(stage)
        assert entry["status"] == "skipped" and "no trajectory was kept" in entry["note"]


def test_the_pipeline_fits_each_reflect_adapters_threshold_once_and_reads_it_back(tmp_path, monkeypatch):
    import json

    from autoact import pipeline
    from autoact.presets import PipelineConfig
    from autoact.run_record import RunRecord
    from tasks import get_task
    from tests.training.test_reflect_threshold import VERDICTS, Scores, pairs_file
    from training.overlap import split_rows

    scored = []
    monkeypatch.setattr(pipeline, "_endpoint", lambda url, name, temperature=0.0: scored.append(name) or Scores())
    config = PipelineConfig(task="scienceqa", workdir=tmp_path, progress=False,
                            overrides={"fit_reflect_threshold": True})
    preset = config.preset_values()
    record = RunRecord.open(tmp_path, config, preset)
    run = pipeline._Run(config, get_task("scienceqa"), preset, record, base=None,  # type: ignore[arg-type]
                        split=split_rows([{"id": "q"}], needs_corpus=False))
    pairs_file(tmp_path / "data", VERDICTS)
    served = {"plan": tmp_path / "adapters" / "plan", "reflect": tmp_path / "adapters" / "reflect"}
    for path in served.values():
        path.mkdir(parents=True)
    assert run.reflect_thresholds("http://x/v1", [], served) == {"reflect": 1.25}  # margins 2.0 (right), 0.5
    assert scored == ["reflect"] and json.loads((served["reflect"] / "verdict_threshold.json").read_text())["n_wrong"] == 1
    assert record.stage("calibrate-reflect")["counts"]["reflect"]["threshold"] == 1.25
    assert record.stage("calibrate-reflect")["counts"]["reflect"]["held_out"] is False  # no held-out file here
    assert run.reflect_thresholds("http://x/v1", [], served) == {"reflect": 1.25} and scored == ["reflect"]
    off = PipelineConfig(task="scienceqa", workdir=tmp_path / "off", progress=False)
    plain = pipeline._Run(off, get_task("scienceqa"), off.preset_values(), record, base=None,  # type: ignore[arg-type]
                          split=split_rows([{"id": "q"}], needs_corpus=False))
    assert plain.reflect_thresholds("http://x/v1", [], served) == {}


def test_fitting_a_threshold_makes_the_pipeline_hold_verdicts_out_of_training(tmp_path):
    import json

    from autoact import pipeline
    from autoact.presets import PipelineConfig
    from autoact.run_record import RunRecord
    from tasks import get_task
    from tests.training.test_differentiate import STEPS, trajectory
    from training.dataset import HELD_OUT_FILE

    wrong = [*STEPS[:1], {**STEPS[1], "argument": "Oldtown"}, STEPS[2]]
    rows = [trajectory(i, question_id=f"q{i}") for i in range(8)]
    rows += [trajectory(10 + i, reward=0.0, transcript=wrong, question_id=f"n{i}") for i in range(8)]
    (tmp_path / "trajectories.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for fit, held in ((True, 0.25), (False, 0.0)):
        config = PipelineConfig(task="hotpotqa", workdir=tmp_path / str(fit), progress=False,
                                overrides={"fit_reflect_threshold": fit})
        preset = config.preset_values()
        assert preset.hold_out == held
        (tmp_path / str(fit)).mkdir()
        paths = {"trajectories": tmp_path / "trajectories.jsonl", "data": tmp_path / str(fit) / "data"}
        pipeline._stage_differentiate(RunRecord.open(tmp_path / str(fit), config, preset), get_task("hotpotqa"),
                                      paths, preset, None)
        assert (paths["data"] / HELD_OUT_FILE).is_file() is fit
        assert json.loads((paths["data"] / "stats.json").read_text())["source"]["hold_out_verdicts"] == held
