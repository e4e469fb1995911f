"""Content-addressed on-disk model cache with a byte budget and LRU eviction.

Contract:
- A model is stored as ``<cache_dir>/<sha256>.model`` where ``sha256`` is the
  lowercase hex digest of its bytes, whatever its format (ONNX, TFLite, or
  bytes no runtime reads): the store never looks inside, and a name never
  says a format (``model_format`` detects it from the bytes). Names come
  from hashes only: nothing from the wire is ever used as a path. Files of
  older agents (``<sha256>.onnx``) are taken over under the new name.
- A model appears in the cache only after its bytes were fully received and
  verified against the declared hash (written to a temporary file, then
  renamed atomically), so a half-written file is never visible.
- When the cache would exceed its byte budget, least recently used models are
  evicted first. Uploads in progress count with the bytes they have received,
  reserved before each chunk is written, so partial files never push the
  folder past the budget either, and an upload that declares a large size but
  sends little evicts only what its bytes need (a declaration costs nothing).
  Pinned models (in use by a queued or running benchmark) are never evicted;
  if the budget can only be met by evicting pinned models, the cache runs over
  budget until they are unpinned.
- Thread-safe: every public method may be called from any gRPC handler thread.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleetnas.agent.errors import (
    ChecksumMismatch,
    InvalidUpload,
    ModelInvalid,
    ModelNotFound,
    ModelTooLarge,
)

_SHA256_RE = re.compile(r"[0-9a-f]{64}")  # used with fullmatch: no trailing newline slips by
_SUFFIX = ".model"
_LEGACY_SUFFIX = ".onnx"  # agents before TFLite named every model so


def validate_sha256(value: str) -> str:
    """Return ``value`` if it is a lowercase hex sha256, else raise InvalidUpload."""
    if not _SHA256_RE.fullmatch(value or ""):
        raise InvalidUpload(
            f"not a sha256: {value[:80]!r}; expected 64 lowercase hex characters"
        )
    return value


@dataclass(frozen=True)
class StoredModel:
    sha256: str
    path: Path
    size_bytes: int


class ModelStore:
    """See the module docstring for the contract."""

    def __init__(self, cache_dir: Path, *, budget_bytes: int, max_model_bytes: int) -> None:
        if budget_bytes < max_model_bytes:
            raise ValueError(
                f"cache budget ({budget_bytes} B) must be at least the model size cap "
                f"({max_model_bytes} B)"
            )
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.budget_bytes = budget_bytes
        self.max_model_bytes = max_model_bytes
        self._lock = threading.Lock()
        self._last_used: dict[str, float] = {}
        self._sizes: dict[str, int] = {}
        self._pins: dict[str, int] = {}
        self._inflight_bytes = 0  # bytes received so far by uploads in progress
        self._load_existing()

    # -- queries -----------------------------------------------------------
    def _path(self, sha256: str) -> Path:
        return self.cache_dir / f"{sha256}{_SUFFIX}"

    def _load_existing(self) -> None:
        for tmp in self.cache_dir.glob("*.partial"):
            tmp.unlink(missing_ok=True)  # left by a crash mid-upload
        for legacy in self.cache_dir.glob(f"*{_LEGACY_SUFFIX}"):
            if _SHA256_RE.fullmatch(legacy.name[: -len(_LEGACY_SUFFIX)]):
                os.replace(legacy, legacy.with_suffix(_SUFFIX))
        for path in self.cache_dir.glob(f"*{_SUFFIX}"):
            sha = path.name[: -len(_SUFFIX)]
            if not _SHA256_RE.fullmatch(sha):
                continue
            st = path.stat()
            self._sizes[sha] = st.st_size
            self._last_used[sha] = st.st_mtime

    def has(self, sha256: str) -> bool:
        with self._lock:
            return sha256 in self._sizes

    def partition(self, hashes: Iterable[str]) -> tuple[list[str], list[str]]:
        """Split hashes into (present, missing), keeping their order."""
        present: list[str] = []
        missing: list[str] = []
        with self._lock:
            for sha in hashes:
                (present if sha in self._sizes else missing).append(sha)
        return present, missing

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._sizes)

    # -- use ---------------------------------------------------------------
    @contextmanager
    def pinned(self, sha256: str) -> Iterator[StoredModel]:
        """Pin a cached model for the duration of the block (no eviction).

        Raises ModelNotFound when the model is not cached.
        """
        with self._lock:
            if sha256 not in self._sizes:
                raise ModelNotFound(
                    f"model {sha256} is not on this agent; upload it first (UploadModel)"
                )
            self._pins[sha256] = self._pins.get(sha256, 0) + 1
            self._touch(sha256)
            stored = StoredModel(sha256, self._path(sha256), self._sizes[sha256])
        try:
            yield stored
        finally:
            with self._lock:
                self._pins[sha256] -= 1
                if not self._pins[sha256]:
                    del self._pins[sha256]
                self._evict_locked()

    def _touch(self, sha256: str) -> None:
        now = time.time()
        self._last_used[sha256] = now
        try:
            os.utime(self._path(sha256), (now, now))  # LRU order survives restarts
        except OSError:
            pass

    # -- writes ------------------------------------------------------------
    def check_declared_size(self, total_bytes: int) -> None:
        """Reject an upload early when its declared size is over the cap or zero."""
        if total_bytes > self.max_model_bytes:
            raise ModelTooLarge(
                f"model is {total_bytes} bytes; this agent accepts at most "
                f"{self.max_model_bytes} bytes (agent flag --max-model-mb)"
            )
        if total_bytes == 0:
            raise ModelInvalid("model is empty (0 bytes)")

    def put_stream(self, sha256: str, total_bytes: int, chunks: Iterable[bytes]) -> StoredModel:
        """Receive a model from ``chunks``, verify size and hash, and cache it.

        The caller has already validated ``sha256`` syntax. Size is enforced
        while streaming, so a client that lies about ``total_bytes`` cannot
        write more than the cap. On any error nothing is cached.
        """
        validate_sha256(sha256)
        self.check_declared_size(total_bytes)
        tmp = self.cache_dir / f"{sha256}.{threading.get_ident()}.{time.monotonic_ns()}.partial"
        digest = hashlib.sha256()
        received = 0
        try:
            with open(tmp, "wb") as fh:
                for chunk in chunks:
                    if received + len(chunk) > total_bytes:
                        raise InvalidUpload(
                            f"upload sent more than the declared {total_bytes} bytes"
                        )
                    with self._lock:  # room before the bytes land: partial files count too
                        self._inflight_bytes += len(chunk)
                        received += len(chunk)
                        self._evict_locked()
                    digest.update(chunk)
                    fh.write(chunk)
            if received != total_bytes:
                raise InvalidUpload(
                    f"upload ended after {received} of the declared {total_bytes} bytes"
                )
            actual = digest.hexdigest()
            if actual != sha256:
                raise ChecksumMismatch(
                    f"sha256 mismatch: declared {sha256}, received bytes hash to {actual}"
                )
            final = self._path(sha256)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            with self._lock:
                self._inflight_bytes -= received
        with self._lock:
            self._sizes[sha256] = received
            self._touch(sha256)
            self._evict_locked(keep=sha256)
        return StoredModel(sha256, final, received)

    def _evict_locked(self, keep: str | None = None) -> None:
        total = sum(self._sizes.values()) + self._inflight_bytes
        if total <= self.budget_bytes:
            return
        for sha in sorted(self._sizes, key=lambda s: self._last_used.get(s, 0.0)):
            if total <= self.budget_bytes:
                break
            if sha == keep or sha in self._pins:
                continue
            self._path(sha).unlink(missing_ok=True)
            total -= self._sizes.pop(sha)
            self._last_used.pop(sha, None)
