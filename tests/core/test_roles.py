"""Role names (core/roles.py) and the layers that must agree on them: prompts, serving and training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.roles import ADAPTER_NAMES, ALL, META, PROMPT_ROLES, ROLES

PROMPTS = Path(__file__).resolve().parents[2] / "prompts"


def test_role_tuples_are_built_from_roles():
    assert ROLES == ("plan", "tool", "reflect")
    assert ADAPTER_NAMES == (*ROLES, ALL) and ALL == "all"
    assert PROMPT_ROLES == (META, *ROLES) and META == "meta"
    assert len(set(ADAPTER_NAMES)) == len(ADAPTER_NAMES) and len(set(PROMPT_ROLES)) == len(PROMPT_ROLES)


@pytest.mark.parametrize("role", PROMPT_ROLES)
def test_every_prompt_role_has_a_template(role):
    from prompts.builder import load_template
    path = PROMPTS / f"{role}.txt"
    assert path.is_file() and path.read_text(encoding="utf-8").strip()
    assert load_template(role).template == path.read_text(encoding="utf-8").strip()


def test_a_missing_template_names_the_prompt_roles():
    from prompts.builder import load_template
    with pytest.raises(ConfigError, match=", ".join(PROMPT_ROLES)):
        load_template("no-such-role")


def test_serving_finds_the_group_adapters_by_the_adapter_names(tmp_path):
    from serving.adapters import group_adapters
    for name in (*ADAPTER_NAMES, "other"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "adapter_config.json").write_text("{}")
    assert group_adapters(tmp_path) == {name: tmp_path / name for name in ADAPTER_NAMES}
    with pytest.raises(ConfigError, match=", ".join(ADAPTER_NAMES)):
        group_adapters(tmp_path / "other")


def test_training_writes_one_file_per_role(tmp_path):
    from training.dataset import write_dataset
    from training.differentiate import Differentiated
    data = Differentiated()
    assert tuple(data.pairs) == ROLES
    data.pairs["tool"].append({"prompt": "p", "completion": "c"})
    stats = write_dataset(tmp_path, data, 1, {}, len)
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == sorted(f"{r}.jsonl" for r in ROLES)
    assert tuple(stats["roles"]) == ROLES and stats["roles"]["tool"]["pairs"] == 1
    assert json.loads((tmp_path / "tool.jsonl").read_text()) == {"prompt": "p", "completion": "c"}
