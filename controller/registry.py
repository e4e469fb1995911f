"""Registries of the controller's extension points: built-ins in code, plugins through entry points.

Every extension point (search spaces, search strategies, accuracy
estimators, latency sources) has one :class:`Registry`: the built-in names
are listed once, in code, next to the contract they implement; another
distribution adds its own by declaring an entry point in the registry's
group in *its* ``pyproject.toml``::

    [project.entry-points."fleetnas.strategies"]
    bayes = "mypkg.search:BayesStrategy"

========================== ===================================== ===============================
group                      registry                              an entry point names
========================== ===================================== ===============================
``fleetnas.spaces``        ``fleetnas.controller.spaces``        a SearchSpace class or factory
``fleetnas.strategies``    ``fleetnas.controller.search``        a Strategy subclass
``fleetnas.accuracy``      ``fleetnas.controller.driver``        an EstimatorKind subclass
``fleetnas.latency_sources`` ``fleetnas.controller.driver``      a LatencySource subclass
========================== ===================================== ===============================

Rules, the same for every registry: an entry point is only imported when its
name is asked for, so a broken plugin never breaks the others (it raises the
registry's *broken* error when used); built-in names cannot be shadowed; a
built-in given as ``"module:attribute"`` is imported on first use too. Tests
and tools pass ``entry_points=`` to replace the installed ones.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")

EntryPoints = Iterable[importlib.metadata.EntryPoint] | None


class UnknownPlugin(LookupError):
    """No built-in or registered extension has this name."""


class PluginLoadError(RuntimeError):
    """A registered extension could not be imported, or is not what its group expects."""


def installed_entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    """The entry points installed in ``group``."""
    return list(importlib.metadata.entry_points(group=group))


class Registry(Generic[T]):
    """One extension point (see the module docstring).

    ``what`` names one extension in messages (``"search space"``);
    ``builtins`` maps each built-in name to the object or its
    ``"module:attribute"``; ``check(name, loaded)`` validates a loaded object
    and returns it typed (raising ``broken``); ``unknown`` and ``broken`` are
    the error classes to raise (subclasses of LookupError and Exception).
    """

    def __init__(
        self,
        group: str,
        what: str,
        builtins: Mapping[str, object],
        check: Callable[[str, object], T],
        *,
        unknown: type[LookupError] = UnknownPlugin,
        broken: type[Exception] = PluginLoadError,
    ) -> None:
        self.group = group
        self.what = what
        self.builtins = dict(builtins)
        self.check = check
        self.unknown = unknown
        self.broken = broken

    def user_entry_points(self, entry_points: EntryPoints = None) -> dict[str, importlib.metadata.EntryPoint]:
        """This group's entry points by name (first wins), built-in names left out."""
        found = installed_entry_points(self.group) if entry_points is None else list(entry_points)
        out: dict[str, importlib.metadata.EntryPoint] = {}
        for ep in found:
            if ep.group == self.group and ep.name not in self.builtins:
                out.setdefault(ep.name, ep)
        return out

    def names(self, entry_points: EntryPoints = None) -> list[str]:
        """The built-in names in their order, then the registered ones, sorted (none loaded)."""
        return [*self.builtins, *sorted(self.user_entry_points(entry_points))]

    def load(self, name: str, entry_points: EntryPoints = None) -> T:
        """The extension called ``name``; ``unknown`` naming the known ones, or ``broken``."""
        if name in self.builtins:
            target = self.builtins[name]
            return self.check(name, _import(target) if isinstance(target, str) else target)
        user = self.user_entry_points(entry_points)
        if name not in user:
            known = ", ".join(sorted({*self.builtins, *user}))
            raise self.unknown(
                f"unknown {self.what} {name!r}; known: {known} (others register in the "
                f"entry-point group {self.group!r})"
            )
        return self.load_entry_point(user[name])

    def load_entry_point(self, entry_point: importlib.metadata.EntryPoint) -> T:
        """Import one entry point and check what it names."""
        try:
            loaded = entry_point.load()
        except Exception as exc:  # any import-time failure of third-party code
            raise self.broken(
                f"{self.what} {entry_point.name!r} ({entry_point.value}) failed to load: {exc!r}"
            ) from exc
        return self.check(entry_point.name, loaded)


def _import(target: str) -> object:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def subclass_check(
    base: type, name_attribute: str, what: str, broken: type[Exception] = PluginLoadError
) -> Callable[[str, object], type]:
    """A ``check`` for registries of classes: a subclass of ``base`` whose
    ``name_attribute`` equals its registered name."""

    def check(name: str, loaded: object) -> type:
        if not (isinstance(loaded, type) and issubclass(loaded, base)):
            raise broken(f"{what} {name!r} is {loaded!r}, not a {base.__name__} subclass")
        own = getattr(loaded, name_attribute, None)
        if own != name:
            raise broken(
                f"{what} registered as {name!r} calls itself {own!r}; the names must match"
            )
        return loaded

    return check
