"""Assembling a runnable agent from settings: tools for a task, served models for each role, the design."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from agents.base import AgentSettings
from agents.llm import EndpointConfig, EndpointModel, list_models
from core.errors import ConfigError, EndpointError
from core.roles import ADAPTER_NAMES, ALL, ROLES
from graph import designs
from graph.context import Limits
from graph.protocol import GraphAgent
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


def build_agent(design: str, task: Task, toolbox: Toolbox, roles: RoleModels | None, endpoint: EndpointConfig,
                settings: AgentSettings | None = None, limits: Limits | None = None,
                prompts: Literal["auto", "meta", "roles"] = "auto",
                train_rows: Sequence[Mapping[str, Any]] | None = None) -> GraphAgent:
    """The design `design` (graph.designs) with its roles played by served models at one endpoint.

    The group's roles each get a client of their own (token usage is counted per role); a
    single-model design's one client is labelled with the design's name. `roles=None` only
    for designs that need no model (`majority`).
    """
    entry = designs.design(design)

    def client(name: str, label: str) -> EndpointModel:
        return EndpointModel(replace(endpoint, model=name), usage_label=label)

    models: dict[str, Any] = {}
    if entry.models == "roles":
        assert roles is not None
        models = {"plan": client(roles.plan, "plan"), "tool": client(roles.tool, "tool"),
                  "reflect": client(roles.reflect, "reflect") if roles.reflect else None}
    elif entry.models == "one":
        assert roles is not None
        models = {"plan": client(roles.plan, "" if entry.reference else design)}
    inputs = designs.DesignInputs(task=task, toolbox=toolbox, settings=settings or AgentSettings(),
                                  limits=limits or Limits(), prompts=prompts, train_rows=train_rows, **models)
    return entry.build(inputs)
