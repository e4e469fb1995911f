"""Model formats from bytes, and the runtimes an agent lists in Describe."""

from __future__ import annotations

import importlib.metadata

import onnxruntime
import pytest

from fleetnas.agent.model_format import FormatCache, detect_format, format_of_file
from fleetnas.agent.runtimes import describe_runtimes, litert_info, onnxruntime_info
from fleetnas.api.v1 import agent_pb2
from tests import onnx_models

# The first 8 bytes of a .tflite file: root-table offset, then the identifier "TFL3".
TFLITE_HEAD = b"\x1c\x00\x00\x00TFL3"


@pytest.mark.parametrize("model", [onnx_models.mlp(width=8, depth=1), onnx_models.slow_model(0.1)])
def test_exported_onnx_models_read_as_onnx(model: bytes) -> None:
    assert detect_format(model[:8]) == agent_pb2.MODEL_FORMAT_ONNX


@pytest.mark.parametrize(("head", "expected"), [
    (TFLITE_HEAD + b"\x00" * 20, agent_pb2.MODEL_FORMAT_TFLITE),
    (b"", agent_pb2.MODEL_FORMAT_UNRECOGNIZED),
    (b"\x00\x01\x02", agent_pb2.MODEL_FORMAT_UNRECOGNIZED),
    (b"PK\x03\x04 zip", agent_pb2.MODEL_FORMAT_UNRECOGNIZED),
    (b"TFL3", agent_pb2.MODEL_FORMAT_UNRECOGNIZED),  # the identifier at the wrong offset
    (b"\x08\x07\x12\x07pytorch", agent_pb2.MODEL_FORMAT_ONNX),
])  # fmt: skip
def test_format_comes_from_the_bytes(head: bytes, expected: int) -> None:
    assert detect_format(head) == expected


def test_format_cache_reads_a_file_once(tmp_path) -> None:
    path = tmp_path / "m"
    path.write_bytes(TFLITE_HEAD + b"rest")
    cache = FormatCache()
    assert cache.get("a" * 64, path) == agent_pb2.MODEL_FORMAT_TFLITE == format_of_file(path)
    path.unlink()
    assert cache.get("a" * 64, path) == agent_pb2.MODEL_FORMAT_TFLITE  # remembered
    with pytest.raises(OSError):
        cache.get("b" * 64, path)


def test_onnxruntime_entry_is_the_installed_onnxruntime() -> None:
    info = onnxruntime_info()
    assert info.available and info.name == "onnxruntime"
    assert info.version == info.onnxruntime_version == onnxruntime.__version__
    assert list(info.accelerators) == list(onnxruntime.get_available_providers())
    assert list(info.formats) == [agent_pb2.MODEL_FORMAT_ONNX]


def test_litert_is_listed_whether_installed_or_not() -> None:
    (ort, litert) = describe_runtimes()
    assert ort.name == "onnxruntime" and litert.name == "litert"
    try:
        version = importlib.metadata.version("ai-edge-litert")
    except importlib.metadata.PackageNotFoundError:
        assert not litert.available and "pip install 'fleetnas[litert]'" in litert.reason
        assert not litert.version and not litert.accelerators
    else:
        assert litert.available and litert.version == version
        assert litert.accelerators[0] == "XNNPACK"
    assert list(litert.formats) == [agent_pb2.MODEL_FORMAT_TFLITE]


def test_litert_delegates_are_those_the_linker_finds() -> None:
    found = {"edgetpu": "libedgetpu.so.1"}
    info = litert_info(version_of=lambda _: "2.3.0", find_library=found.get)
    if not info.available:  # the module itself is not installed here
        assert "not importable" in info.reason and info.version == "2.3.0"
        return
    assert list(info.accelerators) == ["XNNPACK", "EdgeTPU"]


def test_litert_without_the_distribution_names_the_extra() -> None:
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    info = litert_info(version_of=missing)
    assert not info.available and "ai-edge-litert is not installed" in info.reason
    assert "fleetnas[litert]" in info.reason
