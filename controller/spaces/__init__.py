"""Search spaces: archs, their encodings, their torch networks and their LUT blocks.

:class:`SearchSpace` is the contract (see ``_base.py``); :func:`get_space`
finds a space by name, built-in (``nb201``, ``mbv3``) or registered by a user
package in the entry-point group ``fleetnas.spaces``. See ``docs/spaces.md``.
Importing this package does not import torch.
"""

from __future__ import annotations

from fleetnas.controller.spaces._base import (
    Arch,
    Block,
    SearchSpace,
    UnknownArch,
    UnknownBlock,
)
from fleetnas.controller.spaces._mbv3 import MBv3Arch, MobileNetV3Space
from fleetnas.controller.spaces._nb201 import NB201Arch, NB201Space
from fleetnas.controller.spaces._precision import (
    GENE_SEPARATOR,
    PrecisionArch,
    PrecisionSpace,
    split_precision_genes,
)
from fleetnas.controller.spaces._registry import (
    BUILTIN_SPACES,
    ENTRY_POINT_GROUP,
    SpacePluginError,
    UnknownSpace,
    available_spaces,
    get_space,
    installed_entry_points,
    load_space,
)

__all__ = [
    "BUILTIN_SPACES",
    "ENTRY_POINT_GROUP",
    "GENE_SEPARATOR",
    "Arch",
    "Block",
    "MBv3Arch",
    "MobileNetV3Space",
    "NB201Arch",
    "NB201Space",
    "PrecisionArch",
    "PrecisionSpace",
    "SearchSpace",
    "SpacePluginError",
    "UnknownArch",
    "UnknownBlock",
    "UnknownSpace",
    "available_spaces",
    "get_space",
    "installed_entry_points",
    "load_space",
    "split_precision_genes",
]
