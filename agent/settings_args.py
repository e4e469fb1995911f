"""Benchmark settings from command-line style values, generated from the settings table.

Shared by ``fleetnas-agent bench`` and the controller's commands so all accept
the same spellings: the flags, their ``k=v`` keys and the keywords of
:func:`build_settings` all come from :data:`fleetnas.agent.settings.SETTINGS`.
``None`` (or an empty list) means "unset: the agent's default".
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from fleetnas.agent.settings import (
    METHODS,
    OPT_LEVELS,
    Setting,
    flag_settings,
    parse_shape,
    setting_for_key,
)
from fleetnas.api.v1 import agent_pb2

__all__ = [
    "METHODS", "OPT_LEVELS", "add_settings_flags", "build_settings", "parse_shape",
    "settings_from_namespace", "settings_from_pairs", "values_from_pairs",
]  # fmt: skip


def add_settings_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add every settings flag to ``parser``; each value lands under its setting's keyword."""
    for s in flag_settings():
        options: dict[str, Any] = {"dest": s.keyword, "help": s.help_text()}
        if s.value_type is bool:  # a switch: present = true, absent = unset (the default)
            parser.add_argument(s.flag, action="store_true", default=None, **options)
            continue
        if s.repeated:
            options.update(action="append", default=[])
        if s.choices:
            options["choices"] = s.choice_names
        elif not s.repeated or s.parse is None:
            options["type"] = s.value_type
        if s.metavar:
            options["metavar"] = s.metavar
        parser.add_argument(s.flag, **options)


def settings_from_namespace(args: argparse.Namespace) -> agent_pb2.BenchmarkSettings:
    """The request that the flags of :func:`add_settings_flags` spell in ``args``."""
    return build_settings(**{s.keyword: getattr(args, s.keyword) for s in flag_settings()})


def _set(request: agent_pb2.BenchmarkSettings, s: Setting, value: Any) -> None:
    if s.repeated:
        items = [value] if isinstance(value, str) else list(value)
        parsed = [s.parse(v) if s.parse is not None and isinstance(v, str) else v for v in items]
        getattr(request, s.name).extend(parsed)
    elif s.choices:
        if value not in s.choices:
            raise ValueError(f"{s.key} {value!r}: choose one of {', '.join(s.choices)}")
        setattr(request, s.name, s.choices[value])
    else:
        if s.parse is not None and isinstance(value, str):
            value = s.parse(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise ValueError(f"{s.name} must be >= 0, got {value}")
        setattr(request, s.name, value)


def build_settings(**values: Any) -> agent_pb2.BenchmarkSettings:
    """A request with only the given values set; keywords are the settings' ``keyword``
    (``threads=2``, ``opt_level="basic"``, ``shapes=["x=1x3"]``, ``providers=[...]``).

    Raises TypeError for an unknown keyword, ValueError for a bad spelling.
    """
    by_keyword = {s.keyword: s for s in flag_settings()}
    request = agent_pb2.BenchmarkSettings()
    for keyword, value in values.items():
        s = by_keyword.get(keyword)
        if s is None:
            raise TypeError(f"build_settings() got an unexpected keyword argument {keyword!r}; "
                            f"keywords: {', '.join(by_keyword)}")
        if value is None or (s.repeated and not value):
            continue
        _set(request, s, value)
    return request


def values_from_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``[("threads", "2"), ("provider", "A"), ("provider", "B")]`` -> build_settings keywords.

    Keys are the flags without dashes (``min-runs``; ``min_runs`` too);
    repeated settings collect into lists. Raises ValueError naming the key
    when it is unknown or its value does not convert.
    """
    values: dict[str, Any] = {}
    for key, raw in pairs:
        try:
            s = setting_for_key(key)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        text = raw.strip()
        try:
            # choices and repeated parsed values are converted by build_settings
            value: Any = text if s.choices or (s.parse and s.repeated) else (
                s.parse(text) if s.parse else s.value_type(text))
        except ValueError:
            raise ValueError(f"{s.key}={raw!r} is not a {s.value_type.__name__}") from None
        if s.repeated:
            values.setdefault(s.keyword, []).append(value)
        else:
            values[s.keyword] = value
    return values


def settings_from_pairs(pairs: Iterable[tuple[str, str]]) -> agent_pb2.BenchmarkSettings:
    """The request ``k=v`` pairs spell (see :func:`values_from_pairs`); ValueError if bad."""
    return build_settings(**values_from_pairs(pairs))
