"""The designs that run on the group graph: AutoAct's group, FireAct, ReAct and chain of thought.

They differ only in who plays each role and with which prompt: the group's roles are the
plan, tool and reflect agents (the zero-shot Meta-Agent's one instruction when one model plays
them all, or each role's own as the trained agents see it); FireAct is one model fine-tuned on
every role's data, with the role prompts; ReAct and CoT are one agent without reflection, with
a worked example in its prompt (`prompts/{react,cot}_{task}.txt`), CoT with no tool and one step.
"""

from __future__ import annotations

from dataclasses import replace

from agents.plan import ModelPlanAgent
from agents.reflect import ModelReflectAgent
from agents.tool import ModelToolAgent
from core.errors import ConfigError
from core.roles import META
from graph.context import GroupContext
from graph.designs.inputs import DesignInputs
from graph.group import AgentGroup
from tools import ToolResources, build_toolbox


def prompt_style(inputs: DesignInputs) -> str:
    """`meta` or `roles`: `auto` picks `meta` when one model plays every role."""
    if inputs.prompts not in ("auto", "meta", "roles"):
        raise ConfigError(f"prompts must be auto, meta or roles, not {inputs.prompts!r}")
    if inputs.prompts != "auto":
        return inputs.prompts
    plan, tool, reflect = inputs.role_models()
    shared = plan.name == tool.name and (reflect is None or reflect.name == plan.name)
    return META if shared else "roles"


def build_autoact(inputs: DesignInputs, name: str = "autoact") -> AgentGroup:
    """The plan/tool/reflect group; `reflect=None` in the inputs removes reflection."""
    style = prompt_style(inputs)
    plan, tool, reflect = inputs.role_models()

    def role(r: str) -> str:
        return META if style == META else r

    settings = inputs.settings
    context = GroupContext(
        plan=ModelPlanAgent(plan, role("plan"), settings), tool=ModelToolAgent(tool, role("tool"), settings),
        reflect=ModelReflectAgent(reflect, role("reflect"), settings) if reflect is not None else None,
        toolbox=inputs.toolbox, task=inputs.task, limits=inputs.limits, budget_role=role("plan"))
    return AgentGroup(context, name=name)


def build_fireact(inputs: DesignInputs) -> AgentGroup:
    """One model (the adapter trained on all roles' data) in every role, with the role prompts."""
    return build_autoact(replace(inputs, prompts="roles"), name="fireact")


def build_single_agent(inputs: DesignInputs, design: str) -> AgentGroup:
    """ReAct or CoT: one model writes thoughts and actions with its design's prompt; no reflection."""
    model, settings, limits, toolbox = inputs.model(), inputs.settings, inputs.limits, inputs.toolbox
    role = f"{design}_{inputs.task.name}"
    if design == "cot":
        toolbox = build_toolbox([], ToolResources())  # Finish is the only action
        settings = replace(settings, thought_tokens=max(settings.thought_tokens, 128))
        limits = replace(limits, max_steps=1)
    context = GroupContext(plan=ModelPlanAgent(model, role, settings), tool=ModelToolAgent(model, role, settings),
                           reflect=None, toolbox=toolbox, task=inputs.task, limits=limits, budget_role=role)
    return AgentGroup(context, name=design)
