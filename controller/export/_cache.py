"""An on-disk cache of exported models, one file per export key.

The key is the sha256 of a canonical JSON description of the export (space
identity and version, arch encoding or block key, the converter and its
settings and version, torch version), so anything that could change the
bytes changes the file name. Each entry is ``<key><suffix>`` (``.onnx``,
``.tflite``) plus ``<key>.json`` (the description and the input shape). Files
are written to a temporary name and renamed into place, the JSON first, so a
reader that finds the model finds a whole entry, and concurrent writers of
the same key are harmless.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fleetnas.controller.atomic_files import write_bytes_atomic


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/fleetnas/onnx``, else ``~/.cache/fleetnas/onnx`` (every format)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fleetnas" / "onnx"


def cache_key(description: Mapping[str, Any]) -> str:
    """The file stem for one export description."""
    text = json.dumps(description, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class ModelCache:
    """Model files of one format (``suffix``) and their JSON metadata under one directory."""

    def __init__(self, directory: Path, suffix: str = ".onnx") -> None:
        self.directory = Path(directory)
        self.suffix = suffix

    def path(self, key: str) -> Path:
        return self.directory / f"{key}{self.suffix}"

    def get(self, key: str) -> tuple[bytes, dict[str, Any]] | None:
        """``(model bytes, metadata)``, or None when the entry is absent or unreadable."""
        try:
            meta = json.loads((self.directory / f"{key}.json").read_text())
            data = self.path(key).read_bytes()
        except (OSError, ValueError):
            return None
        if not data or not isinstance(meta, dict):
            return None
        return data, meta

    def put(self, key: str, data: bytes, meta: Mapping[str, Any]) -> Path:
        """Store one entry atomically; returns the model file's path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.directory / f"{key}.json", json.dumps(meta, sort_keys=True).encode())
        write_bytes_atomic(self.path(key), data)
        return self.path(key)
