"""Find a search space by name: the built-ins, then user spaces from entry points.

A user space is registered in the entry-point group ``fleetnas.spaces``; the
entry point's name is the space name and its value a SearchSpace subclass or a
factory ``(**config) -> SearchSpace``::

    [project.entry-points."fleetnas.spaces"]
    myspace = "mypkg.spaces:MySpace"

Entry points are only loaded when their space is asked for, so a broken plugin
never breaks the others. Built-in names cannot be shadowed. The mechanism is
the controller's one registry pattern (:mod:`fleetnas.controller.registry`).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fleetnas.controller.registry import Registry
from fleetnas.controller.registry import installed_entry_points as _installed
from fleetnas.controller.spaces._base import SearchSpace
from fleetnas.controller.spaces._mbv3 import MobileNetV3Space
from fleetnas.controller.spaces._nb201 import NB201Space

ENTRY_POINT_GROUP = "fleetnas.spaces"

BUILTIN_SPACES: Mapping[str, Callable[..., SearchSpace]] = {
    NB201Space.name: NB201Space,
    MobileNetV3Space.name: MobileNetV3Space,
}


class UnknownSpace(LookupError):
    """No built-in or registered search space has this name."""


class SpacePluginError(RuntimeError):
    """A registered search space could not be loaded or is not a SearchSpace."""


def _factory(name: str, loaded: object) -> Callable[..., Any]:
    if not callable(loaded):
        raise SpacePluginError(f"search space {name!r} ({loaded!r}) is not a class or factory")
    return loaded


SPACES: Registry[Callable[..., Any]] = Registry(
    ENTRY_POINT_GROUP, "search space", BUILTIN_SPACES, _factory,
    unknown=UnknownSpace, broken=SpacePluginError,
)  # fmt: skip


def installed_entry_points() -> list[importlib.metadata.EntryPoint]:
    """The entry points installed in the group ``fleetnas.spaces``."""
    return _installed(ENTRY_POINT_GROUP)


def available_spaces(
    *, entry_points: Iterable[importlib.metadata.EntryPoint] | None = None
) -> list[str]:
    """Names of the built-in spaces and the registered ones (not loaded), sorted.

    ``entry_points`` replaces the installed ones (for tests and tools).
    """
    return sorted(SPACES.names(entry_points))


def get_space(
    name: str,
    config: Mapping[str, Any] | None = None,
    *,
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
) -> SearchSpace:
    """The space called ``name``, built with ``config`` as keyword arguments.

    ``get_space(s.name, s.config())`` rebuilds a space equal to ``s``.
    ``entry_points`` replaces the installed ones (for tests and tools).
    Raises UnknownSpace (naming the known spaces) for an unknown name,
    SpacePluginError for a plugin that fails to load, and ValueError for a bad
    config value.
    """
    return _construct(name, SPACES.load(name, entry_points), dict(config or {}))


def load_space(
    entry_point: importlib.metadata.EntryPoint, config: Mapping[str, Any] | None = None
) -> SearchSpace:
    """Load one entry point and build its space with ``config``.

    The space's ``name`` must equal the entry point's name. Raises SpacePluginError.
    """
    return _construct(entry_point.name, SPACES.load_entry_point(entry_point), dict(config or {}))


def _construct(name: str, factory: Callable[..., Any], kwargs: dict[str, Any]) -> SearchSpace:
    try:
        space = factory(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad config for search space {name!r}: {exc}") from exc
    if not isinstance(space, SearchSpace):
        raise SpacePluginError(
            f"search space {name!r} built a {type(space).__name__}, not a SearchSpace"
        )
    if space.name != name:
        raise SpacePluginError(
            f"search space registered as {name!r} calls itself {space.name!r}; the names must match"
        )
    return space
