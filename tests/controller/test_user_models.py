"""The cost DB's user models: the naming rule, the merge of tags, listing, on real SQLite."""

from __future__ import annotations

import hashlib
import json
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetnas.controller.costdb import (
    LATEST_VERSION,
    CostDB,
    ImportFormatError,
    InvalidRecord,
    ModelAlreadyNamed,
    NameTaken,
    UserModel,
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


def test_names_travel_with_exports_and_merges_and_local_names_win(tmp_path: Path) -> None:
    with CostDB(tmp_path / "alice.db") as alice:
        alice.name_model(A, "mlp", tags={"team": "vision"}, precision="fp32", params=72)
        alice.name_model(B, "mlp-b", precision="int8")
        report = alice.export(tmp_path / "alice.jsonl")
        assert report.names == 2 and report.models == 2
    with CostDB(tmp_path / "bob.db") as bob:
        bob.name_model(B, "bobs-name")  # the same bytes, named here first
        imported = bob.import_file(tmp_path / "alice.jsonl")
        assert imported.names_added == 1 and imported.models_added == 1
        names = {s.model.sha256: s.model for s in bob.user_models()}
    assert names[A].name == "mlp" and names[A].tags == {"team": "vision"}
    assert names[B].name == "bobs-name"  # an import never renames a local model
    with CostDB(tmp_path / "carol.db") as carol:
        carol.name_model(hashlib.sha256(b"other").hexdigest(), "mlp")  # the name is taken here
        merged = carol.merge(tmp_path / "alice.db")
        assert merged.names_added == 1
        assert {s.model.name for s in carol.user_models()} == {"mlp", "mlp-b"}
        assert carol.get_user_model("mlp") != carol.get_user_model(A)


def test_an_export_whose_name_comes_before_its_model_is_refused(tmp_path: Path) -> None:
    with CostDB(tmp_path / "a.db") as db:
        db.name_model(A, "mlp")
        db.export(tmp_path / "a.jsonl")
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    model_line = next(i for i, line in enumerate(lines) if '"type":"model"' in line)
    name_line = next(i for i, line in enumerate(lines) if '"type":"user_model"' in line)
    lines[model_line], lines[name_line] = lines[name_line], lines[model_line]
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    with CostDB(tmp_path / "b.db") as db, pytest.raises(ImportFormatError, match="not in the file before"):
        db.import_file(tmp_path / "bad.jsonl")
    with CostDB(tmp_path / "b.db") as db:
        assert db.user_models() == [] and db.get_model(A) is None


_tag_keys = st.text(string.ascii_letters + string.digits + "_.:/-", min_size=1, max_size=10)
_printable = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)


@settings(max_examples=40)
@given(
    name=_printable.map(str.strip).filter(bool),
    tags=st.dictionaries(_tag_keys, _printable, max_size=4),
    dims=st.lists(st.one_of(st.integers(1, 512), st.sampled_from(["batch", "n"])), max_size=4),
    precision=st.sampled_from(["fp32", "fp16", "int8", "int8-dynamic", "mixed", "unknown"]),
)
def test_user_model_round_trips_through_sqlite_and_json(
    name: str, tags: dict[str, str], dims: list[int | str], precision: str
) -> None:
    db = CostDB(memory=True)
    stored = db.name_model(A, name, tags=tags, precision=precision,
                           inputs={"x": {"dims": dims, "dtype": "float32"}})
    assert db.get_user_model(name) == stored
    assert UserModel.from_dict(json.loads(json.dumps(stored.to_dict()))) == stored
