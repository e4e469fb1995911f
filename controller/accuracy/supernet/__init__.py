"""Weight-sharing supernets: train once on a dataset, then score any subnet in seconds.

A supernet holds every arch of a search space on shared weights
(NAS-Bench-201: every op on every edge; mbv3: elastic kernel, expand ratio,
depth and resolution). It is trained once (uniform single-path sampling, or
the sandwich rule with optional in-place distillation and progressive
shrinking), checkpointed every epoch and resumable, and stored by (space,
dataset hash, training config). A subnet is scored by inheriting its
weights, recalibrating batch norm on a few training batches and measuring
top-1 on the validation split; it can also be materialised as the
stand-alone ``space.build(arch)`` module with those weights::

    from fleetnas.controller.accuracy import load_digits
    from fleetnas.controller.accuracy.supernet import SupernetEstimator, TrainConfig
    from fleetnas.controller.spaces import NB201Space

    space = NB201Space(channels=8, cells_per_stage=1)
    estimator = SupernetEstimator.from_store(
        "supernets", space, load_digits(), TrainConfig(epochs=10), progress=print
    )
    accuracy = estimator.as_objective(space)   # for the search engine

Importing this package imports torch. See ``docs/supernet.md``.
"""

from __future__ import annotations

from fleetnas.controller.accuracy.supernet._base import Supernet
from fleetnas.controller.accuracy.supernet._config import EvalConfig, TrainConfig
from fleetnas.controller.accuracy.supernet._elastic import ElasticBatchNorm2d, ElasticMBConv
from fleetnas.controller.accuracy.supernet._errors import SupernetError, SupernetNotFound
from fleetnas.controller.accuracy.supernet._estimator import (
    SubnetScore,
    SupernetEstimator,
    evaluate_archs,
)
from fleetnas.controller.accuracy.supernet._eval import (
    materialised_subnet,
    preserved_bn_stats,
    recalibrate_bn,
    subnet_accuracy,
)
from fleetnas.controller.accuracy.supernet._inputs import PreparedData, dataset_hash
from fleetnas.controller.accuracy.supernet._manifest import Manifest
from fleetnas.controller.accuracy.supernet._mbv3 import Choices, MBv3Supernet
from fleetnas.controller.accuracy.supernet._nb201 import NB201Supernet
from fleetnas.controller.accuracy.supernet._rank import RankCorrelation, rank_correlation
from fleetnas.controller.accuracy.supernet._registry import (
    SUPERNETS,
    build_supernet,
    resolved,
    supernet_class,
    supernet_key,
)
from fleetnas.controller.accuracy.supernet._sampling import (
    SAMPLING_RULES,
    ProgressiveRule,
    SamplingRule,
    SandwichRule,
    UniformRule,
    make_rule,
)
from fleetnas.controller.accuracy.supernet._store import SupernetStore, TrainedSupernet
from fleetnas.controller.accuracy.supernet._stored import (
    StoredSupernetEstimator,
    SupernetTraining,
    store_root,
    stored_subnet_estimator,
)
from fleetnas.controller.accuracy.supernet._train import (
    ProgressCallback,
    SupernetProgress,
    TrainOutcome,
    train,
)

__all__ = [
    "SAMPLING_RULES",
    "SUPERNETS",
    "Choices",
    "ElasticBatchNorm2d",
    "ElasticMBConv",
    "EvalConfig",
    "MBv3Supernet",
    "Manifest",
    "NB201Supernet",
    "PreparedData",
    "ProgressCallback",
    "ProgressiveRule",
    "RankCorrelation",
    "SamplingRule",
    "SandwichRule",
    "StoredSupernetEstimator",
    "SubnetScore",
    "Supernet",
    "SupernetError",
    "SupernetEstimator",
    "SupernetNotFound",
    "SupernetProgress",
    "SupernetStore",
    "SupernetTraining",
    "TrainConfig",
    "TrainOutcome",
    "TrainedSupernet",
    "UniformRule",
    "build_supernet",
    "dataset_hash",
    "evaluate_archs",
    "make_rule",
    "materialised_subnet",
    "preserved_bn_stats",
    "rank_correlation",
    "recalibrate_bn",
    "resolved",
    "subnet_accuracy",
    "supernet_class",
    "store_root",
    "stored_subnet_estimator",
    "supernet_key",
    "train",
]
