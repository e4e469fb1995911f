"""Round trips of the records: dataclass -> SQLite row / JSON / CSV -> dataclass."""

from __future__ import annotations

import json
import string
import uuid
from pathlib import Path

from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB, Device, Measurement, Model, measurement_uid
from fleetnas.controller.costdb import settings_hash as hash_settings
from fleetnas.controller.costdb._codec import decode_csv, encode_csv
from tests.controller.test_costdb_helpers import resolved_settings

finite = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
name = st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=12)
sha = st.text("0123456789abcdef", min_size=64, max_size=64)
int64 = st.integers(min_value=0, max_value=2**63 - 1)


@st.composite
def measurements(draw: st.DrawFn) -> Measurement:
    method = draw(st.sampled_from(["plain", "paired"]))
    pb = resolved_settings(
        intra_op_threads=draw(st.integers(0, 64)),
        method=agent_pb2.METHOD_PAIRED if method == "paired" else agent_pb2.METHOD_PLAIN,
        timeout_s=draw(st.floats(min_value=0.1, max_value=1e4)),
    )
    settings_dict = json.loads(json.dumps(_to_dict(pb)))
    s_hash = hash_settings(pb)
    device = draw(name)
    model = draw(sha)
    samples = tuple(draw(st.lists(finite, min_size=1, max_size=30)))
    started_at = draw(finite)
    host = draw(text)
    agent_version = draw(text)
    paired = (
        {"reference_name": draw(text), "latency_ms": draw(finite), "ratios": [draw(finite)]}
        if method == "paired"
        else None
    )
    stats = {k: draw(finite) for k in ("median_ms", "mean_ms", "p90_ms", "p99_ms")}
    return Measurement(
        uid=measurement_uid(device, model, s_hash, started_at, host, agent_version, samples),
        device=device,
        model_sha256=model,
        settings_hash=s_hash,
        settings=settings_dict,
        method=method,
        samples_ms=samples,
        **stats,
        min_ms=draw(finite),
        max_ms=draw(finite),
        std_ms=draw(finite),
        cv=draw(finite),
        latency_ms=draw(finite),
        paired=paired,
        session_create_ms=draw(finite),
        first_run_ms=draw(finite),
        peak_rss_bytes=draw(int64),
        provider=draw(text),
        warnings=tuple(draw(st.lists(text, max_size=3))),
        agent_version=agent_version,
        onnxruntime_version=draw(text),
        host_fingerprint=host,
        intra_op_threads=pb.intra_op_threads,
        inter_op_threads=pb.inter_op_threads,
        freq_before_mhz=draw(st.none() | finite),
        freq_after_mhz=draw(st.none() | finite),
        temp_before_c=draw(st.none() | finite),
        temp_after_c=draw(st.none() | finite),
        load_before=draw(finite),
        load_after=draw(finite),
        throttled_before=draw(st.booleans()),
        throttled_after=draw(st.booleans()),
        wall_s=draw(finite),
        started_at=started_at,
        recorded_at=draw(finite),
        source=draw(name),
        id=draw(st.none() | st.integers(1, 2**62)),
        **draw(energy_fields()),
    ).validate()


@st.composite
def energy_fields(draw: st.DrawFn) -> dict[str, object]:
    """Either a readable meter's figures (net optional) or none with an optional reason."""
    if draw(st.booleans()):
        return {"energy_reason": draw(st.none() | text.filter(bool))}
    nonneg = st.floats(min_value=0, allow_nan=False, allow_infinity=False)
    return {
        "energy_mj": draw(nonneg),
        "energy_uncertainty_mj": draw(st.none() | nonneg),
        "energy_net_mj": draw(st.none() | finite),
        "energy_net_uncertainty_mj": draw(st.none() | nonneg),
        "energy_method": draw(name),
        "energy_scope": draw(st.none() | text.filter(bool)),
    }


def _to_dict(pb: agent_pb2.BenchmarkSettings) -> dict:
    return json_format.MessageToDict(pb, preserving_proto_field_name=True)


devices = st.builds(
    Device,
    name=name,
    device_class=name,
    address=st.text(string.ascii_letters + string.digits + ".:-[]", max_size=30),
    host_fingerprint=text,
    description=st.none() | st.dictionaries(name, st.integers() | text, max_size=3),
    first_seen=finite,
    last_seen=finite,
)
models = st.builds(
    Model,
    sha256=sha,
    size_bytes=st.none() | int64,
    space=st.none() | text,
    arch=st.none() | text,
    params=st.none() | int64,
    flops=st.none() | int64,
    created_at=finite,
)


@given(measurements())
def test_measurement_row_round_trip(m: Measurement) -> None:
    assert Measurement.from_row(m.to_row()) == m


@given(measurements())
def test_measurement_json_round_trip(m: Measurement) -> None:
    assert Measurement.from_dict(json.loads(json.dumps(m.to_dict()))) == m


@given(measurements())
def test_measurement_csv_cell_round_trip(m: Measurement) -> None:
    cells = {c.name: encode_csv(c, getattr(m, c.name)) for c in Measurement.COLUMNS}
    assert Measurement(**{c.name: decode_csv(c, cells[c.name]) for c in Measurement.COLUMNS}) == m


@given(devices, models)
def test_device_and_model_round_trips(device: Device, model: Model) -> None:
    assert Device.from_row(device.to_row()) == device
    assert Device.from_dict(json.loads(json.dumps(device.to_dict()))) == device
    assert Model.from_row(model.to_row()) == model
    assert Model.from_dict(json.loads(json.dumps(model.to_dict()))) == model


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(measurements())
def test_measurement_sqlite_file_round_trip(tmp_path: Path, m: Measurement) -> None:
    # tmp_path is shared by the examples: a fresh file for each one.
    path = tmp_path / f"rt-{uuid.uuid4().hex}.db"
    with CostDB(path) as db:
        assert db.insert_measurements([m, m]) == (1, 1)
        stored = db.get_measurement(m.uid)
        assert stored is not None and stored.id is not None
        assert stored.with_id(m.id) == m
