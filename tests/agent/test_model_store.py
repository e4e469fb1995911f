"""ModelStore on real files: content addressing, verification, LRU budget, pins."""

from __future__ import annotations

import hashlib
import os

import pytest

from fleetnas.agent.errors import (
    ChecksumMismatch,
    InvalidUpload,
    ModelInvalid,
    ModelNotFound,
    ModelTooLarge,
)
from fleetnas.agent.model_store import ModelStore


def _put(store: ModelStore, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    store.put_stream(sha, len(data), [data[i : i + 100] for i in range(0, len(data), 100)])
    return sha


def test_put_names_file_by_hash_and_survives_restart(tmp_path):
    store = ModelStore(tmp_path, budget_bytes=10_000, max_model_bytes=1_000)
    sha = _put(store, b"a" * 500)
    assert (tmp_path / f"{sha}.model").read_bytes() == b"a" * 500
    assert [p.name for p in tmp_path.iterdir()] == [f"{sha}.model"]
    reopened = ModelStore(tmp_path, budget_bytes=10_000, max_model_bytes=1_000)
    assert reopened.has(sha) and reopened.total_bytes == 500


def test_lru_eviction_keeps_recently_used_and_pinned(tmp_path):
    store = ModelStore(tmp_path, budget_bytes=2_500, max_model_bytes=1_000)
    a = _put(store, os.urandom(1000))
    b = _put(store, os.urandom(1000))
    with store.pinned(a):  # a is now most recently used, and pinned
        c = _put(store, os.urandom(1000))  # over budget: b (LRU, unpinned) goes
        assert store.has(a) and store.has(c) and not store.has(b)
        d = _put(store, os.urandom(1000))  # over budget: c goes, a is pinned
        assert store.has(a) and store.has(d) and not store.has(c)
    assert store.total_bytes <= 2_500
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{s}.model" for s in (a, d))


def test_pinned_models_may_overrun_budget_until_unpinned(tmp_path):
    store = ModelStore(tmp_path, budget_bytes=1_500, max_model_bytes=1_000)
    a = _put(store, os.urandom(1000))
    with store.pinned(a):
        b = _put(store, os.urandom(1000))  # a pinned, b just written: both stay
        assert store.has(a) and store.has(b)
    assert store.total_bytes <= 1_500  # unpinning evicted the LRU one


@pytest.mark.parametrize("declared,data,error,fragment", [
    (0, b"", ModelInvalid, "empty"),
    (2_000, b"x" * 2_000, ModelTooLarge, "at most 1000 bytes"),
    (10, b"x" * 20, InvalidUpload, "more than the declared 10"),
    (20, b"x" * 10, InvalidUpload, "after 10 of the declared 20"),
])
def test_bad_uploads_cache_nothing(tmp_path, declared, data, error, fragment):
    store = ModelStore(tmp_path, budget_bytes=10_000, max_model_bytes=1_000)
    sha = hashlib.sha256(data).hexdigest()
    with pytest.raises(error, match=fragment):
        store.put_stream(sha, declared, [data])
    assert list(tmp_path.iterdir()) == [] and store.count == 0


def test_checksum_mismatch_names_both_hashes(tmp_path):
    store = ModelStore(tmp_path, budget_bytes=10_000, max_model_bytes=1_000)
    wrong = "0" * 64
    with pytest.raises(ChecksumMismatch) as info:
        store.put_stream(wrong, 3, [b"abc"])
    assert wrong in str(info.value) and hashlib.sha256(b"abc").hexdigest() in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", ["../etc/passwd", "A" * 64, "0" * 63, "", "0" * 64 + "/x"])
def test_hash_syntax_is_enforced(tmp_path, bad):
    store = ModelStore(tmp_path, budget_bytes=10_000, max_model_bytes=1_000)
    with pytest.raises(InvalidUpload, match="not a sha256"):
        store.put_stream(bad, 3, [b"abc"])


def test_pinning_unknown_model_is_not_found(tmp_path):
    store = ModelStore(tmp_path, budget_bytes=10_000, max_model_bytes=1_000)
    with pytest.raises(ModelNotFound, match="upload it first"):
        with store.pinned("f" * 64):
            pass


def test_partial_files_from_a_crash_are_cleaned(tmp_path):
    (tmp_path / f"{'a' * 64}.123.456.partial").write_bytes(b"half")
    store = ModelStore(tmp_path, budget_bytes=10_000, max_model_bytes=1_000)
    assert store.count == 0 and list(tmp_path.iterdir()) == []


def test_uploads_in_progress_count_against_the_budget(tmp_path):
    store = ModelStore(tmp_path, budget_bytes=2_500, max_model_bytes=1_000)
    a = _put(store, os.urandom(1000))
    b = _put(store, os.urandom(1000))
    data = os.urandom(1000)
    seen_on_disk: list[int] = []

    def on_disk() -> int:
        return sum(p.stat().st_size for p in tmp_path.iterdir())

    def chunks():
        for i in range(0, 1000, 250):
            seen_on_disk.append(on_disk())  # after the previous chunk was written
            yield data[i : i + 250]

    store.put_stream(hashlib.sha256(data).hexdigest(), 1000, chunks())
    seen_on_disk.append(on_disk())
    # room was made as the bytes arrived: the folder never went over budget
    assert max(seen_on_disk) <= 2_500
    assert not store.has(a) and store.has(b)


def test_a_declared_size_alone_evicts_nothing(tmp_path):
    store = ModelStore(tmp_path, budget_bytes=2_500, max_model_bytes=1_000)
    a = _put(store, os.urandom(1000))
    b = _put(store, os.urandom(1000))
    with pytest.raises(InvalidUpload, match="after 1 of the declared 1000"):
        store.put_stream("0" * 64, 1000, [b"x"])
    assert store.has(a) and store.has(b) and store.total_bytes == 2_000


def test_tflite_bytes_are_stored_like_any_model_and_the_name_says_no_format(tmp_path):
    from fleetnas.agent.model_format import format_of_file
    from fleetnas.agent.reference import default_reference_path
    from fleetnas.api.v1 import agent_pb2

    store = ModelStore(tmp_path, budget_bytes=10_000_000, max_model_bytes=1_000_000)
    tflite = default_reference_path("litert").read_bytes()
    onnx = default_reference_path("onnxruntime").read_bytes()
    shas = [_put(store, tflite), _put(store, onnx)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{s}.model" for s in shas)
    with store.pinned(shas[0]) as first, store.pinned(shas[1]) as second:
        assert first.path.read_bytes() == tflite
        assert format_of_file(first.path) == agent_pb2.MODEL_FORMAT_TFLITE  # from the bytes
        assert format_of_file(second.path) == agent_pb2.MODEL_FORMAT_ONNX


def test_an_older_agents_cache_is_taken_over_under_the_new_name(tmp_path):
    data = b"b" * 300
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / f"{sha}.onnx").write_bytes(data)  # how agents before TFLite named models
    (tmp_path / "notes.onnx").write_bytes(b"not ours")  # not a hash: left alone
    store = ModelStore(tmp_path, budget_bytes=10_000, max_model_bytes=1_000)
    assert store.has(sha) and store.total_bytes == 300
    with store.pinned(sha) as model:
        assert model.path.name == f"{sha}.model" and model.path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{sha}.model", "notes.onnx"])
