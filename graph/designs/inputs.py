"""What every design builder takes: the task, its tools, the models, and how agents behave."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence, TypeVar

from agents.base import AgentSettings
from agents.llm import CompletionModel
from core.errors import ConfigError
from graph.context import Limits, ModelDesignContext
from tasks.base import Task
from tools.toolbox import Toolbox

C = TypeVar("C", bound=ModelDesignContext)


@dataclass(frozen=True, kw_only=True)
class DesignInputs:
    """Plain values a design is built from (the CLI and the pipeline fill them the same way).

    `plan` is the model of a single-model design, or the plan role's; `tool` defaults to it;
    `reflect=None` means no reflection. `train_rows` are real task rows the majority baseline counts.
    """

    task: Task
    toolbox: Toolbox
    plan: CompletionModel | None = None
    tool: CompletionModel | None = None
    reflect: CompletionModel | None = None
    settings: AgentSettings = field(default_factory=AgentSettings)
    limits: Limits = field(default_factory=Limits)
    prompts: Literal["auto", "meta", "roles"] = "auto"
    train_rows: Sequence[Mapping[str, Any]] | None = None
    max_trials: int = 3  # Reflexion

    def model(self) -> CompletionModel:
        """The one model of a single-model design."""
        if self.plan is None:
            raise ConfigError("this design needs a model")
        return self.plan

    def model_context(self, cls: type[C], **fields: Any) -> C:
        """The run context `cls` of a single-model design over these inputs (`fields` override or add)."""
        return cls(**{"model": self.model(), "toolbox": self.toolbox, "task": self.task, "limits": self.limits,
                      **fields})

    def role_models(self) -> tuple[CompletionModel, CompletionModel, CompletionModel | None]:
        plan = self.model()
        return plan, self.tool or plan, self.reflect
