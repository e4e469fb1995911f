"""The records of the cost database: :class:`Device`, :class:`Model`, :class:`Measurement`.

Records are frozen dataclasses, and their fields are the table's columns: the
one definition of the schema (see :mod:`._codec`). ``COLUMNS`` and ``TABLE``
are derived from the fields; each record converts to and from an SQLite row
read by column name (``to_row``/``from_row``), a JSON object
(``to_dict``/``from_dict``) and CSV cells. ``from_dict`` validates;
``from_row`` trusts the database's types.

To change a table, add a field with ``field(metadata=column(since=N))`` and a migration ``N``
that adds it (``add_columns_sql``); never change or remove a field an applied
migration created.

A measurement's ``uid`` is what makes recording it twice a no-op, wherever the
second copy comes from (a retry, an import, a merge): the first 32 hex
characters of the sha256 of the compact JSON array ``[device, model_sha256,
settings_hash, started_at, host_fingerprint, agent_version, samples_ms]``.
Re-measuring the same model gives different samples and a different start
time, hence a new measurement.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from google.protobuf import json_format

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb._codec import (
    Column,
    column,
    dumps,
    encode_json,
    fields_from_json,
    message_to_dict,
    record,
    row_reader,
    row_values,
)
from fleetnas.controller.costdb._errors import InvalidRecord
from fleetnas.controller.costdb._hardware import HARDWARE_ID_CHARS, hardware_id
from fleetnas.controller.costdb._settings_hash import (
    SETTINGS_HASH_CHARS,
    settings_from_dict,
    settings_hash,
    settings_to_dict,
)

UID_CHARS = 32
METHODS = ("plain", "paired")
#: the migration that added the energy columns (``energy_*``) to measurements
ENERGY_SINCE = 8
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SETTINGS_HASH = re.compile(rf"[0-9a-f]{{{SETTINGS_HASH_CHARS}}}")
_HARDWARE_ID = re.compile(rf"[0-9a-f]{{{HARDWARE_ID_CHARS}}}")
_INT64_MAX = 2**63 - 1


def check_sha256(value: str, what: str = "model_sha256") -> str:
    """Return ``value`` if it is a lowercase hex sha256, else raise :class:`InvalidRecord`."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise InvalidRecord(f"{what}: expected 64 lowercase hex characters, got {value!r:.80}")
    return value


def _check_int64(name: str, value: int | None) -> None:
    if value is not None and not 0 <= value <= _INT64_MAX:
        raise InvalidRecord(f"{name}: {value} is outside 0..2**63-1")


def _check_name(what: str, value: str) -> None:
    if not value or value != value.strip() or any(ord(ch) < 32 for ch in value):
        raise InvalidRecord(f"{what}: {value!r} must be non-empty, printable, unpadded")


@record("devices")
@dataclass(frozen=True)
class Device:
    """A device of the fleet as last seen: its name is its identity in the database.

    ``address`` is a host:port (or URI) with no credentials: secrets never
    enter the database. ``description`` is a ``DeviceDescription`` as a dict
    (``None`` until an agent has been described). Times are unix seconds.
    """

    name: str = field(metadata=column(constraint="PRIMARY KEY"))
    device_class: str
    address: str
    host_fingerprint: str
    description: dict[str, Any] | None
    first_seen: float
    last_seen: float

    TABLE: ClassVar[str]
    COLUMNS: ClassVar[tuple[Column, ...]]

    def validate(self) -> Device:
        """Return self, or raise :class:`InvalidRecord`."""
        _check_name("device name", self.name)
        _check_name("device_class", self.device_class)
        check_address(self.address)
        return self

    def description_proto(self) -> agent_pb2.DeviceDescription | None:
        """The description as a protobuf message, or ``None``."""
        if self.description is None:
            return None
        return json_format.ParseDict(self.description, agent_pb2.DeviceDescription())

    @property
    def hardware_id(self) -> str | None:
        """The identity of the hardware last described here (see :mod:`._hardware`)."""
        return None if self.description is None else hardware_id(self.description)

    def to_row(self) -> dict[str, Any]:
        """SQLite values by column name."""
        return row_values(self.COLUMNS, self)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Device:
        """From SQLite values by column name (no validation); raises CorruptRow."""
        return cls(**_read_device(row))

    def to_dict(self) -> dict[str, Any]:
        return {c.name: encode_json(c, getattr(self, c.name)) for c in self.COLUMNS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Device:
        """Build and validate; raises :class:`InvalidRecord`."""
        return cls(**fields_from_json(cls.COLUMNS, data)).validate()


def check_address(address: str) -> str:
    """Reject addresses that could carry a secret (user-info or a query string)."""
    if "@" in address or "?" in address:
        raise InvalidRecord(
            f"address {address!r} looks like it carries credentials; "
            "store host:port only and keep tokens in environment variables"
        )
    return address


@record("models")
@dataclass(frozen=True)
class Model:
    """An ONNX model known by the sha256 of its bytes.

    Origin fields are ``None`` when unknown (an empty string counts as
    unknown). ``size_bytes`` is ``None`` when the model was first seen in a
    measurement rather than recorded from its bytes.
    """

    sha256: str = field(metadata=column(constraint="PRIMARY KEY"))
    size_bytes: int | None
    space: str | None
    arch: str | None
    params: int | None
    flops: int | None
    created_at: float

    TABLE: ClassVar[str]
    COLUMNS: ClassVar[tuple[Column, ...]]

    def __post_init__(self) -> None:
        for name in ("space", "arch"):
            if getattr(self, name) == "":
                object.__setattr__(self, name, None)

    def validate(self) -> Model:
        """Return self, or raise :class:`InvalidRecord`."""
        check_sha256(self.sha256, "sha256")
        for name in ("size_bytes", "params", "flops"):
            _check_int64(name, getattr(self, name))
        return self

    def to_row(self) -> dict[str, Any]:
        """SQLite values by column name."""
        return row_values(self.COLUMNS, self)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Model:
        """From SQLite values by column name (no validation); raises CorruptRow."""
        return cls(**_read_model(row))

    def to_dict(self) -> dict[str, Any]:
        return {c.name: encode_json(c, getattr(self, c.name)) for c in self.COLUMNS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Model:
        """Build and validate; raises :class:`InvalidRecord`."""
        return cls(**fields_from_json(cls.COLUMNS, data)).validate()


def _stats_fields(stats: agent_pb2.LatencyStats) -> dict[str, Any]:
    """The summary statistics of a result, as Measurement fields."""
    names = ("median_ms", "mean_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "std_ms", "cv")
    return {name: getattr(stats, name) for name in names}


def _state_fields(state: agent_pb2.DeviceState, when: str) -> dict[str, Any]:
    """The device state before or after a run, as Measurement fields (``None``: not reported)."""
    return {
        f"freq_{when}_mhz": state.freq_current_mhz or None,
        f"temp_{when}_c": state.temperature_c if state.temperature_available else None,
        f"load_{when}": state.load_1m,
        f"throttled_{when}": state.throttled,
    }


def _energy_fields(energies: Sequence[agent_pb2.Energy]) -> dict[str, Any]:
    """The headline energy of a result, as Measurement fields (see :class:`Measurement`).

    The first readable meter in the agent's order (NVML, Jetson, RAPL) is the
    headline; with none readable, every figure is ``None`` and ``energy_reason``
    joins the meters' reasons (``None`` too when the agent has no meter at all).
    """
    for e in energies:
        if e.readable and e.HasField("mj_per_inference"):
            return {
                "energy_mj": e.mj_per_inference,
                "energy_uncertainty_mj": (
                    e.uncertainty_mj if e.HasField("uncertainty_mj") else None),
                "energy_net_mj": (
                    e.net_mj_per_inference if e.HasField("net_mj_per_inference") else None),
                "energy_net_uncertainty_mj": (
                    e.net_uncertainty_mj if e.HasField("net_uncertainty_mj") else None),
                "energy_method": e.method or None,
                "energy_scope": e.scope or None,
                "energy_reason": None,
            }
    reason = "; ".join(f"{e.source}: {e.reason or 'unreadable'}" for e in energies)
    return {"energy_reason": reason or None}


def measurement_uid(
    device: str,
    model_sha256: str,
    settings_hash_: str,
    started_at: float,
    host_fingerprint: str,
    agent_version: str,
    samples_ms: Sequence[float],
) -> str:
    """The deduplication key of a measurement (see the module docstring)."""
    key = dumps(
        [
            device,
            model_sha256,
            settings_hash_,
            float(started_at),
            host_fingerprint,
            agent_version,
            [float(s) for s in samples_ms],
        ]
    )
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:UID_CHARS]


@record("measurements")
@dataclass(frozen=True)
class Measurement:
    """One benchmark of one model on one device, with everything needed to trust it.

    ``latency_ms`` is the headline figure: the median of ``samples_ms`` for
    ``method="plain"``, ``paired["latency_ms"]`` for ``method="paired"``.
    ``settings`` is the full resolved ``BenchmarkSettings`` as a dict
    (including the run limits the hash ignores). Frequencies are ``None``
    when the device did not report them, temperatures when unavailable.
    ``source`` says where it was first recorded: ``"local"`` for this
    database, otherwise the label given when it was imported.
    ``hardware_id`` is the identity of the hardware it ran on (see
    :mod:`._hardware`; ``None`` when unknown, e.g. recorded before fleetnas
    tracked it for a device never described): the cache serves a device
    only measurements of its current hardware. ``id`` is the row id in the
    database it was read from (``None`` before it is stored). Neither is
    part of its identity (``uid``).

    Energy per inference (migration 8, from the result's first readable
    ``Energy``): ``energy_mj`` is the gross mJ per inference of the timed loop,
    ``energy_uncertainty_mj`` its method-bound uncertainty, ``energy_net_mj``
    the figure net of idle and ``energy_net_uncertainty_mj`` its uncertainty
    (only when the agent measured an idle baseline),
    ``energy_method``/``energy_scope`` the meter (``rapl-counter`` over
    ``package-0 + package-0/dram``...). Where no meter read anything they
    are ``None``, never 0, and ``energy_reason`` says why (``None`` when the
    agent reported no meter at all). Not part of the identity either.
    """

    uid: str = field(metadata=column(constraint="UNIQUE"))
    device: str
    model_sha256: str = field(metadata=column(constraint="REFERENCES models (sha256)"))
    settings_hash: str
    settings: dict[str, Any]
    method: str = field(metadata=column(constraint=f"CHECK (method IN {METHODS!r})"))
    samples_ms: tuple[float, ...]
    median_ms: float
    mean_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    cv: float
    latency_ms: float
    paired: dict[str, Any] | None
    session_create_ms: float
    first_run_ms: float
    peak_rss_bytes: int
    provider: str
    warnings: tuple[str, ...]
    agent_version: str
    onnxruntime_version: str
    host_fingerprint: str
    intra_op_threads: int
    inter_op_threads: int
    freq_before_mhz: float | None
    freq_after_mhz: float | None
    temp_before_c: float | None
    temp_after_c: float | None
    load_before: float
    load_after: float
    throttled_before: bool
    throttled_after: bool
    wall_s: float
    started_at: float
    recorded_at: float
    source: str
    hardware_id: str | None = field(default=None, metadata=column(since=4))
    energy_mj: float | None = field(default=None, metadata=column(since=ENERGY_SINCE))
    energy_uncertainty_mj: float | None = field(default=None, metadata=column(since=ENERGY_SINCE))
    energy_net_mj: float | None = field(default=None, metadata=column(since=ENERGY_SINCE))
    energy_net_uncertainty_mj: float | None = field(
        default=None, metadata=column(since=ENERGY_SINCE))
    energy_method: str | None = field(default=None, metadata=column(since=ENERGY_SINCE))
    energy_scope: str | None = field(default=None, metadata=column(since=ENERGY_SINCE))
    energy_reason: str | None = field(default=None, metadata=column(since=ENERGY_SINCE))
    id: int | None = field(default=None, metadata=column(constraint="PRIMARY KEY"))

    TABLE: ClassVar[str]
    COLUMNS: ClassVar[tuple[Column, ...]]

    # -- construction ----------------------------------------------------------------

    @classmethod
    def from_result(
        cls,
        device: str,
        result: agent_pb2.BenchmarkResult,
        *,
        source: str = "local",
        recorded_at: float,
    ) -> Measurement:
        """The measurement an agent's ``BenchmarkResult`` describes, validated.

        Raises :class:`InvalidRecord` when the result has no settings or no
        samples, a non-finite figure, a bad model hash, or ``METHOD_PAIRED``
        without its paired details.
        """
        if not result.HasField("settings"):
            raise InvalidRecord("result has no settings: record the settings the agent echoed")
        settings = result.settings
        paired_method = settings.method == agent_pb2.METHOD_PAIRED
        if paired_method and not result.HasField("paired"):
            raise InvalidRecord("METHOD_PAIRED result without its paired details")
        samples = tuple(float(s) for s in result.samples_ms)
        if not all(math.isfinite(s) for s in samples):
            raise InvalidRecord("samples_ms: every sample must be finite")
        s_hash = settings_hash(settings)
        uid = measurement_uid(
            device, result.model_sha256, s_hash, result.started_at, result.host_fingerprint,
            result.agent_version, samples,
        )  # fmt: skip
        measurement = cls(
            uid=uid,
            device=device,
            model_sha256=result.model_sha256,
            settings_hash=s_hash,
            settings=settings_to_dict(settings),
            method="paired" if paired_method else "plain",
            samples_ms=samples,
            **_stats_fields(result.stats),
            latency_ms=result.paired.latency_ms if paired_method else result.stats.median_ms,
            paired=message_to_dict(result.paired) if paired_method else None,
            session_create_ms=result.session_create_ms,
            first_run_ms=result.first_run_ms,
            peak_rss_bytes=result.peak_rss_bytes,
            provider=result.provider,
            warnings=tuple(result.warnings),
            agent_version=result.agent_version,
            onnxruntime_version=result.onnxruntime_version,
            host_fingerprint=result.host_fingerprint,
            intra_op_threads=settings.intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
            **_state_fields(result.state_before, "before"),
            **_state_fields(result.state_after, "after"),
            wall_s=result.wall_s,
            started_at=result.started_at,
            recorded_at=recorded_at,
            source=source,
            **_energy_fields(result.energy),
        )
        return measurement.validate()

    def validate(self) -> Measurement:
        """Return self, or raise :class:`InvalidRecord` naming what is wrong.

        Checks hashes, names, finiteness, the method/paired pairing, that
        ``settings_hash`` matches ``settings`` and that ``uid`` matches the
        content it is computed from.
        """
        check_sha256(self.model_sha256)
        _check_name("device", self.device)
        _check_name("source", self.source)
        if self.hardware_id is not None and not _HARDWARE_ID.fullmatch(self.hardware_id):
            raise InvalidRecord(f"hardware_id: {self.hardware_id!r:.40} is not 16 hex characters")
        if not _SETTINGS_HASH.fullmatch(self.settings_hash):
            raise InvalidRecord(f"settings_hash: {self.settings_hash!r} is not 16 hex characters")
        if self.method not in METHODS:
            raise InvalidRecord(f"method: {self.method!r} is not one of {', '.join(METHODS)}")
        if (self.paired is not None) != (self.method == "paired"):
            raise InvalidRecord("paired: details must be present exactly for method 'paired'")
        if not self.samples_ms:
            raise InvalidRecord("samples_ms: a measurement needs at least one sample")
        for col in self.COLUMNS:
            value = getattr(self, col.name)
            if col.kind == "float" and value is not None and not math.isfinite(value):
                raise InvalidRecord(f"{col.name}: {value} is not finite")
        if not all(math.isfinite(s) for s in self.samples_ms):
            raise InvalidRecord("samples_ms: every sample must be finite")
        self._validate_energy()
        _check_int64("peak_rss_bytes", self.peak_rss_bytes)
        try:
            recomputed = settings_hash(settings_from_dict(self.settings))
        except json_format.ParseError as exc:
            raise InvalidRecord(f"settings: not BenchmarkSettings: {exc}") from exc
        if recomputed != self.settings_hash:
            raise InvalidRecord(
                f"settings_hash: {self.settings_hash} does not match the settings ({recomputed})"
            )
        expected_uid = measurement_uid(
            self.device,
            self.model_sha256,
            self.settings_hash,
            self.started_at,
            self.host_fingerprint,
            self.agent_version,
            self.samples_ms,
        )
        if self.uid != expected_uid:
            raise InvalidRecord(f"uid: {self.uid!r} does not match the measurement's content")
        return self

    def _validate_energy(self) -> None:
        figures = ("energy_uncertainty_mj", "energy_net_mj", "energy_net_uncertainty_mj",
                   "energy_method", "energy_scope")
        for name in ("energy_method", "energy_scope", "energy_reason"):
            if getattr(self, name) == "":
                raise InvalidRecord(f"{name}: empty (unknown is null)")
        if self.energy_mj is None:
            stray = [name for name in figures if getattr(self, name) is not None]
            if stray:
                raise InvalidRecord(f"{', '.join(stray)}: set without energy_mj")
            return
        if self.energy_reason is not None:
            raise InvalidRecord("energy_reason: set although energy_mj is known")
        if not self.energy_method:
            raise InvalidRecord("energy_method: energy_mj needs the meter's method")
        for name in ("energy_mj", "energy_uncertainty_mj", "energy_net_uncertainty_mj"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InvalidRecord(f"{name}: {value} is negative")

    # -- views -------------------------------------------------------------------------

    def settings_proto(self) -> agent_pb2.BenchmarkSettings:
        """The resolved settings as a protobuf message."""
        return settings_from_dict(self.settings)

    def with_id(self, row_id: int | None) -> Measurement:
        return replace(self, id=row_id)

    # -- conversions -------------------------------------------------------------------

    def to_row(self) -> dict[str, Any]:
        """SQLite values by column name."""
        return row_values(self.COLUMNS, self)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Measurement:
        """From SQLite values by column name (no validation); raises CorruptRow."""
        return cls(**_read_measurement(row))

    @classmethod
    def from_values(cls, values: Sequence[Any]) -> Measurement:
        """From a row of ``SELECT`` :data:`COLUMNS` (in that order; no validation): the
        cache's hot path. Raises CorruptRow."""
        return cls(**_read_measurement.values(values))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists)."""
        return {c.name: encode_json(c, getattr(self, c.name)) for c in self.COLUMNS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        """Build and validate; ``id`` may be missing. Raises :class:`InvalidRecord`."""
        return cls(
            **fields_from_json(cls.COLUMNS, data, optional=("id", *LATER_COLUMNS))
        ).validate()


#: measurement columns added after the first schema: files written before may lack them
LATER_COLUMNS: tuple[str, ...] = tuple(c.name for c in Measurement.COLUMNS if c.since > 1)
_read_device = row_reader(Device.TABLE, Device.COLUMNS, "name")
_read_model = row_reader(Model.TABLE, Model.COLUMNS, "sha256")
_read_measurement = row_reader(Measurement.TABLE, Measurement.COLUMNS, "uid")
