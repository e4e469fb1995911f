"""Precision as a per-target gene: the search's space wrapper and the models it deploys.

A search whose config allows a precision other than fp32 on some target
(:meth:`SearchConfig.precision_genes`) searches a
:class:`~fleetnas.controller.spaces.PrecisionSpace`: each candidate is an
arch plus one precision per target. :func:`search_space` wraps the space the
same way for a new and a resumed search, so stored candidates decode again.

What a target is sent (:class:`DeployedModels`): the arch exported to ONNX
(fp32, as without genes), then, for a target whose gene is not fp32, the
variant made by :func:`fleetnas.controller.compress.make_variant` from those
bytes, calibrated on the config's ``calibration``, else on the dataset of a
``train:DATA`` or ``supernet:DATA`` accuracy estimator, else on random data (a
RandomCalibrationWarning, issued once per search run). The variant is
recorded in the cost DB like any model: by its sha256, with the space's
network identity and the arch ``ENCODING@PRECISION`` as its origin. That
origin is no encoding of the space, so fp32-only readers of the DB (LUT
evaluation, transfer predictors) leave it out; caching works by content hash
as for every model.

Accuracy: a ``train:DATA`` or ``supernet:DATA`` estimator's candidates are
scored as each target deploys them (:mod:`._deployed_accuracy`, with this
module's variants); other estimators score the fp32 network, and a
candidate deployed below fp32 has an unknown accuracy (:mod:`._unknown`;
:func:`accuracy_note` says which wherever the front is shown).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver._accuracy import accuracy_label, deployed_data, sees_precision
from fleetnas.controller.driver._config import DEFAULT_PRECISIONS, SearchConfig
from fleetnas.controller.scheduler import ModelRef
from fleetnas.controller.search import parse_constraint
from fleetnas.controller.spaces import GENE_SEPARATOR, PrecisionSpace, SearchSpace


def search_space(space: SearchSpace, config: SearchConfig) -> SearchSpace:
    """``space`` with the config's precision genes (itself when there are none, or when it
    is already wrapped)."""
    genes = config.precision_genes()
    if not genes or isinstance(space, PrecisionSpace):
        return space
    return PrecisionSpace(space, genes)


#: the note of a search whose candidates are scored as each target deploys them
DEPLOYED_NOTE = "accuracy: held-out accuracy of each target's deployed model (worst target)"
#: what the note of a precision-blind search says of a member deployed below fp32
UNKNOWN_NOTE = ("unknown for a member with a precision other than fp32, ranked as the worst "
                "(such a member is on the front only for its other objectives); use --accuracy "
                "train:DATA or supernet:DATA to compare precisions")


def accuracy_note(config: SearchConfig) -> str | None:
    """What the front's accuracy means when candidates carry precision genes (None without):
    with an estimator that sees precision each target's deployed model is evaluated
    (:data:`DEPLOYED_NOTE`); any other scores the fp32 network, and the accuracy of a
    member deployed below fp32 is unknown (:data:`UNKNOWN_NOTE`)."""
    used = [o.name for o in config.objective_list()]
    used += [parse_constraint(c).name for c in config.constraints]
    if not config.precision_genes() or config.accuracy is None or "accuracy" not in used:
        return None
    if sees_precision(config.accuracy):  # scored as deployed (_deployed_accuracy)
        return DEPLOYED_NOTE
    return f"accuracy: {accuracy_label(config.accuracy)} of the fp32 network; {UNKNOWN_NOTE}"


def calibration_source(config: SearchConfig) -> str | None:
    """``--calibration``, else the DATA of an estimator that sees precision (``train:DATA``,
    ``supernet:DATA``), else None (random)."""
    if config.calibration is not None:
        return config.calibration
    return deployed_data(config.accuracy) if config.accuracy else None


def variant_arch(encoding: str, precision: str) -> str:
    """The ``models.arch`` origin of a precision variant of the arch ``encoding``."""
    return f"{encoding}{GENE_SEPARATOR}{precision}"


@dataclass
class DeployedModels:
    """Makes and records the precision variants a search sends (module docstring).

    ``cache_dir`` (the export cache) also keeps the variants, under
    ``variants/``. Without a ``db`` (``None``) variants are made but not
    recorded: the trained networks whose deployed accuracy is evaluated
    (:mod:`._deployed_accuracy`) are never measured. Variants made in this object's life are kept by
    (source sha256, precision), so a candidate sent to two targets at int8 is
    quantized once. ``on_warning`` receives the random-calibration warning's
    text, once (default: :func:`warnings.warn` it as a RandomCalibrationWarning).
    """

    db: CostDB | None
    calibration: str | None = None
    cache_dir: str | Path | None = None
    on_warning: Callable[[str], None] | None = None
    _made: dict[tuple[str, str], ModelRef] = field(default_factory=dict)
    _warned: bool = False

    def ref(self, fp32: ModelRef, precision: str, *, space: SearchSpace, arch: Any) -> ModelRef:
        """The model to send for ``precision``: ``fp32`` itself, or its recorded variant.

        Raises what ``make_variant`` raises (CompressError: not the candidate's
        fault when it is a CalibrationError).
        """
        if precision in DEFAULT_PRECISIONS:
            return fp32
        key = (fp32.sha256, precision)
        if key not in self._made:
            self._made[key] = self._make(fp32, precision, space, arch)
        return self._made[key]

    def forget(self) -> None:
        """Drop the variants kept in memory (they stay in the cache directory, if any)."""
        self._made.clear()

    def _make(self, fp32: ModelRef, precision: str, space: SearchSpace, arch: Any) -> ModelRef:
        from fleetnas.controller.compress import RandomCalibrationWarning, make_variant

        if fp32.model_format != agent_pb2.MODEL_FORMAT_ONNX:
            raise ValueError(f"precision {precision} is made from an ONNX model; this target "
                             "takes another format (use an onnxruntime target)")
        data = fp32.data if fp32.data is not None else Path(str(fp32.path)).read_bytes()
        cache = None if self.cache_dir is None else Path(self.cache_dir) / "variants"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RandomCalibrationWarning)
            variant = make_variant(data, precision, calibration=self.calibration,
                                   cache_dir=cache)
        for w in caught:
            if issubclass(w.category, RandomCalibrationWarning):
                if not self._warned:
                    self._warned = True
                    if self.on_warning is not None:
                        self.on_warning(str(w.message))
                    else:
                        warnings.warn(str(w.message), RandomCalibrationWarning, stacklevel=2)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if self.db is not None:
            self.db.record_model(
                variant.sha256, len(variant.onnx_bytes), space=space.network_identity(),
                arch=variant_arch(space.encode(arch), precision),
                params=space.count_params(arch), flops=space.count_flops(arch),
            )  # fmt: skip
        return ModelRef(variant.sha256, len(variant.onnx_bytes), data=variant.onnx_bytes,
                        model_format=agent_pb2.MODEL_FORMAT_ONNX)
