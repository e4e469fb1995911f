"""User plugins: any importable callable ``(space, arch) -> float``, named ``module:function``.

The module is imported with :func:`importlib.import_module`, so it must be
importable the normal way (installed, or on ``PYTHONPATH``); nothing here
edits ``sys.path``. ``function`` may be a dotted path inside the module
(``mypkg.scores:Scorer.score``). The plugin is loaded when the estimator is
created, so a typo fails before a search starts.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable
from typing import Any, ClassVar

from fleetnas.controller.accuracy._base import AccuracyEstimator
from fleetnas.controller.accuracy._errors import PluginError
from fleetnas.controller.spaces import SearchSpace

_SPEC = re.compile(
    r"^(?P<module>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$"
)


def load_callable(spec: str) -> Callable[..., Any]:
    """The callable ``spec`` (``"module:function"``) names; PluginError saying what is wrong."""
    match = _SPEC.match(spec.strip())
    if match is None:
        raise PluginError(f"plugin {spec!r}: expected 'module:function', e.g. 'mypkg.scores:score'")
    module_name, attr = match.group("module"), match.group("attr")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise PluginError(
                f"plugin {spec!r}: no module named {exc.name!r}; install it or add its folder to PYTHONPATH"
            ) from exc
        raise PluginError(f"plugin {spec!r}: importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:  # the plugin's own import-time error, reported with its cause
        raise PluginError(f"plugin {spec!r}: importing {module_name!r} failed: {exc!r}") from exc
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise PluginError(
                f"plugin {spec!r}: {module_name!r} has no attribute {attr!r}"
            ) from None
    if not callable(target):
        raise PluginError(f"plugin {spec!r}: {attr!r} is a {type(target).__name__}, not callable")
    return target  # type: ignore[no-any-return]


class PluginEstimator(AccuracyEstimator):
    """Calls the user's ``function(space, arch)``; its result must be a finite number."""

    cost: ClassVar[str] = "whatever the plugin costs"

    def __init__(self, spec: str) -> None:
        self.spec = spec.strip()
        self.name = f"plugin:{self.spec}"
        self.fn = load_callable(self.spec)

    def estimate(self, space: SearchSpace, arch: Any) -> float:
        value = self.fn(space, arch)
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise PluginError(f"plugin {self.spec!r} returned {value!r}, not a number") from exc
        if not math.isfinite(number):
            raise PluginError(f"plugin {self.spec!r} returned {number}, not a finite number")
        return number
