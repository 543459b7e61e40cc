"""The roles of an agent group, named once for every layer (prompts, serving, training, assembly)."""

from __future__ import annotations

ROLES = ("plan", "tool", "reflect")  # the three sub-agents of AutoAct, each with its own adapter
ALL = "all"  # one adapter trained on every role's data (FireAct), played in every role
META = "meta"  # the zero-shot Meta-Agent's prompt: one instruction for every role
ADAPTER_NAMES = (*ROLES, ALL)  # the served names of a trained group's adapters
PROMPT_ROLES = (META, *ROLES)  # the roles that have an instruction template of their own
