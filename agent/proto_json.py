"""Protobuf messages as JSON for people and scripts (``--json`` outputs).

``json_format.MessageToDict`` alone drops fields at their zero value (``busy: false``,
``queue_length: 0`` vanish) and writes 64-bit integers as strings (``"123456789012"``),
so a script cannot tell "zero" from "not reported" and must parse numbers. Here every
field without presence is printed, and 64-bit integers stay JSON numbers. Fields with
presence (``optional``) still appear only when set: absent means not reported.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_INT64_TYPES = frozenset({
    FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64,
})


def message_dict(message: Message) -> dict[str, Any]:
    """``message`` as a JSON-ready dict: proto field names, zero values kept, 64-bit
    integers as ints (well-known types such as Timestamp keep their JSON form)."""
    data = json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
    return _restore_numbers(message.DESCRIPTOR, data)


def _restore_numbers(descriptor: Descriptor, data: dict[str, Any]) -> dict[str, Any]:
    for field in descriptor.fields:
        if field.name in data:
            data[field.name] = _restore_field(field, data[field.name])
    return data


def _restore_field(field: FieldDescriptor, value: Any) -> Any:
    message_type = field.message_type
    if message_type is not None and message_type.GetOptions().map_entry:
        value_field = message_type.fields_by_name["value"]
        return {key: _restore_value(value_field, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_restore_value(field, item) for item in value]
    return _restore_value(field, value)


def _restore_value(field: FieldDescriptor, value: Any) -> Any:
    if field.type in _INT64_TYPES:
        return int(value)
    message_type = field.message_type
    if message_type is not None and isinstance(value, dict) and \
            not message_type.full_name.startswith("google.protobuf."):
        return _restore_numbers(message_type, value)
    return value
