"""Self-instruct → synthesize → differentiate through the CLI against a real FastChat endpoint.

The tiny model is first taught, in the test, the few completions the pipeline asks of it
(one question, then Finish[yes] and Reflect[right]), so a real model produces a
trajectory that is right and the whole chain can be checked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agents.plan import ModelPlanAgent
from agents.reflect import ModelReflectAgent
from agents.tool import ModelToolAgent
from autoact.assembly import build_task_toolbox
from graph import AgentGroup, GroupContext
from serving.launcher import FastChatStack, free_port
from serving.model_store import resolve_model
from tasks import get_task
from tests.support.builders import DATA, ROWS
from tests.support.fakes import ScriptedModel
from tests.support.tiny_training import teach
from training.self_instruct import SelfInstructConfig, run_self_instruct

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SEEDS = DATA / "hotpotqa" / "seeds.jsonl"
NEW_QUESTION = " Is Fredville a city?\nAnswer: yes\n"


def captured_prompts(tmp: Path, corpus: list[dict]) -> list[tuple[str, str]]:
    """The exact prompts the pipeline will send, recorded with scripted models, paired with what to answer."""
    si = ScriptedModel(generations=[NEW_QUESTION])
    run_self_instruct(si, "hotpotqa", SEEDS, tmp / "q.jsonl", SelfInstructConfig(task="hotpotqa", n=1, per_round=1),
                      progress=False)
    row = json.loads((tmp / "q.jsonl").read_text().splitlines()[0])
    task = get_task("hotpotqa")
    model = ScriptedModel(generations=["I can answer.", "yes", "It is right."], prefer=["Finish", "right"])
    ctx = GroupContext(plan=ModelPlanAgent(model, "meta"), tool=ModelToolAgent(model, "meta"),
                       reflect=ModelReflectAgent(model, "meta"), toolbox=build_task_toolbox(task, corpus), task=task)
    AgentGroup(ctx).invoke(task.question_text(row), task.inputs(row))
    thought, action, argument, rthought, verdict = model.prompts
    return [(si.prompts[0], NEW_QUESTION), (thought, " I can answer.\n"), (action, " Finish"),
            (argument, "yes]"), (rthought, " It is right.\n"), (verdict, "right]")]


@pytest.fixture(scope="module")
def taught(tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    """The tiny model taught the pipeline's completions, and the corpus file its questions come from."""
    root = tmp_path_factory.mktemp("taught")
    corpus_file = root / "corpus.jsonl"
    corpus_file.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (root / "capture").mkdir()
    pairs = captured_prompts(root / "capture", ROWS)
    model_dir = root / "taught-smol"
    loss = teach(tiny_model_dir, pairs, model_dir)
    assert loss < 0.1
    shutil.copy(tiny_model_dir / "tokenizer.json", model_dir / "tokenizer.json")
    return model_dir, corpus_file


@pytest.mark.skipif(not SEEDS.exists(), reason="shared seeds not present")
def test_self_instruct_synthesize_differentiate_end_to_end(taught, tmp_path):
    taught, corpus_file = taught

    with FastChatStack(resolve_model(str(taught)), port=free_port(), log_dir=tmp_path / "logs") as stack:
        def autoact(*args: str) -> subprocess.CompletedProcess:
            done = subprocess.run([sys.executable, "-m", "autoact", *args, "--base-url", stack.base_url],
                                  capture_output=True, text=True, cwd=ROOT, timeout=600)
            assert done.returncode == 0, done.stdout + done.stderr
            return done

        questions, trajectories, dataset = tmp_path / "q.jsonl", tmp_path / "t.jsonl", tmp_path / "data"
        autoact("self-instruct", "--task", "hotpotqa", "--seeds", str(SEEDS), "--n", "1", "--per-round", "1",
                "--temperature", "0", "--out", str(questions), "--no-progress")
        rows = [json.loads(line) for line in questions.read_text().splitlines()]
        assert [(r["question"], r["answer"]) for r in rows] == [("Is Fredville a city?", "yes")]

        autoact("synthesize", "--task", "hotpotqa", "--questions", str(questions), "--corpus", str(corpus_file),
                "--out", str(trajectories), "--no-progress")
        traj = [json.loads(line) for line in trajectories.read_text().splitlines()]
        assert len(traj) == 1 and traj[0]["reward"] == 1.0 and traj[0]["prediction"] == "yes"
        assert [s["action"] for s in traj[0]["transcript"]] == ["Finish", "Reflect"]

    done = subprocess.run([sys.executable, "-m", "autoact", "differentiate", "--trajectories", str(trajectories),
                           "--out", str(dataset), "--tokenizer", str(taught)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    stats = json.loads((dataset / "stats.json").read_text())
    assert stats["kept"] == 1 and {r: v["pairs"] for r, v in stats["roles"].items()} == {
        "plan": 2, "tool": 1, "reflect": 2}
    assert stats["source"]["synthesis"]["task"] == "hotpotqa" and stats["source"]["prompts_version"]
    tool_pair = json.loads((dataset / "tool.jsonl").read_text().splitlines()[0])
    assert tool_pair["completion"] == "yes]" and tool_pair["prompt"].endswith("Action 1: Finish[")

    # self-differentiation: one adapter per role on the differentiated data, served on the shared base,
    # then the trained group answers with its role prompts
    adapters = tmp_path / "adapters"
    done = subprocess.run([sys.executable, "-m", "autoact", "train", "--roles", "plan,tool,reflect",
                           "--data", str(dataset), "--out", str(adapters), "--base", str(taught), "--epochs", "10",
                           "--lr", "5e-3", "--lora-r", "16", "--lora-alpha", "32", "--lora-dropout", "0",
                           "--target-modules", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
                           "--batch-size", "2", "--no-progress"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    for role in ("plan", "tool", "reflect"):
        log = [json.loads(line) for line in (adapters / role / "train_log.jsonl").read_text().splitlines()]
        assert log[-1]["loss"] < log[0]["loss"], role
    with FastChatStack(resolve_model(str(taught)), port=free_port(), log_dir=tmp_path / "group-logs",
                       adapters={r: adapters / r for r in ("plan", "tool", "reflect")}) as stack:
        done = subprocess.run([sys.executable, "-m", "autoact", "eval", "--task", "hotpotqa", "--data",
                               str(corpus_file), "--group", str(adapters), "--base-url", stack.base_url,
                               "--out", str(tmp_path / "eval"), "--no-progress", "--max-steps", "3"],
                              capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    results = {r["id"]: r for r in map(json.loads, (tmp_path / "eval" / "results.jsonl").read_text().splitlines())}
    assert not any(r["error"] for r in results.values())
    assert results["q2"]["prediction"] == "yes" and results["q2"]["em"] == 1.0, results["q2"]


@pytest.mark.skipif(not SEEDS.exists(), reason="shared seeds not present")
def test_pipeline_runs_every_stage_and_resumes(taught, tmp_path):
    from autoact.pipeline import run_pipeline
    from autoact.presets import PipelineConfig

    model_dir, corpus_file = taught
    workdir = tmp_path / "run"
    # the taught model knows the one question of the two-row file, so training reads the evaluated rows (asked
    # for: the record and the report state the overlap)
    config = PipelineConfig(
        task="hotpotqa", workdir=workdir, data_dir=DATA, base=str(model_dir), eval_file=corpus_file, progress=False,
        train_on_eval=True, overrides=dict(n_questions=1, per_round=1, temperature=0.0, grounded=False, epochs=10.0, lr=5e-3, lora_r=16,
                       lora_alpha=32, lora_dropout=0.0, eval_limit=None, eval_max_steps=3,
                       target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")))
    data = run_pipeline(config)
    stages = {s["name"]: s for s in data["stages"]}
    assert [s["name"] for s in data["stages"]] == ["serve", "self-instruct", "select-tools", "synthesize",
                                                   "differentiate", "train", "serve-group", "eval-zero-shot",
                                                   "eval-autoact", "report"]
    assert all(s["status"] == "done" for s in data["stages"]), stages
    assert stages["differentiate"]["counts"]["kept"] == 1 and stages["train"]["counts"]["tool_steps"] == 10
    assert data["evaluations"] == {"Meta-Agent zero-shot": "eval/zero-shot", "AutoAct": "eval/autoact"}
    autoact = json.loads((workdir / "eval" / "autoact" / "summary.json").read_text())
    assert autoact["n"] == 2 and autoact["groups"]["hard"]["em"] == 100.0  # q2, "Is Fredville a city?" → yes
    saved = json.loads((workdir / "run.json").read_text())
    assert saved["settings"]["n_questions"] == 1 and saved["model"] == model_dir.name and saved["finished_at"]
    report = (workdir / "report.md").read_text()
    assert "not finished" not in report and "| report | done |" in report
    assert saved["overlap"] == {"corpus": "evaluation rows (asked for)", "evaluated_rows": 2, "training_rows": 3,
                                "evaluated_pages": 3, "pages_shared": 3, "gold_pages_shared": 0,
                                "questions_shared": 3}  # the self-instructed q2 and both corpus rows
    assert "**Training data and evaluation overlap.**" in report

    # a second invocation redoes nothing: no Meta-Agent server, no new rows, no training
    before = {f: (workdir / f).read_text() for f in ("questions.jsonl", "trajectories.jsonl")}
    again = run_pipeline(config)
    status = {s["name"]: s["status"] for s in again["stages"]}
    assert status["self-instruct"] == status["synthesize"] == "done"  # kept from the first run
    assert again["stages"][0]["name"] == "serve" and len(again["history"]) == 2
    assert {f: (workdir / f).read_text() for f in before} == before
    assert json.loads((workdir / "adapters" / "plan" / "training_args.json").read_text())["steps"] == 10
    assert len((workdir / "eval" / "autoact" / "results.jsonl").read_text().splitlines()) == 2


@pytest.mark.skipif(not SEEDS.exists(), reason="shared seeds not present")
def test_corpus_questions_and_a_fitted_threshold_through_the_whole_pipeline(taught, tmp_path):
    """`--questions corpus --fit-reflect-threshold` on the taught tiny model: no self-instruct request, the
    corpus rows are solved, and the trained reflect adapter's threshold is fitted before the evaluations."""
    from autoact.pipeline import run_pipeline
    from autoact.presets import PipelineConfig

    model_dir, corpus_file = taught
    workdir = tmp_path / "run"
    config = PipelineConfig(
        task="hotpotqa", workdir=workdir, data_dir=DATA, base=str(model_dir), eval_file=corpus_file, progress=False,
        train_on_eval=True, questions="corpus",
        overrides=dict(n_questions=5, per_round=1, temperature=0.0, epochs=10.0, lr=5e-3, lora_r=16, lora_alpha=32,
                       lora_dropout=0.0, eval_limit=None, eval_max_steps=3, fit_reflect_threshold=True,
                       target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")))
    data = run_pipeline(config)
    stages = {s["name"]: s for s in data["stages"]}
    assert all(s["status"] == "done" for s in data["stages"]), stages
    assert stages["self-instruct"]["counts"] == {"source": "corpus (evaluation rows (asked for))", "questions": 2,
                                                 "corpus_rows": 2}
    asked = [json.loads(line) for line in (workdir / "questions.jsonl").read_text().splitlines()]
    assert asked == [json.loads(line) for line in corpus_file.read_text().splitlines()]  # the rows themselves
    assert stages["synthesize"]["counts"]["trajectories"] == 2 and stages["differentiate"]["counts"]["kept"] == 1
    assert data["settings"]["questions"] == "corpus" and data["settings"]["verdict_hold_out"] == 0.25
    # one kept trajectory gives one right and one wrong verdict: too few to hold any out, so the fit says it
    # used the training pairs, and the evaluation applied what it wrote
    fitted = stages["calibrate-reflect"]["counts"]["reflect"]
    assert fitted["pairs"] == 2 and fitted["held_out"] is False, fitted
    assert not (workdir / "data" / "reflect.heldout.jsonl").exists()
    autoact = json.loads((workdir / "eval" / "autoact" / "summary.json").read_text())
    assert autoact["settings"]["reflect_threshold"] == fitted["threshold"] and autoact["settings"]["agent"] == "autoact"


def test_two_rounds_the_second_synthesized_by_the_first_rounds_group(taught, tmp_path):
    from autoact.presets import PipelineConfig
    from autoact.rounds import RoundsConfig, run_rounds

    model_dir, corpus_file = taught
    config = PipelineConfig(
        task="hotpotqa", workdir=tmp_path / "run", data_dir=DATA, base=str(model_dir), eval_file=corpus_file,
        progress=False, train_on_eval=True,
        overrides=dict(n_questions=1, per_round=1, temperature=0.0, grounded=False, epochs=10.0, lr=5e-3, lora_r=16,
                       lora_alpha=32, lora_dropout=0.0, eval_limit=None, eval_max_steps=3,
                       target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")))
    # the taught model knows one question only, so round 2 may ask it again
    data = run_rounds(config, RoundsConfig(rounds=2, reuse_questions=True))
    first, second = data["table"]
    assert (first["synthesized_by"], second["synthesized_by"]) == ("Meta-Agent", "round 1's group")
    assert first["kept"] == second["kept"] == 1 and second["score"] is not None
    round1, round2 = tmp_path / "run" / "round-1", tmp_path / "run" / "round-2"
    settings = json.loads((round2 / "run.json").read_text())["settings"]
    assert settings["synthesized_by"] == {r: str(round1 / "adapters" / r) for r in ("plan", "tool", "reflect")}
    assert settings["also_trained_on"] == [str(round1 / "data")]
    synthesis = json.loads((round2 / "trajectories.meta.json").read_text())
    assert synthesis["group"] == {r: str(round1 / "adapters" / r) for r in ("plan", "tool", "reflect")}
    # round 2's adapters learned from both rounds' kept trajectories
    tool = json.loads((round2 / "adapters" / "tool" / "training_args.json").read_text())
    assert tool["pairs"] == 2 and len(tool["data"]) == 2
    assert (tmp_path / "run" / "rounds.md").read_text().count("| round 1's group |") == 1


@pytest.mark.skipif(not SEEDS.exists(), reason="shared seeds not present")
def test_ablate_trains_and_evaluates_every_variant_on_the_same_questions(taught, tmp_path):
    """The pipeline with ablations (what `autoact ablate` runs) on the taught tiny model: the extra adapters
    train, every row of the table is evaluated on the same questions, and the report holds the table."""
    from autoact.pipeline import run_pipeline
    from autoact.presets import PipelineConfig

    model_dir, corpus_file = taught
    workdir = tmp_path / "ablate"
    config = PipelineConfig(
        task="hotpotqa", workdir=workdir, data_dir=DATA, base=str(model_dir), eval_file=corpus_file, progress=False,
        train_on_eval=True, ablations=True,
        overrides=dict(n_questions=1, per_round=1, temperature=0.0, grounded=False, epochs=10.0, lr=5e-3, lora_r=16,
                       lora_alpha=32, lora_dropout=0.0, eval_limit=None, eval_max_steps=3,
                       target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")))
    data = run_pipeline(config)
    status = {s["name"]: s["status"] for s in data["stages"]}
    assert all(v == "done" for v in status.values()), status
    for name in ("differentiate-unfiltered", "train-multi", "train-unfiltered", "eval-no-multi", "eval-no-filter",
                 "eval-direct", "eval-cot", "eval-react", "eval-reflexion"):  # no chance row: answers are open
        assert status.get(name) == "done", name
    assert (workdir / "adapters-multi" / "all" / "training_args.json").is_file()
    assert sorted(p.name for p in (workdir / "adapters-unfiltered").iterdir()) == ["plan", "reflect", "tool"]
    assert list(data["evaluations"]) == [
        "Meta-Agent zero-shot", "AutoAct", "AutoAct w/o reflect", "AutoAct −multi (one adapter)", "AutoAct −filtering",
        "direct (base model)", "CoT (base model)", "ReAct (base model)", "Reflexion (base model)"]
    for rel in data["evaluations"].values():  # the same questions everywhere
        ids = sorted(json.loads(line)["id"] for line in (workdir / rel / "results.jsonl").read_text().splitlines())
        assert ids == ["q1", "q2"], rel
    multi = json.loads((workdir / "eval" / "no-multi" / "results.jsonl").read_text().splitlines()[0])
    assert multi["error"] is None
    table = (workdir / "report.md").read_text().split("(the paper's Table 2)", 1)[1].split("\n## ", 1)[0]
    against = [line.split("|")[2].strip() for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert against[0] == "against" and against[1:] == ["AutoAct"] * 8 * 2  # eight others against AutoAct, EM and F1
