"""The identity of a measurement's benchmark settings.

Two measurements are comparable (and one can stand in for the other in the
cache) when they measured the same model on the same device with the same
``settings_hash``. The hash covers every field of the *resolved*
``BenchmarkSettings`` (the copy an agent echoes in ``BenchmarkResult.settings``)
except the limits of a run, which do not change what is measured:

* ``timeout_s`` and ``memory_cap_bytes`` are dropped;
* the enum values that the API defines as aliases are normalised:
  ``GRAPH_OPTIMIZATION_UNSPECIFIED`` -> ``GRAPH_OPTIMIZATION_ALL`` and
  ``METHOD_UNSPECIFIED`` -> ``METHOD_PLAIN``;
* the message is rendered with
  ``json_format.MessageToDict(settings, preserving_proto_field_name=True)``
  (enums by name, 64-bit integers as strings, unset optional fields absent),
  dumped as JSON with sorted keys and no whitespace, and hashed with sha256;
  the first 16 hex characters are the hash.

Settings that leave optional fields unset hash differently from resolved ones
that set them to the same values as the agent's defaults: always hash the
settings echoed by the agent, or settings resolved the same way.
"""

from __future__ import annotations

import hashlib
from typing import Any

from google.protobuf import json_format

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb._codec import canonical_json, message_to_dict

SETTINGS_HASH_CHARS = 16
#: fields that limit a run without changing what it measures (not in the hash)
RUN_LIMIT_FIELDS = ("timeout_s", "memory_cap_bytes")


def settings_to_dict(settings: agent_pb2.BenchmarkSettings) -> dict[str, Any]:
    """The full settings as a JSON-ready dict (field names as in the proto, enums by name)."""
    return message_to_dict(settings)


def settings_from_dict(data: dict[str, Any]) -> agent_pb2.BenchmarkSettings:
    """Inverse of :func:`settings_to_dict`; raises ``json_format.ParseError`` on bad input."""
    return json_format.ParseDict(data, agent_pb2.BenchmarkSettings())


def identity_dict(settings: agent_pb2.BenchmarkSettings) -> dict[str, Any]:
    """The part of the settings that the hash covers, normalised (see the module docstring)."""
    identity = agent_pb2.BenchmarkSettings()
    identity.CopyFrom(settings)
    for name in RUN_LIMIT_FIELDS:
        identity.ClearField(name)
    if identity.graph_optimization == agent_pb2.GRAPH_OPTIMIZATION_UNSPECIFIED:
        identity.graph_optimization = agent_pb2.GRAPH_OPTIMIZATION_ALL
    if identity.method == agent_pb2.METHOD_UNSPECIFIED:
        identity.method = agent_pb2.METHOD_PLAIN
    return settings_to_dict(identity)


def settings_hash(settings: agent_pb2.BenchmarkSettings) -> str:
    """The 16-hex-character identity of ``settings`` (see the module docstring)."""
    canonical = canonical_json(identity_dict(settings))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:SETTINGS_HASH_CHARS]
