"""Precision LUTs: the models a LUT measures, converted to its precision first.

A LUT of precision P other than fp32 holds measurements of its blocks as
they deploy at P: every block is exported as the fp32 ONNX model an fp32 LUT
measures (:func:`~fleetnas.controller.export.register_block`), then converted
with the compress package's :func:`~fleetnas.controller.compress.make_variant`
(fp16: onnxconverter-common; int8: onnxruntime's static QDQ quantization with
per-channel weights; int8-dynamic: onnxruntime's dynamic quantization). The
calibration and evaluation nets of such a LUT are converted the same way, so
the calibration line maps P block sums onto P networks.

**Calibration of int8 (static).** A block's input is an inner activation
(``c_in`` channels at the block's resolution), not an image: a calibration
set (a dataset, an ``.npz``, a :class:`~fleetnas.controller.compress.Calibration`)
feeds only the models whose input it fits (a whole net, and a space's first
block, take the image), and every other model is calibrated on seeded random
normal data. Latency does not depend on the activation scales, only on the
graph, so the entries stand either way; the build (or the calibration run)
says how many models were calibrated on random data, once, with the
compress package's :class:`~fleetnas.controller.compress.RandomCalibrationWarning`.

**Blocks with nothing to convert.** A block with no op the converter changes
(a skip connection, a pooling block: onnxruntime's quantizer then refuses
with NotCompressible) runs as it is inside the converted net, so its entry
is the measurement of its fp32 model; the build lists those blocks
(:attr:`~._build.BuildReport.unconverted`). A whole net always has ops to
convert, so a net that cannot be converted is an error.

Each variant is recorded in the cost DB by its sha256 with its origin: the
space name and ``block:<key>@<precision>`` for a block
(:func:`~._store.block_variant_arch`), the space's network identity and
``<encoding>@<precision>`` for a net (what a search with precision genes
records for the same variant, so the two share the measurement cache when
their calibration is the same).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.lut._errors import PrecisionUnsupported
from fleetnas.controller.lut._store import DEFAULT_LUT_PRECISION, block_variant_arch
from fleetnas.controller.scheduler import ModelRef
from fleetnas.controller.spaces import GENE_SEPARATOR, Arch, Block, SearchSpace

if TYPE_CHECKING:
    from fleetnas.controller.compress import Calibration, CalibrationSource


def check_model_format(precision: str, model_format: int, device: str) -> None:
    """PrecisionUnsupported unless a ``precision`` LUT can be measured in ``model_format``."""
    if precision != DEFAULT_LUT_PRECISION and model_format != agent_pb2.MODEL_FORMAT_ONNX:
        raise PrecisionUnsupported(
            f"a {precision} LUT is made of ONNX variants of the blocks; {device}'s runtime "
            "takes another format (build it for an onnxruntime device, or build an fp32 LUT)"
        )


def _resolved_source(source: CalibrationSource) -> CalibrationSource:
    """A dataset spec loaded once (not once per model); other sources as they are."""
    from fleetnas.controller.accuracy import DatasetError, load_dataset
    from fleetnas.controller.compress import Calibration, CalibrationError

    if source is None or isinstance(source, Calibration) or not isinstance(source, (str, Path)):
        return source
    if Path(source).suffix == ".npz":
        if not Path(source).is_file():
            raise CalibrationError(f"{source}: no such file")
        return source
    try:
        return load_dataset(str(source))
    except DatasetError as exc:
        raise CalibrationError(f"calibration {str(source)!r}: {exc}") from exc


@dataclass
class PrecisionConverter:
    """Converts the fp32 models of one build (or calibration) to ``precision``; see the
    module docstring.

    ``calibration_data`` (int8 only) is the calibration set, ``None`` for random data;
    ``cache_dir`` (the export cache) keeps the variants under ``variants/``.
    ``models`` and ``random_models`` count what was converted and how many of
    those were calibrated on random data; ``unconverted`` lists the blocks that
    had nothing to convert (module docstring). Raises what ``make_variant`` raises
    (CompressError), the calibration set's CalibrationError only when it cannot be
    read at all.
    """

    db: CostDB
    precision: str
    calibration_data: CalibrationSource = None
    cache_dir: str | Path | None = None
    seed: int = 0
    models: int = 0
    random_models: int = 0
    unconverted: list[str] = field(default_factory=list)
    _source: Any = field(default=None, repr=False)
    _resolved: bool = field(default=False, repr=False)

    @property
    def converts(self) -> bool:
        """Whether models change at all (fp32: they are sent as exported)."""
        return self.precision != DEFAULT_LUT_PRECISION

    def block(self, space: SearchSpace, block: Block, fp32: ModelRef) -> ModelRef:
        """The ``precision`` variant of a block's fp32 model, recorded with its origin."""
        from fleetnas.controller.compress import NotCompressible

        if not self.converts:
            return fp32
        try:
            return self._convert(fp32, space.name,
                                 block_variant_arch(block.key, self.precision), None)
        except NotCompressible:
            self.unconverted.append(block.key)
            return fp32

    def arch(self, space: SearchSpace, arch: Arch, fp32: ModelRef) -> ModelRef:
        """The ``precision`` variant of a net's fp32 model, recorded with its origin."""
        if not self.converts:
            return fp32
        encoding = f"{space.encode(arch)}{GENE_SEPARATOR}{self.precision}"
        return self._convert(fp32, space.network_identity(), encoding,
                             (space.count_params(arch), space.count_flops(arch)))

    def warning(self, what: str) -> str | None:
        """The text of the random-calibration warning for ``what`` (e.g. ``"blocks"``), or
        None when no model was calibrated on random data."""
        if not self.random_models:
            return None
        why = ("no calibration set given" if self.calibration_data is None else
               "their inputs are inner activations the calibration set does not feed")
        return (f"int8 activations of {self.random_models} of {self.models} {what} are "
                f"calibrated on random normal data, not on your data ({why}); latency does "
                "not depend on the scales, so the figures stand, but these models' outputs "
                "are not the deployed model's")

    def warn(self, what: str) -> str | None:
        """Issue :meth:`warning` once as a RandomCalibrationWarning; returns its text."""
        from fleetnas.controller.compress import RandomCalibrationWarning

        text = self.warning(what)
        if text is not None:
            warnings.warn(text, RandomCalibrationWarning, stacklevel=3)
        return text

    def _calibration_for(self, data: bytes) -> tuple[Calibration | None, bool]:
        """The calibration of ``data`` (None where the precision takes none), and whether
        it is random data."""
        from fleetnas.controller.compress import (
            CONVERTERS,
            CalibrationError,
            calibration_for,
            parse_precision,
        )

        if not CONVERTERS[parse_precision(self.precision)].needs_calibration:
            return None, False
        if not self._resolved:
            self._source, self._resolved = _resolved_source(self.calibration_data), True
        if self._source is not None:
            try:
                return calibration_for(data, self._source, seed=self.seed), False
            except CalibrationError:
                pass  # it feeds another input (an image, not this inner activation)
        return calibration_for(data, None, seed=self.seed, warn=False), True

    def _convert(self, fp32: ModelRef, origin_space: str, origin_arch: str,
                 counts: tuple[int, int] | None) -> ModelRef:
        from fleetnas.controller.compress import make_variant

        data = fp32.data if fp32.data is not None else Path(str(fp32.path)).read_bytes()
        cache = None if self.cache_dir is None else Path(self.cache_dir) / "variants"
        calibration, random = self._calibration_for(data)
        variant = make_variant(data, self.precision, calibration=calibration, seed=self.seed,
                               cache_dir=cache)
        self.models += 1
        self.random_models += random
        params, flops = counts if counts is not None else (None, None)
        self.db.record_model(variant.sha256, len(variant.onnx_bytes), space=origin_space,
                             arch=origin_arch, params=params, flops=flops)
        return ModelRef(variant.sha256, len(variant.onnx_bytes), data=variant.onnx_bytes,
                        model_format=agent_pb2.MODEL_FORMAT_ONNX)
