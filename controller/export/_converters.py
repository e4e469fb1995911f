"""The converters from a torch module to a model file, one per format.

* **ONNX**: torch's TorchScript exporter (``dynamo=False``): on our machines
  8-40x faster than the dynamo exporter, models that run the same, weights
  inside the file; validated with ``onnx.checker``.
* **TFLite**: ``litert-torch`` (the ``fleetnas[tflite-export]`` extra),
  straight from the torch module (no ONNX detour, no TensorFlow), keeping the
  NCHW input so an agent feeds it as it feeds the ONNX model; its output is
  byte-identical across runs and agrees with onnxruntime on the ONNX export to
  ~2e-7 (why this converter: ``docs/export.md``). The output is checked to
  be a TFLite flatbuffer.

A :class:`Converter` also says what goes into the export cache's key for its
format (its name, version and options), so a converter upgrade never serves
stale bytes. Pick one with :func:`converter_for`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import io
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fleetnas.agent.model_format import HEAD_BYTES, detect_format, format_name
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.export._model import ConverterMissing, ExportError

#: the ONNX opset every ONNX export uses unless told otherwise
OPSET = 17
#: the input name of every exported ONNX graph
INPUT_NAME = "x"
OUTPUT_NAME = "y"
TFLITE_EXTRA_HINT = "pip install 'fleetnas[tflite-export]' (it brings litert-torch, no TensorFlow)"
# litert-torch prints a progress tree per conversion unless this says no.
_LITERT_PROGRESS_ENV = "LITERT_TORCH_SHOW_PROGRESS"


@dataclass(frozen=True)
class Converter:
    """How one model format is written from a torch module.

    ``convert(module, input_shape, opset)`` returns the model's bytes and the
    name of its input, or raises ExportError; ``identity(opset)`` is what the
    export cache's key records of the converter; ``suffix`` names the cache
    files.
    """

    model_format: int
    suffix: str
    convert: Callable[[Any, tuple[int, ...], int], tuple[bytes, str]]
    identity: Callable[[int], dict[str, Any]]


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# -- ONNX -------------------------------------------------------------------------------


def _to_onnx(module: Any, input_shape: tuple[int, ...], opset: int) -> tuple[bytes, str]:
    """Export with the TorchScript exporter and validate; raises ExportError."""
    import onnx
    import torch

    buffer = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated upstream but still the fast path.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            torch.onnx.export(
                module,
                (torch.zeros(input_shape),),
                buffer,  # type: ignore[arg-type]  # the TorchScript path accepts a file object
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                do_constant_folding=True,
                training=torch.onnx.TrainingMode.EVAL,
                export_params=True,
                keep_initializers_as_inputs=False,
            )
    except Exception as exc:  # torch raises many unrelated types; all mean "cannot export"
        raise ExportError(f"torch.onnx.export failed: {exc}") from exc
    data = buffer.getvalue()
    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises its own ValidationError and protobuf DecodeError
        raise ExportError(f"exported ONNX is not valid: {exc}") from exc
    external = [
        t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        raise ExportError(f"exported ONNX refers to external data: {external[:3]}")
    return data, INPUT_NAME


def module_to_onnx(module: Any, input_shape: tuple[int, ...], opset: int) -> bytes:
    """Any torch module in eval mode as validated ONNX (input ``INPUT_NAME``), exported
    exactly as archs are; raises ExportError."""
    return _to_onnx(module, input_shape, opset)[0]


def _onnx_identity(opset: int) -> dict[str, Any]:
    # Exactly the keys ONNX exports always had: existing caches keep hitting.
    return {"exporter": "torchscript", "opset": opset}


# -- TFLite -----------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_litert() -> Iterator[None]:
    """litert-torch without its progress tree on stdout; the environment is restored after."""
    before = os.environ.get(_LITERT_PROGRESS_ENV)
    os.environ[_LITERT_PROGRESS_ENV] = "n"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if before is None:
            os.environ.pop(_LITERT_PROGRESS_ENV, None)
        else:
            os.environ[_LITERT_PROGRESS_ENV] = before


def _to_tflite(module: Any, input_shape: tuple[int, ...], _opset: int) -> tuple[bytes, str]:
    """Convert with litert-torch and load the result once in LiteRT (its input name comes
    from there); raises ConverterMissing without it, ExportError on failure."""
    try:
        import litert_torch
    except ImportError as exc:
        raise ConverterMissing(
            f"exporting TFLite needs litert-torch, which is not installed ({exc.name}): "
            f"{TFLITE_EXTRA_HINT}"
        ) from exc
    import torch

    try:
        with _quiet_litert(), torch.no_grad():
            data = bytes(litert_torch.convert(module, (torch.zeros(input_shape),)).model_content())
    except Exception as exc:  # the converter raises torch, MLIR and its own errors alike
        raise ExportError(f"litert-torch could not convert the network: {exc}") from exc
    found = detect_format(data[:HEAD_BYTES])
    if found != agent_pb2.MODEL_FORMAT_TFLITE:
        raise ExportError(f"litert-torch wrote a {format_name(found)} file, not a TFLite flatbuffer")
    from ai_edge_litert.interpreter import Interpreter  # litert-torch depends on it

    try:
        inputs = Interpreter(model_content=data).get_input_details()
    except Exception as exc:  # LiteRT raises ValueError/RuntimeError for a model it cannot load
        raise ExportError(f"LiteRT cannot load the converted model: {exc}") from exc
    if len(inputs) != 1:
        raise ExportError(f"the converted model has {len(inputs)} inputs, expected 1")
    return data, str(inputs[0]["name"])


def _tflite_identity(_opset: int) -> dict[str, Any]:
    return {"exporter": "litert-torch", "litert_torch": _litert_torch_version()}


@functools.cache
def _litert_torch_version() -> str:
    # From metadata, so that a cache hit never imports the converter (~40 s here).
    return _version("litert-torch")


CONVERTERS: dict[int, Converter] = {
    agent_pb2.MODEL_FORMAT_ONNX: Converter(
        agent_pb2.MODEL_FORMAT_ONNX, ".onnx", _to_onnx, _onnx_identity),
    agent_pb2.MODEL_FORMAT_TFLITE: Converter(
        agent_pb2.MODEL_FORMAT_TFLITE, ".tflite", _to_tflite, _tflite_identity),
}  # fmt: skip


def converter_for(model_format: int) -> Converter:
    """The converter that writes ``model_format``; ExportError names the formats there are."""
    try:
        return CONVERTERS[model_format]
    except KeyError:
        known = ", ".join(format_name(f) for f in CONVERTERS)
        raise ExportError(f"cannot export {format_name(model_format)} models; formats: {known}") from None
