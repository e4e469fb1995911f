"""The JSON manifest beside a stored supernet's checkpoint.

``manifest.json`` says what the checkpoint is (key, space, supernet class,
dataset, training config), how far training got (``epochs_done`` of
``epochs``, seconds per epoch) and, once training is complete, the
validation accuracy of the largest and smallest subnets with the evaluation
settings that produced them. It is rewritten atomically after every epoch,
after the checkpoint, so it never claims more than the checkpoint holds.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fleetnas.controller.accuracy.supernet._errors import SupernetError
from fleetnas.controller.atomic_files import write_text_atomic

MANIFEST_FORMAT = 1


def utc_now() -> str:
    """The current time as ISO 8601 UTC with seconds, e.g. ``2026-12-01T10:00:00Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Manifest:
    """What one stored supernet is and how far its training got (see module doc).

    ``space_name`` and ``space_config`` rebuild the space with
    :func:`~fleetnas.controller.spaces.get_space`; ``space`` is its identity.
    ``dataset`` holds ``name``, ``hash``, ``num_classes``, ``train``, ``val``
    (split sizes) and ``image_shape``. ``accuracy`` maps ``"largest"`` and
    ``"smallest"`` to validation top-1, None until training completes;
    ``eval_seconds`` is the mean wall time of scoring one of them.
    """

    key: str
    kind: str
    supernet_version: int
    space: str
    space_name: str
    space_config: dict[str, Any]
    space_version: int
    dataset: dict[str, Any]
    config: dict[str, Any]
    epochs: int
    epochs_done: int = 0
    epoch_seconds: list[float] = field(default_factory=list)
    accuracy: dict[str, float] | None = None
    eval_config: dict[str, Any] | None = None
    eval_seconds: float | None = None
    torch_version: str = ""
    created: str = ""
    updated: str = ""

    @property
    def complete(self) -> bool:
        """Every epoch trained and the largest/smallest subnets scored."""
        return self.epochs_done >= self.epochs and self.accuracy is not None

    @property
    def train_seconds(self) -> float:
        return float(sum(self.epoch_seconds))

    def to_dict(self) -> dict[str, Any]:
        return {"format": MANIFEST_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        if data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"manifest format {data.get('format')!r}, expected {MANIFEST_FORMAT}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def write(self, path: Path) -> None:
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """The manifest at ``path``; SupernetError when it is unreadable."""
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise SupernetError(
                f"{path}: unreadable supernet manifest ({exc}); delete its folder to retrain"
            ) from exc
