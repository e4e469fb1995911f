"""Compare a settings *request* with a LUT's *resolved* settings.

A LUT stores the settings its agent resolved and echoed. A user who asks for
"the LUT measured with ``--threads 1``" gives a request with only some fields
set; it matches a LUT when every field the request sets has the same value
in the LUT's resolved settings. The run limits (``timeout_s``,
``memory_cap_bytes``) never count: they are not part of a measurement's
identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import RUN_LIMIT_FIELDS, settings_from_dict

_IGNORED = frozenset(RUN_LIMIT_FIELDS)


def resolved_from_dict(settings: Mapping[str, Any]) -> agent_pb2.BenchmarkSettings:
    """A LUT's settings dict as a message; raises ``json_format.ParseError``."""
    return settings_from_dict(dict(settings))


def is_empty_request(request: agent_pb2.BenchmarkSettings) -> bool:
    """True when the request sets nothing but run limits."""
    return all(field.name in _IGNORED for field, _ in request.ListFields())


def settings_mismatches(
    request: agent_pb2.BenchmarkSettings, resolved: Mapping[str, Any]
) -> list[str]:
    """One line per field set in ``request`` that differs in ``resolved`` (empty: match)."""
    have = resolved_from_dict(resolved)
    out = []
    for field, wanted in request.ListFields():
        if field.name in _IGNORED:
            continue
        actual = getattr(have, field.name)
        if field.is_repeated:
            wanted, actual = list(wanted), list(actual)
        if wanted != actual:
            out.append(f"{field.name}: asked {_show(field, wanted)}, the LUT has {_show(field, actual)}")
    return out


def _show(field: Any, value: Any) -> str:
    if field.enum_type is not None and isinstance(value, int):
        return field.enum_type.values_by_number[value].name
    if isinstance(value, list) and value and hasattr(value[0], "ListFields"):
        return str([json_format.MessageToDict(v) for v in value])
    return repr(value)
