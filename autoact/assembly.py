"""Assembling a runnable agent group from settings: tools for a task, models for each role."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Sequence

from agents.base import AgentSettings
from agents.llm import CompletionModel, EndpointConfig, EndpointModel, list_models
from agents.plan import ModelPlanAgent
from agents.reflect import ModelReflectAgent
from agents.tool import ModelToolAgent
from core.errors import ConfigError, EndpointError
from core.roles import ADAPTER_NAMES, ALL, ROLES
from graph.context import GroupContext, Limits
from graph.design_agent import DesignAgent
from graph.group import AgentGroup
from tasks.base import Task
from tools import (
    Docstore,
    ToolResources,
    WikipediaSource,
    build_toolbox,
    default_tool_specs,
    load_tool_specs,
)
from tools.toolbox import Toolbox


def build_task_toolbox(task: Task, rows: Sequence[dict] | None = None, tools_file: str | Path | None = None,
                       wiki: Literal["offline", "live"] = "offline", database: str | Path | None = None,
                       triples: str | Path | None = None, image_dir: str | Path | None = None) -> Toolbox:
    """The task's tool set (from `tools_file` or the built-in default) over its resources.

    Offline, HotpotQA-style rows' `context` paragraphs (all rows pooled) form the docstore;
    `database` (SQLite), `triples` (RDF or CSV triples) and `image_dir` serve the tools that need them.
    """
    specs = load_tool_specs(tools_file) if tools_file else default_tool_specs(task.name)
    resources = ToolResources(database=Path(database) if database else None,
                              triples=Path(triples) if triples else None,
                              image_dir=Path(image_dir) if image_dir else None)
    if wiki == "live":
        resources.pages = WikipediaSource()
    if rows and any(r.get("context") for r in rows):
        store = Docstore.from_rows(rows)
        resources.searcher = store
        if resources.pages is None:
            resources.pages = store
    return build_toolbox(specs, resources)


@dataclass(frozen=True)
class RoleModels:
    """Which served model answers for each role (None for reflect: no reflection)."""

    plan: str
    tool: str
    reflect: str | None

    @property
    def shared(self) -> bool:
        """One model behind every role: the Meta-Agent."""
        return self.plan == self.tool and self.reflect in (None, self.plan)


def group_role_names(directory: str | Path) -> dict[str, str]:
    """Served model names of a trained group (`--group DIR`): each role's own adapter, else `all`.

    Roles with neither adapter in DIR are left out (the base model plays them).
    """
    from serving.adapters import group_adapters
    found = group_adapters(Path(directory))
    return {role: role if role in found else ALL for role in ROLES if role in found or ALL in found}


def resolve_role_models(base_url: str, api_key: str | None, model: str | None = None,
                        plan: str | None = None, tool: str | None = None, reflect: str | None = None,
                        no_reflect: bool = False, group: str | Path | None = None) -> RoleModels:
    """Bind `--model` to every role, overridden per role; the default is the served base model.

    `group` (a `train --roles` output directory) names each role's adapter, as `autoact serve
    --group` serves them; explicit per-role models still win. Every named model must be served.
    """
    served = list_models(base_url, api_key)
    default = model or default_model(served, base_url)
    named = group_role_names(group) if group else {}
    roles = RoleModels(plan or named.get("plan", default), tool or named.get("tool", default),
                       None if no_reflect else (reflect or named.get("reflect", default)))
    for role, name in (("plan", roles.plan), ("tool", roles.tool), ("reflect", roles.reflect)):
        if name is not None and name not in served:
            hint = f"; serve the group with `autoact serve --group {group}`" if group else ""
            raise ConfigError(f"the {role} model {name!r} is not served at {base_url} "
                              f"(served: {', '.join(served) or 'nothing'}){hint}")
    return roles


def default_model(served: Sequence[str], base_url: str) -> str:
    """The base model among the served names (role adapters are named after their roles)."""
    bases = [m for m in served if m not in ADAPTER_NAMES]
    if not bases:
        raise EndpointError(f"no model is served at {base_url}")
    return bases[0]


def build_group(task: Task, toolbox: Toolbox, roles: RoleModels, endpoint: EndpointConfig,
                settings: AgentSettings | None = None, limits: Limits | None = None,
                prompts: Literal["auto", "meta", "roles"] = "auto") -> AgentGroup:
    """An AgentGroup whose roles are served models at one endpoint.

    Prompts: `meta` (one zero-shot instruction for every role, the Meta-Agent),
    `roles` (each role its own instruction, as the trained agents see it);
    `auto` picks `meta` when one model plays every role.
    """
    if prompts not in ("auto", "meta", "roles"):
        raise ConfigError(f"prompts must be auto, meta or roles, not {prompts!r}")
    style = ("meta" if roles.shared else "roles") if prompts == "auto" else prompts
    settings = settings or AgentSettings()

    def model(name: str, label: str) -> EndpointModel:
        return EndpointModel(EndpointConfig(**{**endpoint.__dict__, "model": name}), usage_label=label)

    def role(name: str) -> str:
        return "meta" if style == "meta" else name

    reflect = ModelReflectAgent(model(roles.reflect, "reflect"), role("reflect"), settings) if roles.reflect else None
    context = GroupContext(
        plan=ModelPlanAgent(model(roles.plan, "plan"), role("plan"), settings),
        tool=ModelToolAgent(model(roles.tool, "tool"), role("tool"), settings),
        reflect=reflect, toolbox=toolbox, task=task, limits=limits or Limits(), budget_role=role("plan"),
    )
    return AgentGroup(context)


AGENT_DESIGNS = ("autoact", "cot", "react", "reflexion", "rewoo", "bolaa", "chameleon")


def build_design(design: str, task: Task, toolbox: Toolbox, model: CompletionModel,
                 limits: Limits | None = None, settings: AgentSettings | None = None, max_trials: int = 3) -> Any:
    """A single-model baseline design on the runtime (`prompts/{design}_{task}.txt`).

    - `cot` (chain of thought): one Thought, then Finish; no tools, at most one step.
    - `react` (Yao et al., 2023): one agent writes thoughts and actions with a worked example in
      its prompt; the task's tools; no reflection (the first Finish is final).
    - `reflexion` (Shinn et al., 2023): ReAct trials; after a failed one (halted, or judged wrong by
      the model itself) a one-line lesson is kept and shown in the next trial, up to `max_trials`.
    - `rewoo` (Xu et al., 2023): the whole plan of tool calls first (`#E1 = Tool[...]`), then the calls
      with earlier evidence substituted, then an answer from the evidence.
    - `bolaa` (Liu et al., 2023): a controller routes each step to a labor agent per tool family,
      which sees only its own tools.
    - `chameleon` (Lu et al., 2023): a program of tool modules, composed first, run in order, then
      an answer module.
    """
    if design not in AGENT_DESIGNS or design == "autoact":
        raise ConfigError(f"build_design builds {', '.join(AGENT_DESIGNS[1:])}, not {design!r}")
    settings = settings or AgentSettings()
    limits = limits or Limits()
    if design == "chameleon":
        from graph.chameleon import ChameleonContext, build_chameleon_graph
        return DesignAgent(ChameleonContext(model=model, toolbox=toolbox, task=task), build_chameleon_graph())
    if design == "bolaa":
        from graph.bolaa import BolaaContext, build_bolaa_graph
        max_steps = (limits or Limits()).max_steps
        return DesignAgent(BolaaContext(model=model, toolbox=toolbox, task=task, max_steps=max_steps),
                           build_bolaa_graph(), recursion_limit=2 * max_steps + 6)
    if design == "rewoo":
        from graph.rewoo import ReWOOContext, build_rewoo_graph
        return DesignAgent(ReWOOContext(model=model, toolbox=toolbox, task=task), build_rewoo_graph())
    if design == "reflexion":
        from graph.reflexion import ReflexionContext, build_reflexion_graph
        actor = build_design("react", task, toolbox, model, limits, settings)
        return DesignAgent(ReflexionContext(actor=actor, model=model, max_trials=max_trials), build_reflexion_graph(),
                           recursion_limit=3 * max_trials + 4, start_extra={"lessons": [], "trial": 0})
    role = f"{design}_{task.name}"
    if design == "cot":
        toolbox = build_toolbox([], ToolResources())  # Finish is the only action
        settings = replace(settings, thought_tokens=max(settings.thought_tokens, 128))
        limits = replace(limits, max_steps=1)
    context = GroupContext(plan=ModelPlanAgent(model, role, settings), tool=ModelToolAgent(model, role, settings),
                           reflect=None, toolbox=toolbox, task=task, limits=limits, budget_role=role)
    return AgentGroup(context)
