"""The cost DB's user models: the naming rule, the merge of tags, listing, on real SQLite."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fleetnas.controller.costdb import (
    LATEST_VERSION,
    CostDB,
    InvalidRecord,
    ModelAlreadyNamed,
    NameTaken,
)
from tests import onnx_models


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


A = _sha(onnx_models.mlp(8, 1, seed=0))
B = _sha(onnx_models.mlp(8, 1, seed=1))


def test_a_name_is_stored_with_its_counts_and_listed(tmp_path: Path) -> None:
    with CostDB(tmp_path / "c.db") as db:
        assert db.schema_version == LATEST_VERSION
        db.name_model(A, "mlp", tags={"team": "vision"}, precision="fp32", size_bytes=100,
                      params=72, flops=64, inputs={"x": {"dims": [1, 8], "dtype": "float32"}})
    with CostDB(tmp_path / "c.db") as db:  # reopened: it is on disk
        (summary,) = db.user_models()
        model = db.get_model(A)
    assert summary.model.name == "mlp" and summary.model.tags == {"team": "vision"}
    assert (summary.params, summary.flops, summary.size_bytes) == (72, 64, 100)
    assert model is not None and model.params == 72  # the counts live in `models`, once
    assert summary.measurements == 0 and summary.devices == () and summary.last_measured_at is None
    assert summary.model.inputs == {"x": {"dims": [1, 8], "dtype": "float32"}}


def test_naming_again_merges_tags_and_the_rules_hold() -> None:
    db = CostDB(memory=True)
    first = db.name_model(A, "mlp", tags={"team": "vision", "owner": "ana"})
    again = db.name_model(A, "mlp", tags={"owner": "bo", "stage": "prod"})
    assert again.tags == {"team": "vision", "owner": "bo", "stage": "prod"}
    assert again.named_at == first.named_at and again.updated_at >= first.updated_at

    with pytest.raises(NameTaken, match="already model " + A[:12]):
        db.name_model(B, "mlp")
    assert db.get_model(B) is None  # the refused naming wrote nothing
    with pytest.raises(ModelAlreadyNamed, match="already named 'mlp', not 'mlp-v2'"):
        db.name_model(A, "mlp-v2")

    moved = db.name_model(A, "mlp-v2", tags={"x": "1"}, rename=True)
    assert moved.name == "mlp-v2" and moved.tags["team"] == "vision" and moved.tags["x"] == "1"
    assert db.get_user_model("mlp") is None
    assert db.get_user_model("mlp-v2") == db.get_user_model(A) == moved
    db.name_model(B, "mlp")  # the old name is free again
    assert [s.model.name for s in db.user_models()] == ["mlp", "mlp-v2"]


@pytest.mark.parametrize(("name", "tags", "match"), [
    ("", {}, "model name"),
    (" padded", {}, "model name"),
    ("ok", {"bad key": "v"}, "tag key"),
    ("ok", {"k": "line\nbreak"}, "tag k"),
])
def test_bad_names_and_tags_are_refused(name: str, tags: dict[str, str], match: str) -> None:
    db = CostDB(memory=True)
    with pytest.raises(InvalidRecord, match=match):
        db.name_model(A, name, tags=tags)
    assert db.user_models() == []
