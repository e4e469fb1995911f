"""Find a search space by name: the built-ins, then user spaces from entry points.

A user space is registered in the entry-point group ``fleetnas.spaces``; the
entry point's name is the space name and its value a SearchSpace subclass or a
factory ``(**config) -> SearchSpace``::

    [project.entry-points."fleetnas.spaces"]
    myspace = "mypkg.spaces:MySpace"

Entry points are only loaded when their space is asked for, so a broken plugin
never breaks the others. Built-in names cannot be shadowed.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Mapping
from typing import Any

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


def installed_entry_points() -> list[importlib.metadata.EntryPoint]:
    """The entry points installed in the group ``fleetnas.spaces``."""
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _user_entry_points(
    entry_points: Iterable[importlib.metadata.EntryPoint] | None,
) -> dict[str, importlib.metadata.EntryPoint]:
    found = installed_entry_points() if entry_points is None else list(entry_points)
    out: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in found:
        if ep.group == ENTRY_POINT_GROUP and ep.name not in BUILTIN_SPACES:
            out.setdefault(ep.name, ep)
    return out


def available_spaces(
    *, entry_points: Iterable[importlib.metadata.EntryPoint] | None = None
) -> list[str]:
    """Names of the built-in spaces and the registered ones (not loaded), sorted.

    ``entry_points`` replaces the installed ones (for tests and tools).
    """
    return sorted({*BUILTIN_SPACES, *_user_entry_points(entry_points)})


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
    kwargs = dict(config or {})
    factory = BUILTIN_SPACES.get(name)
    if factory is not None:
        return _construct(name, factory, kwargs)
    user = _user_entry_points(entry_points)
    ep = user.get(name)
    if ep is None:
        known = ", ".join(sorted({*BUILTIN_SPACES, *user}))
        raise UnknownSpace(
            f"unknown search space {name!r}; known spaces: {known} "
            f"(user spaces register in the entry-point group {ENTRY_POINT_GROUP!r})"
        )
    return load_space(ep, kwargs)


def load_space(
    entry_point: importlib.metadata.EntryPoint, config: Mapping[str, Any] | None = None
) -> SearchSpace:
    """Load one entry point and build its space with ``config``.

    The space's ``name`` must equal the entry point's name. Raises SpacePluginError.
    """
    try:
        factory = entry_point.load()
    except Exception as exc:  # any import-time failure of third-party code
        raise SpacePluginError(
            f"search space {entry_point.name!r} ({entry_point.value}) failed to load: {exc!r}"
        ) from exc
    if not callable(factory):
        raise SpacePluginError(
            f"search space {entry_point.name!r} ({entry_point.value}) is not a class or factory"
        )
    return _construct(entry_point.name, factory, dict(config or {}))


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
