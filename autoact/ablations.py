"""The paper's ablation table (its Table 2) as pipeline stages: what each variant is trained on and served as.

`autoact ablate` (= `pipeline --ablations`) evaluates, on the same questions:

| variant | what differs from AutoAct |
|---|---|
| AutoAct w/o reflect (−reflection) | the group without its reflect agent |
| AutoAct −multi | one adapter (`all`) trained on every role's pairs plays all three roles |
| Meta-Agent zero-shot (−fine-tuning) | the base model in every role, with the Meta-Agent's prompts |
| AutoAct −filtering | adapters trained on every trajectory, right or wrong (`differentiate --unfiltered`) |
| chance, direct, CoT, ReAct, Reflexion | the baselines, each on the base model (chance only where answers are options) |

The extra adapters live beside the group's: `adapters-multi/all` and
`adapters-unfiltered/ROLE` (data in `data-unfiltered/`), served under the names
`all` and `unfiltered-ROLE` by the one worker that serves the group.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from autoact.assembly import RoleModels
from core.roles import ALL, ROLES

__all__ = ["ABLATION_BASELINES", "Variant", "ablation_dirs", "served_ablations", "variants"]

#: the baselines of the ablation table, each a registered design on the base model
ABLATION_BASELINES = {"chance": "chance", "direct": "direct", "cot": "CoT", "react": "ReAct",
                      "reflexion": "Reflexion"}
UNFILTERED = "unfiltered-"


@dataclass(frozen=True)
class Variant:
    """One evaluation of a run: written to `eval/NAME`, shown under `label`."""

    name: str
    label: str
    roles: RoleModels
    prompts: str = "roles"  # "meta": the Meta-Agent's prompts; "roles": the trained roles'
    design: str = "autoact"


def ablation_dirs(workdir: Path) -> dict[str, Path]:
    """Where the ablations' data and adapters go in a run directory."""
    return {"data-unfiltered": workdir / "data-unfiltered", "adapters-unfiltered": workdir / "adapters-unfiltered",
            "adapters-multi": workdir / "adapters-multi"}


def served_ablations(workdir: Path, trained: Callable[[Path], list[str]]) -> dict[str, Path]:
    """The ablation adapters that finished training, by the name they are served under."""
    dirs = ablation_dirs(workdir)
    served = {f"{UNFILTERED}{r}": dirs["adapters-unfiltered"] / r for r in trained(dirs["adapters-unfiltered"])}
    if (dirs["adapters-multi"] / ALL / "training_args.json").is_file():
        served[ALL] = dirs["adapters-multi"] / ALL
    return served


def variants(base: str, trained: list[str], *, zero_shot: bool = True, no_reflect: bool = False,
             ablations: dict[str, Any] | None = None, closed_options: bool = True) -> list[Variant]:
    """The evaluations of a run, in report order; `ablations` (served ablation adapters) adds the table's rows.

    The chance baseline draws among answer options: a task without them (`closed_options` false,
    HotpotQA) has no chance row.
    """
    out = [Variant("zero-shot", "Meta-Agent zero-shot", RoleModels(base, base, base), "meta")][:int(zero_shot)]
    roles = RoleModels(*(r if r in trained else base for r in ROLES))
    if trained:
        out.append(Variant("autoact", "AutoAct", roles))
        if no_reflect or ablations is not None:
            out.append(Variant("no-reflect", "AutoAct w/o reflect", RoleModels(roles.plan, roles.tool, None)))
    if ablations is None:
        return out
    if ALL in ablations:
        out.append(Variant("no-multi", "AutoAct −multi (one adapter)", RoleModels(ALL, ALL, ALL)))
    unfiltered = [r for r in ROLES if f"{UNFILTERED}{r}" in ablations]
    if unfiltered:
        out.append(Variant("no-filter", "AutoAct −filtering", RoleModels(
            *(f"{UNFILTERED}{r}" if r in unfiltered else base for r in ROLES))))
    one = RoleModels(base, base, base)
    out += [Variant(name, f"{label} (base model)", one, "meta", design=name) for name, label in
            ABLATION_BASELINES.items() if closed_options or name != "chance"]
    return out
