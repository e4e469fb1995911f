"""Accuracy of a candidate as each target deploys it: the scored network, compressed, evaluated.

Applies to a search whose candidates carry precision genes and whose
accuracy estimator can hand over the network it scores (a
:class:`~fleetnas.controller.accuracy.DeployableEstimator`: ``train:DATA``
trains it, ``supernet:DATA`` materialises the subnet with inherited weights
and recalibrated batch norm); :func:`deployed_accuracy_for` gives ``None``
otherwise (proxies, tables and ``plugin:MODULE:FUNCTION`` return a number:
they score the fp32 network, and a candidate deployed below fp32 gets an
unknown accuracy, :mod:`._unknown`).

For one candidate (:meth:`DeployedScorer.values`): the network is made
as the estimator scores it (:meth:`DeployableEstimator.deployable`, for the
wrapped space's arch), exported to ONNX with its weights (the
fp32 model), and each distinct precision the candidate's genes ask for is
made from those bytes by :class:`~._deploy.DeployedModels`, the measurement
side's path and calibration (not recorded in the cost DB: these models are
never measured). Each model is evaluated with
:func:`fleetnas.controller.compress.evaluate_onnx` on the estimator's
dataset's validation split (``max_val_samples`` of them, chosen by the
estimator's seed). The values, per target ``KEY``:

- ``accuracy[KEY]``: top-1 of the model ``KEY`` is sent at its precision;
- ``accuracy_drop[KEY]``: the fp32 ONNX model's top-1 minus that (positive
  when the variant is worse; 0 for an fp32 target);
- ``accuracy``: the lowest ``accuracy[KEY]``: a net is only as good as its
  worst deployment.

Each per-target value's source is ``deployed:SHA256`` (the sha256 of the
evaluated model, kept in the variant cache under ``variants/`` of the export
cache, or for fp32 the weighted export itself, which is not kept).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.driver._config import SearchConfig
from fleetnas.controller.driver._deploy import DeployedModels, calibration_source
from fleetnas.controller.scheduler import ModelRef
from fleetnas.controller.spaces import PrecisionSpace, SearchSpace

if TYPE_CHECKING:
    from fleetnas.controller.accuracy import AccuracyEstimator, DeployableEstimator

ACCURACY = "accuracy"
#: the source of a per-target value: this prefix and the evaluated model's sha256
DEPLOYED_SOURCE = "deployed:"


def accuracy_key(key: str) -> str:
    """The value name of target ``key``'s deployed accuracy."""
    return f"{ACCURACY}[{key}]"


def drop_key(key: str) -> str:
    """The value name of target ``key``'s drop against the fp32 model."""
    return f"accuracy_drop[{key}]"


#: weighted exports kept by a scorer, most recent first out (members differing only in
#: precision are trained, or materialised, once)
KEEP_TRAINED = 16


@dataclass
class DeployedScorer:
    """Scores candidates of a :class:`PrecisionSpace` as deployed (module docstring).

    Keeps the last :data:`KEEP_TRAINED` weighted exports by the wrapped arch's
    encoding and every score by (model sha256, precision), so candidates that
    differ only in precision are trained (or materialised) once and a model is
    evaluated once (the estimator is deterministic, so this changes no value).
    Not thread-safe.
    """

    estimator: DeployableEstimator
    deployed: DeployedModels
    _trained: OrderedDict[str, ModelRef] = field(default_factory=OrderedDict)
    _scores: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)

    def values(self, space: SearchSpace, arch: Any) -> tuple[dict[str, float], dict[str, str]]:
        """``(values, sources)`` of ``arch``: ``accuracy`` and each target's two values.

        Raises EstimatorError (training, a supernet), ExportError, and what
        :meth:`DeployedModels.ref` raises (CompressError).
        """
        from fleetnas.controller.compress import evaluate_onnx

        assert isinstance(space, PrecisionSpace)
        genes = space.genes_of(arch)
        fp32 = self._export(space, arch)
        options: dict[str, Any] = {"max_samples": self.estimator.max_val_samples,
                                   "seed": self.estimator.seed}
        scored: dict[str, tuple[float, str]] = {}
        for precision in dict.fromkeys(["fp32", *genes.values()]):
            if (fp32.sha256, precision) not in self._scores:
                ref = self.deployed.ref(fp32, precision, space=space.base, arch=arch.arch)
                assert ref.data is not None
                result = evaluate_onnx(ref.data, self.estimator.dataset, **options)
                self._scores[fp32.sha256, precision] = (result.top1, ref.sha256)
            scored[precision] = self._scores[fp32.sha256, precision]
        self.deployed.forget()  # the scores are kept; a search's variants would fill memory
        reference = scored["fp32"][0]
        values: dict[str, float] = {}
        sources: dict[str, str] = {}
        for key, precision in genes.items():
            top1, sha = scored[precision]
            values[accuracy_key(key)] = top1
            values[drop_key(key)] = reference - top1
            sources[accuracy_key(key)] = sources[drop_key(key)] = DEPLOYED_SOURCE + sha
        values[ACCURACY] = min(values[accuracy_key(k)] for k in genes)
        return values, sources

    def _export(self, space: PrecisionSpace, arch: Any) -> ModelRef:
        """The estimator's network of ``arch`` as an fp32 ONNX model (kept, see the class)."""
        from fleetnas.controller.export import OPSET, module_to_onnx

        key = space.base.encode(arch.arch)
        if key in self._trained:
            self._trained.move_to_end(key)
            return self._trained[key]
        module = self.estimator.deployable(space.base, arch.arch)
        data = module_to_onnx(module, tuple(space.input_shape(arch)), OPSET)
        ref = ModelRef(hashlib.sha256(data).hexdigest(), len(data), data=data,
                       model_format=agent_pb2.MODEL_FORMAT_ONNX)
        self._trained[key] = ref
        while len(self._trained) > KEEP_TRAINED:
            self._trained.popitem(last=False)
        return ref


def deployed_accuracy_for(config: SearchConfig, estimator: AccuracyEstimator | None, *,
                          cache_dir: str | Path | None = None) -> DeployedScorer | None:
    """The deployed-accuracy scorer of a search: with precision genes and a
    :class:`DeployableEstimator`, else ``None``. Variants are calibrated as the
    measurement side's."""
    if not config.precision_genes() or estimator is None:
        return None
    from fleetnas.controller.accuracy import DeployableEstimator

    if not isinstance(estimator, DeployableEstimator):
        return None
    return DeployedScorer(estimator, DeployedModels(None, calibration_source(config),
                                                      cache_dir))
