"""Accuracy as deployed: a model of any precision run by onnxruntime on a Dataset's validation split.

The model's single image input gets the validation images preprocessed by
:class:`DatasetInputs` (adapted and standardised as the estimators train
on); its first output's first ``num_classes`` values are the logits; top-1
is the share of samples whose arg-max is the label. The session is
onnxruntime's CPU provider with graph optimisation ALL (the agent's
default), one intra-op thread unless told, so results do not depend on the
machine's load. Inputs are fed in batches of the model's batch dimension
when it is fixed (a batch-1 export runs sample by sample), else ``batch_size``.

:func:`accuracy_drop` evaluates a float32 model and a variant on the same
samples and reports the drop (fp32 top-1 minus variant top-1: positive when
the variant is worse), how often their top-1 agree, and the largest absolute
difference between their logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fleetnas.controller.accuracy import Dataset
from fleetnas.controller.compress._detect import precision_of
from fleetnas.controller.compress._errors import EvaluationError
from fleetnas.controller.compress._graph import input_specs, load_model
from fleetnas.controller.compress._inputs import DatasetInputs
from fleetnas.controller.compress._precision import Precision

DEFAULT_BATCH_SIZE = 64


@dataclass(frozen=True)
class DeployedAccuracy:
    """Top-1 of one model on ``samples`` validation samples, and its detected precision."""

    top1: float
    samples: int
    precision: Precision


@dataclass(frozen=True)
class AccuracyDrop:
    """A variant against its float32 original on the same samples (see the module docstring)."""

    fp32: DeployedAccuracy
    variant: DeployedAccuracy
    top1_agreement: float
    max_abs_logit_diff: float

    @property
    def drop(self) -> float:
        """fp32 top-1 minus the variant's, in [−1, 1]: positive when the variant is worse."""
        return self.fp32.top1 - self.variant.top1


def _session(data: bytes, threads: int) -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(bytes(data), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's Fail / InvalidGraph / RuntimeException
        raise EvaluationError(f"onnxruntime cannot load the model: {exc}") from exc


def _validation_index(dataset: Dataset, max_samples: int | None, seed: int) -> np.ndarray:
    n = len(dataset.y_val)
    if max_samples is None or max_samples >= n:
        return np.arange(n)
    if max_samples < 1:
        raise ValueError(f"max_samples={max_samples!r}, expected a positive int or None")
    return np.sort(np.random.default_rng(seed).permutation(n)[:max_samples])


def model_logits(
    data: bytes,
    dataset: Dataset,
    *,
    max_samples: int | None = None,
    seed: int = 0,
    threads: int = 1,
    standardize: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[np.ndarray, np.ndarray, Precision]:
    """``(logits (N, num_classes) float32, labels (N,), detected precision)`` on the validation split."""
    model = load_model(data, check=False)
    specs = input_specs(model)
    if len(specs) != 1:
        raise EvaluationError(
            f"the model takes {len(specs)} inputs {[s.name for s in specs]}; "
            "evaluating on a dataset needs exactly one image input"
        )
    spec = specs[0]
    prepared = DatasetInputs.for_input(dataset, spec, standardize=standardize)
    index = _validation_index(dataset, max_samples, seed)
    images = prepared.images("val", index).astype(spec.dtype)
    first = spec.dims[0]
    step = first if isinstance(first, int) and first > 0 else batch_size
    session = _session(data, threads)
    classes = dataset.num_classes
    chunks: list[np.ndarray] = []
    for start in range(0, len(images), step):
        batch = images[start : start + step]
        real = len(batch)
        if real < step and isinstance(first, int) and first > 0:  # pad a fixed batch dim
            batch = np.concatenate([batch, np.zeros((step - real, *batch.shape[1:]), batch.dtype)])
        try:
            out = session.run(None, {spec.name: batch})[0]  # type: ignore[attr-defined]
        except Exception as exc:  # onnxruntime's RuntimeException and friends
            raise EvaluationError(f"onnxruntime failed to run the model: {exc}") from exc
        logits = np.asarray(out, dtype=np.float32).reshape(len(batch), -1)[:real]
        if logits.shape[1] < classes:
            raise EvaluationError(
                f"the model outputs {logits.shape[1]} values per sample; the dataset "
                f"{dataset.name!r} has {classes} classes"
            )
        chunks.append(logits[:, :classes])
    return np.concatenate(chunks), prepared.labels("val", index), precision_of(model).precision


def evaluate_onnx(data: bytes, dataset: Dataset, **options: object) -> DeployedAccuracy:
    """Top-1 of the ONNX model ``data`` on ``dataset``'s validation split (options of :func:`model_logits`)."""
    logits, labels, precision = model_logits(data, dataset, **options)  # type: ignore[arg-type]
    return DeployedAccuracy(
        float(np.mean(logits.argmax(axis=1) == labels)), len(labels), precision
    )


def accuracy_drop(
    fp32_bytes: bytes, variant_bytes: bytes, dataset: Dataset, **options: object
) -> AccuracyDrop:
    """The variant's accuracy against its float32 original's on the same validation samples."""
    ref, labels, ref_precision = model_logits(fp32_bytes, dataset, **options)  # type: ignore[arg-type]
    var, _, var_precision = model_logits(variant_bytes, dataset, **options)  # type: ignore[arg-type]
    ref_top, var_top = ref.argmax(axis=1), var.argmax(axis=1)
    n = len(labels)
    return AccuracyDrop(
        fp32=DeployedAccuracy(float(np.mean(ref_top == labels)), n, ref_precision),
        variant=DeployedAccuracy(float(np.mean(var_top == labels)), n, var_precision),
        top1_agreement=float(np.mean(ref_top == var_top)),
        max_abs_logit_diff=float(np.max(np.abs(ref - var))),
    )
