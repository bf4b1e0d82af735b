"""Fuzzing the run-configuration reader: YAML files and ``--set`` items.

Every input gives a validated ``RunConfig`` or a ``ConfigError`` (one line); nothing else. Inputs:
mutations of a valid config file, random text, and well-formed YAML whose values are junk of
every type at every key (the type and range checks), plus random ``--set`` items.
"""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from reliability_support import (
    FUZZ_MUTATED,
    FUZZ_RANDOM,
    fuzz,
    hang_guard,
    mutations,
    random_bytes,
    read_cleanly,
)
from resnetlab.errors import ConfigError
from resnetlab.train.config import RunConfig, config_to_yaml, load_config

FUZZ_VALUES = 150  # well-formed YAML with a junk value at one key
FUZZ_SETS = 100  # random --set items

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10)
)
_junk = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _keys() -> list[str]:
    """Every dotted key of ``RunConfig`` (``optim.lr``, ``epochs``, ...) plus the sections."""
    keys = []
    for name, value in dataclasses.asdict(RunConfig()).items():
        keys.append(name)
        if isinstance(value, dict) and name != "model":
            keys += [f"{name}.{sub}" for sub in value]
    return [*keys, "model.name", "model.overrides", "model.overrides.depth"]


KEYS = _keys()


def _valid_yaml() -> bytes:
    cfg = load_config(sets=["model.name=resnet20", "data.name=digits", "iterations=100"])
    return config_to_yaml(cfg).encode()


def _read(**kwargs) -> None:
    """A ``RunConfig`` or a ``UserError``; anything else fails the test."""
    cfg = read_cleanly(lambda: load_config(**kwargs))
    assert cfg is None or isinstance(cfg, RunConfig)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-config")


def test_the_valid_file_loads(folder):
    (folder / "valid.yaml").write_bytes(_valid_yaml())
    assert load_config(folder / "valid.yaml").iterations == 100


def test_mutated_config_files_give_clean_errors(folder):
    path = folder / "mutated.yaml"

    @fuzz(FUZZ_MUTATED)
    @given(mutations(_valid_yaml()))
    def case(data):
        path.write_bytes(data)
        _read(path=path)

    case()


def test_random_bytes_give_clean_errors(folder):
    path = folder / "random.yaml"

    @fuzz(FUZZ_RANDOM)
    @given(random_bytes(1024) | st.text(max_size=400).map(str.encode))
    def case(data):
        path.write_bytes(data)
        _read(path=path)

    case()


def _nest(key: str, value) -> dict:
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def test_junk_values_at_every_key_give_clean_errors(folder):
    path = folder / "values.yaml"

    @fuzz(FUZZ_VALUES)
    @given(st.sampled_from(KEYS), _junk)
    def case(key, value):
        path.write_text(yaml.safe_dump(_nest(key, value)))
        _read(path=path)

    case()


def test_random_set_items_give_clean_errors():
    @fuzz(FUZZ_SETS)
    @given(
        st.sampled_from(KEYS) | st.text(max_size=12),
        st.sampled_from(["=", "", "=="]),
        st.text(max_size=20) | _junk.map(lambda v: yaml.safe_dump(v).strip()),
    )
    def case(key, sep, value):
        _read(sets=[f"{key}{sep}{value}"])

    case()


def _alias_bomb(levels: int = 9) -> str:
    """A few hundred bytes of YAML aliases that expand to 9**levels list items."""
    lines = ["model:", "  overrides:", '    l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, levels):
        lines.append(f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


HOSTILE_YAML = {
    "alias bomb (9**9 items)": _alias_bomb(),
    "self-referencing alias": "model:\n  overrides:\n    a: &a [*a]\n",
    "nested 5000 deep": "model: {overrides: {a: " + "[" * 5000 + "]" * 5000 + "}}\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_YAML))
def test_hostile_yaml_is_refused_quickly(folder, name):
    path = folder / "hostile.yaml"
    path.write_text(HOSTILE_YAML[name])
    with hang_guard(), pytest.raises(ConfigError, match=r"hostile\.yaml: (more than|YAML nested)"):
        load_config(path)
    value = HOSTILE_YAML[name].split("a: ", 1)[-1].strip() if "bomb" not in name else None
    if value is not None:  # the same through --set
        with hang_guard(), pytest.raises(ConfigError, match=r"--set model\.overrides"):
            load_config(sets=[f"model.overrides={{a: {value}"])
