"""Finding spaces by name: built-ins, user spaces through real EntryPoint objects, errors.

The entry points below point at classes and factories of this very module,
loaded by ``EntryPoint.load()`` as an installed plugin would be.
"""

from __future__ import annotations

import random
import subprocess
import sys
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from fleetnas.controller.spaces import (
    BUILTIN_SPACES,
    ENTRY_POINT_GROUP,
    MobileNetV3Space,
    NB201Space,
    SearchSpace,
    SpacePluginError,
    UnknownSpace,
    available_spaces,
    get_space,
    load_space,
)


class Tiny201(NB201Space):
    """A user space: NAS-Bench-201 cells on a one-cell-per-stage skeleton."""

    name = "tiny201"

    def __init__(self, *, num_classes: int = 10) -> None:
        super().__init__(cells_per_stage=1, num_classes=num_classes)


def make_tiny(**config: Any) -> SearchSpace:
    """A factory entry point."""
    return Tiny201(**config)


def misnamed() -> SearchSpace:
    return NB201Space()


def not_a_space() -> object:
    return object()


NOT_CALLABLE = 42


def ep(name: str, attr: str, module: str = __name__) -> EntryPoint:
    return EntryPoint(name=name, value=f"{module}:{attr}", group=ENTRY_POINT_GROUP)


def test_builtins_are_registered_in_code() -> None:
    assert available_spaces(entry_points=[]) == ["mbv3", "nb201"]
    assert isinstance(get_space("nb201", entry_points=[]), NB201Space)
    assert isinstance(get_space("mbv3"), MobileNetV3Space)
    assert set(BUILTIN_SPACES) == {"nb201", "mbv3"}


def test_unknown_space_names_the_known_ones() -> None:
    with pytest.raises(UnknownSpace) as info:
        get_space("resnet", entry_points=[ep("tiny201", "Tiny201")])
    message = str(info.value)
    assert "'resnet'" in message
    assert "mbv3, nb201, tiny201" in message
    assert ENTRY_POINT_GROUP in message


def test_user_space_loads_from_an_entry_point_class() -> None:
    eps = [ep("tiny201", "Tiny201")]
    assert available_spaces(entry_points=eps) == ["mbv3", "nb201", "tiny201"]
    space = get_space("tiny201", {"num_classes": 3}, entry_points=eps)
    assert isinstance(space, Tiny201) and space.num_classes == 3
    arch = space.sample(random.Random(0))
    assert space.decode(space.encode(arch)) == arch
    assert len(space.blocks(arch)) < len(NB201Space().blocks(arch))


def test_user_space_loads_from_a_factory() -> None:
    space = load_space(ep("tiny201", "make_tiny"), {"num_classes": 4})
    assert isinstance(space, Tiny201) and space.num_classes == 4


def test_builtin_names_cannot_be_shadowed() -> None:
    eps = [ep("nb201", "Tiny201")]
    assert type(get_space("nb201", entry_points=eps)) is NB201Space
    assert available_spaces(entry_points=eps) == ["mbv3", "nb201"]


def test_entry_points_of_other_groups_are_ignored() -> None:
    other = EntryPoint(name="tiny201", value=f"{__name__}:Tiny201", group="something.else")
    with pytest.raises(UnknownSpace):
        get_space("tiny201", entry_points=[other])


@pytest.mark.parametrize(
    ("entry_point", "match"),
    [
        (ep("broken", "Tiny201", module="tests.controller.no_such_module"), "failed to load"),
        (ep("broken", "NoSuchAttr"), "failed to load"),
        (ep("broken", "NOT_CALLABLE"), "not a class or factory"),
        (ep("broken", "not_a_space"), "not a SearchSpace"),
        (ep("broken", "misnamed"), "calls itself 'nb201'"),
    ],
)
def test_broken_plugins_raise_a_named_error(entry_point: EntryPoint, match: str) -> None:
    with pytest.raises(SpacePluginError, match=match):
        get_space("broken", entry_points=[entry_point])
    # a broken plugin never breaks the other spaces
    assert isinstance(get_space("nb201", entry_points=[entry_point]), NB201Space)


def test_bad_config_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="bad config"):
        get_space("nb201", {"no_such_option": 1})
    with pytest.raises(ValueError, match="width_mult"):
        get_space("mbv3", {"width_mult": -1})


def test_config_json_round_trip_rebuilds_the_space() -> None:
    import json

    small = MobileNetV3Space(resolutions=(96, 128), width_mult=0.5, num_classes=10)
    again = get_space("mbv3", json.loads(json.dumps(small.config())))
    assert again.identity() == small.identity()


def test_installed_entry_points_are_read_without_error() -> None:
    # the real metadata path: whatever is installed, the built-ins are there
    assert {"mbv3", "nb201"} <= set(available_spaces())


def test_importing_spaces_does_not_import_torch() -> None:
    code = (
        "import sys, random\n"
        "from fleetnas.controller.spaces import get_space\n"
        "s = get_space('mbv3')\n"
        "a = s.sample(random.Random(0))\n"
        "s.blocks(a); s.count_params(a); s.all_blocks()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
