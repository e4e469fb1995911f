"""Which supernet serves which space, how one is built from a config, and the store key.

:data:`SUPERNETS` is the one list of supported spaces. :func:`supernet_key`
is the one derivation of a stored supernet's identity.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import torch

from fleetnas.controller.accuracy.supernet._base import Supernet
from fleetnas.controller.accuracy.supernet._config import TrainConfig
from fleetnas.controller.accuracy.supernet._errors import SupernetError
from fleetnas.controller.accuracy.supernet._mbv3 import MBv3Supernet
from fleetnas.controller.accuracy.supernet._nb201 import NB201Supernet
from fleetnas.controller.spaces import MobileNetV3Space, NB201Space, SearchSpace

#: space class -> its supernet class
SUPERNETS: dict[type[SearchSpace], type[Supernet]] = {
    NB201Space: NB201Supernet,
    MobileNetV3Space: MBv3Supernet,
}

KEY_LENGTH = 16


def supernet_class(space: SearchSpace) -> type[Supernet]:
    """The supernet class of ``space``; SupernetError naming the supported spaces otherwise."""
    for space_type, cls in SUPERNETS.items():
        if isinstance(space, space_type):
            return cls
    known = ", ".join(sorted(cls.kind for cls in SUPERNETS.values()))
    raise SupernetError(f"no supernet for space {space.identity()!r}; supernets exist for: {known}")


def resolved(config: TrainConfig, space: SearchSpace) -> TrainConfig:
    """``config`` with ``sampling`` set to the supernet's default when it is None."""
    if config.sampling is not None:
        return config
    return dataclasses.replace(config, sampling=supernet_class(space).default_sampling)


def build_supernet(space: SearchSpace, num_classes: int, config: TrainConfig) -> Supernet:
    """A freshly initialised supernet for ``space``, weights seeded by ``config.seed``.

    The caller's torch RNG is left untouched.
    """
    cls = supernet_class(space)
    options = {}
    if config.kernel_transform:
        if cls is not MBv3Supernet:
            raise SupernetError(
                f"kernel_transform applies to mbv3's elastic kernels, not to {cls.kind}"
            )
        options["kernel_transform"] = True
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return cls(space, num_classes, **options)  # type: ignore[call-arg]


def supernet_key(space: SearchSpace, data_hash: str, config: TrainConfig) -> str:
    """The identity of a trained supernet: ``<space name>-<16 hex digits>``.

    Hashes the space's identity and version, the supernet class's kind and
    version (its ``key_version(space)``), the dataset hash
    (:func:`dataset_hash`) and the full training config with its sampling
    rule resolved; anything else (evaluation settings, timings) is not part
    of it.
    """
    cls = supernet_class(space)
    payload = {
        "space": space.identity(),
        "space_version": space.version,
        "supernet": cls.kind,
        "supernet_version": cls.key_version(space),
        "dataset": data_hash,
        "config": resolved(config, space).to_dict(),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return f"{space.name}-{hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]}"
