"""The wire API: every message round-trips, and v1 clients still read what the agent sends.

``data/proto/agent_v1_0.proto`` is the API as the first agents shipped it
(frozen copy; never edit it). It is compiled here with protoc into a
descriptor pool of its own, so old and new schemas meet exactly as an old
client and a new agent do: through bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from fleetnas.api.v1 import agent_pb2

V1_0 = Path(__file__).parent / "data" / "proto" / "agent_v1_0.proto"
PACKAGE = "fleetnas.api.v1"


@pytest.fixture(scope="module")
def old_pool(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pool.DescriptorPool:
    """The v1.0 schema, compiled by protoc, in a pool apart from the generated code's."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("v1_0") / "v1_0.desc"
    args = ["protoc", f"-I{V1_0.parent}", f"--descriptor_set_out={out}", V1_0.name]
    assert protoc.main(args) == 0
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return pool


def _messages() -> list[Descriptor]:
    return list(agent_pb2.DESCRIPTOR.message_types_by_name.values())


def _populate(message: Message, depth: int = 0) -> Message:
    """Set every field of ``message`` (recursively) to a value that is not its default."""
    for field in message.DESCRIPTOR.fields:
        value = _value(field, depth)
        if field.is_repeated:
            target = getattr(message, field.name)
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                _populate(target.add(), depth + 1)
                _populate(target.add(), depth + 1)
            else:
                target.extend([value, value])
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth < 3:
                _populate(getattr(message, field.name), depth + 1)
        else:
            setattr(message, field.name, value)
    return message


def _value(field: FieldDescriptor, depth: int) -> object:
    t = field.type
    if t == FieldDescriptor.TYPE_MESSAGE:
        return None
    if t == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values[-1].number
    if t == FieldDescriptor.TYPE_BOOL:
        return True
    if t == FieldDescriptor.TYPE_STRING:
        return f"{field.name}-{depth}"
    if t == FieldDescriptor.TYPE_BYTES:
        return field.name.encode()
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return 1.5 + field.number
    return 3 + field.number


@pytest.mark.parametrize("descriptor", _messages(), ids=lambda d: d.name)
def test_every_message_round_trips_through_bytes_and_json(descriptor: Descriptor) -> None:
    cls = message_factory.GetMessageClass(descriptor)
    original = _populate(cls())
    assert original.ByteSize() > 0 or not descriptor.fields
    assert cls.FromString(original.SerializeToString()) == original
    assert json_format.Parse(json_format.MessageToJson(original), cls()) == original


def test_optional_fields_tell_unset_from_zero() -> None:
    """Unreadable is not 0: an explicit 0.0 survives the wire, an unset field stays unset."""
    state = agent_pb2.GpuState(index=0, power_w=0.0)
    back = agent_pb2.GpuState.FromString(state.SerializeToString())
    assert back.HasField("power_w") and back.power_w == 0.0
    assert not back.HasField("temperature_c") and not back.HasField("sm_clock_mhz")
    energy = agent_pb2.Energy.FromString(
        agent_pb2.Energy(readable=False, reason="no counter").SerializeToString()
    )
    assert not energy.HasField("joules") and not energy.HasField("mj_per_inference")


def test_no_v1_0_field_was_renumbered_retyped_or_removed(old_pool) -> None:
    old_file = old_pool.FindFileByName(V1_0.name)
    assert old_file.package == PACKAGE
    for name, old in old_file.message_types_by_name.items():
        new = agent_pb2.DESCRIPTOR.message_types_by_name[name]
        for old_field in old.fields:
            new_field = new.fields_by_number[old_field.number]
            assert new_field.name == old_field.name, f"{name}.{old_field.name}"
            assert new_field.type == old_field.type, f"{name}.{old_field.name}"
            assert new_field.is_repeated == old_field.is_repeated, f"{name}.{old_field.name}"
            assert new_field.has_presence == old_field.has_presence, f"{name}.{old_field.name}"
    for name, old_enum in old_file.enum_types_by_name.items():
        new_enum = agent_pb2.DESCRIPTOR.enum_types_by_name[name]
        for value in old_enum.values:
            assert new_enum.values_by_name[value.name].number == value.number
    old_service = old_file.services_by_name["Agent"]
    new_service = agent_pb2.DESCRIPTOR.services_by_name["Agent"]
    for method in old_service.methods:
        new_method = new_service.methods_by_name[method.name]
        assert new_method.input_type.name == method.input_type.name
        assert new_method.output_type.name == method.output_type.name


@pytest.mark.parametrize(
    "name", ["DeviceDescription", "AgentStatus", "BenchmarkResult", "HasModelsResponse",
             "UploadResponse", "BenchmarkSettings"],
)  # fmt: skip
def test_a_v1_0_client_reads_what_a_new_agent_sends(old_pool, name: str) -> None:
    """Bytes of a fully populated new message parse in the old schema; the old fields keep
    their values and the new ones are carried as unknown fields."""
    new = _populate(getattr(agent_pb2, name)())
    old_cls = message_factory.GetMessageClass(old_pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
    old = old_cls.FromString(new.SerializeToString())
    assert old.ByteSize() > 0
    # Back through the new schema, nothing is lost (unknown fields are re-serialized).
    assert getattr(agent_pb2, name).FromString(old.SerializeToString()) == new
    for field in old.DESCRIPTOR.fields:
        if field.type != FieldDescriptor.TYPE_MESSAGE and not field.is_repeated:
            assert getattr(old, field.name) == getattr(new, field.name), field.name


def test_a_v1_0_request_reads_the_same_in_the_new_schema(old_pool) -> None:
    old_cls = message_factory.GetMessageClass(
        old_pool.FindMessageTypeByName(f"{PACKAGE}.BenchmarkSettings")
    )
    old = old_cls(intra_op_threads=2, providers=["CPUExecutionProvider"], min_runs=7)
    new = agent_pb2.BenchmarkSettings.FromString(old.SerializeToString())
    assert new.intra_op_threads == 2 and list(new.providers) == ["CPUExecutionProvider"]
    assert new.min_runs == 7
    assert new.runtime == "" and not new.profile and not new.HasField("profile_runs")
    assert not new.fp16 and not new.agent_defaults
