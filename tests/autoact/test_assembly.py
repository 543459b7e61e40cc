"""Swapping agent nodes without touching graph code: another model, a plain callable, or no agent."""

import pytest

from agents.base import PlanDecision, ReflectDecision
from agents.llm import EndpointConfig
from agents.plan import ModelPlanAgent
from agents.reflect import ModelReflectAgent
from agents.tool import ModelToolAgent
from autoact.assembly import RoleModels, build_agent, resolve_role_models
from core.errors import ConfigError
from graph import AgentGroup, GroupContext
from tasks import get_task
from tests.support.builders import ROWS, hotpot_toolbox
from tests.support.fakes import ScriptedModel

TASK = get_task("hotpotqa")
Q = ROWS[0]["question"]


def test_each_role_bound_to_its_own_model_gets_only_its_own_prompts():
    plan = ScriptedModel(generations=["t1", "t2"], prefer=["Retrieve", "Finish"], name="plan")
    tool = ScriptedModel(generations=["Freedonia", "Fredville"], name="tool")
    reflect = ScriptedModel(generations=["looks fine"], prefer=["right"], name="reflect")
    ctx = GroupContext(plan=ModelPlanAgent(plan), tool=ModelToolAgent(tool), reflect=ModelReflectAgent(reflect),
                       toolbox=hotpot_toolbox(), task=TASK)
    state = AgentGroup(ctx).invoke(Q)
    assert state["answer"] == "Fredville"
    assert len(plan.prompts) == 4 and all("planner" in p for p in plan.prompts)
    assert len(tool.prompts) == 2 and all("tool user" in p for p in tool.prompts)
    assert len(reflect.prompts) == 2 and all("reviewer" in p for p in reflect.prompts)


def test_plain_python_callables_as_agents():
    calls = []

    def plan(view):
        calls.append("plan")
        return PlanDecision("I know it", "Finish")

    def reflect(view):
        calls.append("reflect")
        return ReflectDecision(f"{view.proposed_answer} is supported", "right")
    ctx = GroupContext(plan=plan, tool=lambda view, thought, action: "Fredville", reflect=reflect,
                       toolbox=hotpot_toolbox(), task=TASK)
    state = AgentGroup(ctx).invoke(Q)
    assert state["answer"] == "Fredville" and calls == ["plan", "reflect"]


def test_removed_reflect_agent_ends_at_first_finish():
    ctx = GroupContext(plan=lambda v: PlanDecision("t", "Finish"), tool=lambda v, t, a: "Sylvania",
                       toolbox=hotpot_toolbox(), reflect=None)
    state = AgentGroup(ctx).invoke(Q)
    assert [s["action"] for s in state["steps"]] == ["Finish"] and state["answer"] == "Sylvania"


def test_per_role_model_names_and_endpoint_binding_from_settings():
    roles = RoleModels(plan="plan", tool="tool", reflect="reflect")
    endpoint = EndpointConfig(base_url="http://10.0.0.5:8000/v1", api_key="k")
    group = build_agent("autoact", TASK, hotpot_toolbox(), roles, endpoint)
    ctx = group.context
    assert (ctx.plan.model.name, ctx.tool.model.name, ctx.reflect.model.name) == ("plan", "tool", "reflect")
    assert ctx.plan.model.config.base_url == "http://10.0.0.5:8000/v1" and ctx.tool.model.config.api_key == "k"
    assert ctx.plan.role == "plan" and ctx.reflect.role == "reflect"  # distinct models: role prompts
    shared = build_agent("autoact", TASK, hotpot_toolbox(), RoleModels("base", "base", None), endpoint).context
    assert shared.plan.role == "meta" and shared.reflect is None  # one model: the Meta-Agent


@pytest.fixture
def served(monkeypatch):
    names = ["base", "plan", "tool", "reflect", "all"]
    monkeypatch.setattr("autoact.assembly.list_models", lambda url, key: list(names))
    return names


def test_model_flag_binds_every_role_and_role_flags_override(served):
    roles = resolve_role_models("http://unused/v1", None, model="base", plan="plan")
    assert roles == RoleModels(plan="plan", tool="base", reflect="base")
    assert resolve_role_models("http://unused/v1", None, model="base", no_reflect=True).reflect is None
    assert resolve_role_models("http://unused/v1", None).plan == "base"  # role adapters are not the base


def _adapter(path):
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text("{}")


def test_group_directory_names_each_role_adapter(served, tmp_path):
    for role in ("plan", "tool"):
        _adapter(tmp_path / "g" / role)
    roles = resolve_role_models("http://unused/v1", None, group=tmp_path / "g")
    assert roles == RoleModels(plan="plan", tool="tool", reflect="base")  # no reflect adapter: the base reflects
    _adapter(tmp_path / "one" / "all")
    roles = resolve_role_models("http://unused/v1", None, group=tmp_path / "one", tool="tool")
    assert roles == RoleModels(plan="all", tool="tool", reflect="all")  # explicit role flags still win


def test_unserved_role_models_are_refused(served, tmp_path):
    served.remove("reflect")
    with pytest.raises(ConfigError, match=r"reflect model 'reflect' is not served .*autoact serve --group"):
        _adapter(tmp_path / "g" / "reflect")
        resolve_role_models("http://unused/v1", None, group=tmp_path / "g")
    with pytest.raises(ConfigError, match="no adapter"):
        resolve_role_models("http://unused/v1", None, group=tmp_path)


@pytest.mark.integration
def test_default_model_is_the_served_base_model(tiny_stack):
    roles = resolve_role_models(tiny_stack.base_url, None)
    assert roles.plan == roles.tool == roles.reflect == tiny_stack.model_name


def test_fireact_puts_the_all_roles_adapter_in_every_role(served):
    from autoact.agent_options import agent_from_args
    from autoact.cli import build_parser
    args = build_parser().parse_args(["eval", "--task", "hotpotqa", "--data", "x", "--out", "o", "--agent", "fireact",
                                      "--base-url", "http://unused/v1"])
    ctx = agent_from_args(args, TASK, ROWS).context
    assert (ctx.plan.model.name, ctx.tool.model.name, ctx.reflect.model.name) == ("all", "all", "all")
    assert (ctx.plan.role, ctx.tool.role, ctx.reflect.role) == ("plan", "tool", "reflect")


def test_synthesize_samples_with_the_temperature_it_is_given(served):
    from autoact.agent_options import agent_from_args
    from autoact.cli import build_parser
    args = build_parser().parse_args(["synthesize", "--task", "hotpotqa", "--questions", "q.jsonl", "--out", "t.jsonl",
                                      "--base-url", "http://unused/v1", "--model", "base", "--samples", "3",
                                      "--temperature", "0.7"])
    assert args.samples == 3
    ctx = agent_from_args(args, TASK, ROWS).context
    assert {ctx.plan.model.config.temperature, ctx.tool.model.config.temperature} == {0.7}
    greedy = build_parser().parse_args(["eval", "--task", "hotpotqa", "--data", "x", "--out", "o",
                                        "--base-url", "http://unused/v1", "--model", "base"])
    assert agent_from_args(greedy, TASK, ROWS).context.plan.model.config.temperature == 0.0  # eval stays greedy
