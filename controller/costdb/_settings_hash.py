"""The identity of a measurement's benchmark settings.

Two measurements are comparable (and one can stand in for the other in the
cache) when they measured the same model on the same device with the same
``settings_hash``. What a measurement's identity covers is defined once, by
the agent's settings table: :func:`fleetnas.agent.settings.identity_settings`
(every setting whose ``identity`` flag is set). The hash is of that part of
the *resolved* ``BenchmarkSettings`` (the copy an agent echoes in
``BenchmarkResult.settings``):

* the fields that do not change what is measured are dropped
  (:data:`RUN_LIMIT_FIELDS`: ``timeout_s``, ``memory_cap_bytes``, ``profile``,
  ``profile_runs`` and the output-only ``agent_defaults``);
* the enum values that the API defines as aliases are normalised:
  ``GRAPH_OPTIMIZATION_UNSPECIFIED`` -> ``GRAPH_OPTIMIZATION_ALL`` and
  ``METHOD_UNSPECIFIED`` -> ``METHOD_PLAIN``;
* ``runtime = "onnxruntime"`` is dropped, which is what an echo of a v1 agent
  (no runtime field) meant, so the hash of a v1 echo is unchanged;
* the message is rendered with
  ``json_format.MessageToDict(settings, preserving_proto_field_name=True)``
  (enums by name, 64-bit integers as strings, unset optional fields absent),
  dumped as JSON with sorted keys and no whitespace, and hashed with sha256;
  the first 16 hex characters are the hash.

So a measurement of an ONNX model by an agent that echoes ``runtime`` and
``profile_runs`` (or took its threads from its device-side defaults) has the
hash a v1 agent's echo of the same settings had, and old cost DBs keep
serving the cache.

Settings that leave optional fields unset hash differently from resolved ones
that set them to the same values as the agent's defaults: always hash the
settings echoed by the agent, or settings resolved the same way
(:func:`fleetnas.agent.settings.resolve_for_description`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from google.protobuf import json_format

from fleetnas.agent.settings import identity_settings, run_limit_fields
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb._codec import canonical_json, message_to_dict

SETTINGS_HASH_CHARS = 16
#: fields that do not change what a run measures (not in the hash), from the agent's table
RUN_LIMIT_FIELDS: tuple[str, ...] = run_limit_fields()


def settings_to_dict(settings: agent_pb2.BenchmarkSettings) -> dict[str, Any]:
    """The full settings as a JSON-ready dict (field names as in the proto, enums by name)."""
    return message_to_dict(settings)


def settings_from_dict(data: dict[str, Any]) -> agent_pb2.BenchmarkSettings:
    """Inverse of :func:`settings_to_dict`; raises ``json_format.ParseError`` on bad input."""
    return json_format.ParseDict(data, agent_pb2.BenchmarkSettings())


def identity_dict(settings: agent_pb2.BenchmarkSettings) -> dict[str, Any]:
    """The part of the settings that the hash covers, normalised (see the module docstring)."""
    return settings_to_dict(identity_settings(settings))


def settings_hash(settings: agent_pb2.BenchmarkSettings) -> str:
    """The 16-hex-character identity of ``settings`` (see the module docstring)."""
    canonical = canonical_json(identity_dict(settings))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:SETTINGS_HASH_CHARS]
