"""Export a LUT to shareable files, and import one, with provenance.

Two formats (see ``profiles/README.md`` for the field-by-field description):

* **JSON** (``fleetnas-lut`` format version 1): one document with the space
  (name, config, version), the device (name, class and a hardware summary;
  never its address, hostname or host fingerprint), the resolved settings and
  their hash, provenance (agent and onnxruntime versions, providers, when the
  blocks were measured, when the file was written), the calibration, the last
  eval and check, and one entry per block with its measurement's figures.
* **CSV**: one row per block, every row carrying the identity (space, space
  config, space version, device, settings hash, settings JSON), so the file
  stands alone in a spreadsheet and can be imported too, without the
  calibration.

The default file name is ``profiles/luts/<device>/<space>-<settings hash>.json``
(and ``.csv``), where ``<space>`` is the space name, followed by ``-`` and the
first 8 hex characters of the sha256 of its canonical config when the space
is not default-configured.

Import validates everything before writing anything: the format, the
settings hash against the settings, every block key against the space, the
space version; and refuses a file whose space or settings differ from what
the caller expects unless forced.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.atomic_files import write_text_atomic
from fleetnas.controller.costdb import CostDB, canonical_json, settings_hash
from fleetnas.controller.lut._calibration import Calibration
from fleetnas.controller.lut._errors import CalibrationError, LutFormatError, LutMismatch
from fleetnas.controller.lut._robust import DEFAULT_LUT_STATISTIC, STATISTICS
from fleetnas.controller.lut._settings import resolved_from_dict, settings_mismatches
from fleetnas.controller.lut._store import (
    DEFAULT_LUT_PRECISION,
    LutEntry,
    LutInfo,
    LutStore,
    canonical_precision,
)
from fleetnas.controller.spaces import SearchSpace, get_space

FORMAT = "fleetnas-lut"
FORMAT_VERSION = 1
DEFAULT_EXPORT_DIR = Path("profiles") / "luts"
MAX_IMPORT_BYTES = 64 << 20
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HASH16 = re.compile(r"[0-9a-f]{16}")
_CSV_COLUMNS = (
    "space", "space_config", "space_version", "device", "device_class", "settings_hash",
    "settings", "block_key", "kind", "model_sha256", "latency_ms", "median_ms", "cv", "runs",
    "method", "measurement_uid", "started_at", "onnxruntime_version", "agent_version",
    "precision",
)  # fmt: skip
#: columns a CSV written before them may lack (their value is then the default)
_OPTIONAL_CSV_COLUMNS = frozenset({"precision"})


def space_slug(space_name: str, space_config: Mapping[str, Any]) -> str:
    """The ``<space>`` part of an export file name (module docstring)."""
    if not space_config:
        return space_name
    digest = hashlib.sha256(canonical_json(dict(space_config)).encode()).hexdigest()[:8]
    return f"{space_name}-{digest}"


def export_paths(lut: LutInfo, out_dir: str | Path = DEFAULT_EXPORT_DIR) -> tuple[Path, Path]:
    """``(json_path, csv_path)`` of the LUT under ``out_dir``."""
    stem = f"{space_slug(lut.space_name, lut.space_config)}-{lut.settings_hash}"
    if lut.precision != DEFAULT_LUT_PRECISION:  # beside the fp32 LUT's files, not over them
        stem += f"-{lut.precision}"
    folder = Path(out_dir) / lut.device
    return folder / f"{stem}.json", folder / f"{stem}.csv"


# -- export ------------------------------------------------------------------------------


def _device_summary(description: Mapping[str, Any] | None) -> dict[str, Any]:
    """The shareable part of a DeviceDescription dict (no hostname, no host fingerprint)."""
    if not description:
        return {}
    keep = ("agent_version", "cpu", "memory", "os", "board_model", "runtime", "gpus", "limits")
    return {k: description[k] for k in keep if k in description}


def _summary_line(description: Mapping[str, Any]) -> str:
    cpu = description.get("cpu", {})
    parts = [description.get("board_model") or cpu.get("model") or cpu.get("architecture") or "?"]
    if cpu.get("logical_cores"):
        parts.append(f"{cpu['logical_cores']} cores")
    total = description.get("memory", {}).get("total_bytes")
    if total:
        parts.append(f"{int(total) / 2**30:.1f} GiB")
    os_info = description.get("os", {})
    if os_info.get("system"):
        parts.append(" ".join(str(v) for v in (os_info.get("system"), os_info.get("release")) if v))
    return ", ".join(parts)


def _fleetnas_version() -> str:
    try:
        return metadata.version("fleetnas")
    except metadata.PackageNotFoundError:
        return "unknown"


def lut_document(db: CostDB, lut: LutInfo) -> dict[str, Any]:
    """The LUT as an export document (the JSON format), entries sorted by block key."""
    store = LutStore(db)
    device = db.get_device(lut.device)
    description = _device_summary(device.description if device else None)
    entries = []
    ort: set[str] = set()
    agents: set[str] = set()
    providers: set[str] = set()
    started: list[float] = []
    for entry in store.entries(lut.id).values():
        row: dict[str, Any] = {
            "block_key": entry.block_key,
            "model_sha256": entry.model_sha256,
            "latency_ms": entry.latency_ms,
            "measurement_uid": entry.measurement_uid,
        }
        m = db.get_measurement(entry.measurement_uid) if entry.measurement_uid else None
        if m is not None:
            row.update(median_ms=m.median_ms, cv=m.cv, runs=len(m.samples_ms), method=m.method,
                       started_at=m.started_at, onnxruntime_version=m.onnxruntime_version,
                       agent_version=m.agent_version)  # fmt: skip
            ort.add(m.onnxruntime_version)
            agents.add(m.agent_version)
            providers.add(m.provider)
            started.append(m.started_at)
        entries.append(row)
    last_eval = store.last_report(lut.id, "eval")
    last_check = store.last_report(lut.id, "check")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "space": {
            "name": lut.space_name,
            "identity": lut.space,
            "config": lut.space_config,
            "version": lut.space_version,
        },
        "device": {
            "name": lut.device,
            "class": device.device_class if device else None,
            "summary": _summary_line(description) if description else None,
            "description": description or None,
        },
        "settings_hash": lut.settings_hash,
        "settings": lut.settings,
        "status": lut.status,
        "blocks_total": lut.blocks_total,
        "provenance": {
            "onnxruntime_versions": sorted(ort),
            "agent_versions": sorted(agents),
            "providers": sorted(providers),
            "measured_from": min(started) if started else None,
            "measured_to": max(started) if started else None,
            "created_at": lut.created_at,
            "updated_at": lut.updated_at,
            "exported_at": time.time(),
            "exported_by": f"fleetnas {_fleetnas_version()}",
            "source": lut.source,
        },
        "statistic": lut.statistic,
        "precision": lut.precision,
        "calibration": None if lut.calibration is None else lut.calibration.to_dict(),
        "last_eval": None if last_eval is None else {
            "created_at": last_eval.created_at, **last_eval.accuracy.to_dict()},
        "last_check": None if last_check is None else {
            "created_at": last_check.created_at, "stale": last_check.stale,
            "threshold": last_check.threshold, **last_check.accuracy.to_dict()},
        "entries": entries,
    }  # fmt: skip


def document_to_csv(doc: Mapping[str, Any]) -> str:
    """The CSV form of an export document (one row per entry, identity on every row)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    space, device = doc["space"], doc["device"]
    settings_json = canonical_json(doc["settings"])
    for e in doc["entries"]:
        cells = {
            "space": space["name"], "space_config": canonical_json(space["config"]),
            "space_version": space["version"], "device": device["name"],
            "device_class": device.get("class") or "", "settings_hash": doc["settings_hash"],
            "settings": settings_json, "kind": e["block_key"].split("|", 1)[0],
            "precision": doc.get("precision", DEFAULT_LUT_PRECISION), **e,
        }  # fmt: skip
        writer.writerow(["" if cells.get(c) is None else cells[c] for c in _CSV_COLUMNS])
    return buffer.getvalue()


def export_lut(
    db: CostDB,
    lut: LutInfo,
    *,
    out_dir: str | Path = DEFAULT_EXPORT_DIR,
    formats: Sequence[str] = ("json", "csv"),
) -> list[Path]:
    """Write the LUT as JSON and/or CSV under ``out_dir`` (see :func:`export_paths`)."""
    bad = set(formats) - {"json", "csv"}
    if bad or not formats:
        raise ValueError(f"formats must be json and/or csv, got {list(formats)}")
    doc = lut_document(db, lut)
    json_path, csv_path = export_paths(lut, out_dir)
    written = []
    if "json" in formats:
        write_text_atomic(json_path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
        written.append(json_path)
    if "csv" in formats:
        write_text_atomic(csv_path, document_to_csv(doc))
        written.append(csv_path)
    return written


# -- reading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LutFile:
    """A validated LUT file (validation covers the file alone, not the local spaces)."""

    space_name: str
    space_config: dict[str, Any]
    space_version: int
    device: str
    device_class: str | None
    settings_hash: str
    settings: dict[str, Any]
    entries: tuple[LutEntry, ...]
    calibration: Calibration | None
    provenance: dict[str, Any] = field(default_factory=dict)
    #: the entries' statistic (files written before it: the median)
    statistic: str = DEFAULT_LUT_STATISTIC
    #: the precision of the entries' blocks (files written before it: fp32)
    precision: str = DEFAULT_LUT_PRECISION


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise LutFormatError(what)


def _check_identity(space_name: Any, space_config: Any, version: Any, device: Any,
                    s_hash: Any, settings: Any) -> None:
    _need(isinstance(space_name, str) and bool(_NAME.fullmatch(space_name)),
          f"space name {space_name!r:.80} is not a valid name")
    _need(isinstance(space_config, dict), "space config must be a JSON object")
    _need(isinstance(version, int) and not isinstance(version, bool) and version >= 1,
          f"space version {version!r:.40} must be a positive integer")
    _need(isinstance(device, str) and bool(_NAME.fullmatch(device)),
          f"device name {device!r:.80}: use 1-64 letters, digits, '.', '_' or '-'")
    _need(isinstance(s_hash, str) and bool(_HASH16.fullmatch(s_hash)),
          f"settings_hash {s_hash!r:.40} is not 16 hex characters")
    _need(isinstance(settings, dict), "settings must be a JSON object")
    try:
        recomputed = settings_hash(resolved_from_dict(settings))
    except Exception as exc:  # protobuf's ParseError and friends: not BenchmarkSettings
        raise LutFormatError(f"settings are not BenchmarkSettings: {exc}") from exc
    _need(recomputed == s_hash,
          f"settings_hash {s_hash} does not match the settings ({recomputed}): the file was "
          "edited or is corrupt")


def _entry(data: Any, where: str) -> LutEntry:
    _need(isinstance(data, dict), f"{where}: not an object")
    key, sha, lat, uid = (data.get("block_key"), data.get("model_sha256"),
                          data.get("latency_ms"), data.get("measurement_uid"))
    _need(isinstance(key, str) and 0 < len(key) <= 1000, f"{where}: block_key missing or too long")
    _need(isinstance(sha, str) and bool(_SHA256.fullmatch(sha)),
          f"{where}: model_sha256 is not a lowercase hex sha256")
    try:
        latency = float(lat)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise LutFormatError(f"{where}: latency_ms {lat!r:.40} is not a number") from None
    _need(math.isfinite(latency) and latency > 0, f"{where}: latency_ms must be finite and > 0")
    _need(uid is None or (isinstance(uid, str) and len(uid) <= 64),
          f"{where}: measurement_uid must be a string")
    return LutEntry(key, sha, latency, uid or None)


def _from_document(doc: Any) -> LutFile:
    _need(isinstance(doc, dict), "not a JSON object")
    _need(doc.get("format") == FORMAT, f"format is {doc.get('format')!r:.40}, not {FORMAT!r}")
    _need(doc.get("format_version") == FORMAT_VERSION,
          f"format_version {doc.get('format_version')!r:.20} is not {FORMAT_VERSION}; "
          "upgrade fleetnas to read it")
    space = doc.get("space")
    device = doc.get("device")
    _need(isinstance(space, dict) and isinstance(device, dict), "space and device must be objects")
    _check_identity(space.get("name"), space.get("config"), space.get("version"),
                    device.get("name"), doc.get("settings_hash"), doc.get("settings"))
    raw_entries = doc.get("entries")
    _need(isinstance(raw_entries, list) and bool(raw_entries), "entries must be a non-empty list")
    entries = tuple(_entry(e, f"entries[{i}]") for i, e in enumerate(raw_entries))
    calibration = None
    if doc.get("calibration") is not None:
        _need(isinstance(doc["calibration"], dict), "calibration must be an object or null")
        try:
            calibration = Calibration.from_dict(doc["calibration"])
        except CalibrationError as exc:
            raise LutFormatError(str(exc)) from exc
    provenance = doc.get("provenance") if isinstance(doc.get("provenance"), dict) else {}
    statistic = doc.get("statistic", DEFAULT_LUT_STATISTIC)
    _need(statistic in STATISTICS,
          f"statistic {statistic!r:.40} is not one of {', '.join(STATISTICS)}")
    precision = _precision(doc.get("precision", DEFAULT_LUT_PRECISION))
    device_class = device.get("class")
    return LutFile(
        space_name=space["name"], space_config=space["config"], space_version=space["version"],
        device=device["name"], device_class=device_class if isinstance(device_class, str) else None,
        settings_hash=doc["settings_hash"], settings=doc["settings"], entries=entries,
        calibration=calibration, provenance=provenance, statistic=statistic,
        precision=precision,
    )  # fmt: skip


def _precision(value: Any) -> str:
    _need(isinstance(value, str), f"precision {value!r:.40} is not a name")
    try:
        return canonical_precision(value)
    except ValueError as exc:
        raise LutFormatError(f"precision: {exc}") from exc


def _from_csv(text: str) -> LutFile:
    rows = list(csv.DictReader(io.StringIO(text)))
    _need(bool(rows), "no rows")
    missing = set(_CSV_COLUMNS) - set(rows[0]) - _OPTIONAL_CSV_COLUMNS
    _need(not missing, f"missing columns: {', '.join(sorted(missing))}")
    first = rows[0]
    identity = ("space", "space_config", "space_version", "device", "settings_hash", "settings",
                "precision")
    for i, row in enumerate(rows, start=2):
        for column in identity:
            _need(row.get(column) == first.get(column),
                  f"line {i}: {column} differs from the first row (one LUT per file)")
    try:
        config = json.loads(first["space_config"])
        settings = json.loads(first["settings"])
        version = int(first["space_version"])
    except (ValueError, TypeError) as exc:
        raise LutFormatError(f"line 2: bad space_config, settings or space_version: {exc}") from exc
    _check_identity(first["space"], config, version, first["device"], first["settings_hash"],
                    settings)
    entries = tuple(
        _entry({"block_key": r["block_key"], "model_sha256": r["model_sha256"],
                "latency_ms": r["latency_ms"], "measurement_uid": r["measurement_uid"] or None},
               f"line {i}")
        for i, r in enumerate(rows, start=2)
    )  # fmt: skip
    return LutFile(
        space_name=first["space"], space_config=config, space_version=version,
        device=first["device"], device_class=first["device_class"] or None,
        settings_hash=first["settings_hash"], settings=settings, entries=entries,
        calibration=None, provenance={},
        precision=_precision(first.get("precision") or DEFAULT_LUT_PRECISION),
    )  # fmt: skip


def read_lut_file(path: str | Path, fmt: str | None = None) -> LutFile:
    """Parse and validate an exported LUT (``fmt``: ``json``/``csv``, default by suffix).

    Raises LutFormatError naming the file and the problem.
    """
    path = Path(path)
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "json")
    if fmt not in ("json", "csv"):
        raise ValueError(f"format {fmt!r}: choose json or csv")
    size = path.stat().st_size
    if size > MAX_IMPORT_BYTES:
        raise LutFormatError(f"{path}: {size} bytes is over the {MAX_IMPORT_BYTES >> 20} MiB limit")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LutFormatError(
            f"{path}: not UTF-8 text (byte {exc.start}); export the LUT again with "
            "`fleetnas lut export`"
        ) from exc
    try:
        if fmt == "csv":
            parsed = _from_csv(text)
        else:
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                raise LutFormatError(f"not JSON: {exc}") from exc
            parsed = _from_document(doc)
    except LutFormatError as exc:
        raise LutFormatError(f"{path}: {exc}") from exc
    keys = [e.block_key for e in parsed.entries]
    if len(set(keys)) != len(keys):
        raise LutFormatError(f"{path}: a block key appears twice")
    return parsed


# -- import ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    """What an import stored. ``forced`` lists the mismatches accepted with ``force``."""

    lut: LutInfo
    entries: int
    replaced: bool
    forced: tuple[str, ...]


def import_lut(
    db: CostDB,
    path: str | Path,
    *,
    fmt: str | None = None,
    device: str | None = None,
    expect_space: str | None = None,
    expect_settings: agent_pb2.BenchmarkSettings | None = None,
    force: bool = False,
    replace: bool = False,
    source: str | None = None,
) -> ImportResult:
    """Validate a LUT file and store it; nothing is written unless every check passes.

    ``device`` stores it under another device name than the file's.
    ``expect_space`` (a space name or identity) and ``expect_settings`` (a
    request: every field it sets must equal the file's) state what the
    caller wants; a mismatch, a space version other than the local one, or
    block keys the space does not have raise LutMismatch unless ``force``.
    An existing LUT with the same identity raises LutMismatch unless
    ``replace`` (it is then deleted, with its reports). Measurements are
    not part of a LUT file; entries keep their ``measurement_uid`` for
    provenance. ``source`` labels the LUT (default: the file name).
    Raises LutFormatError, UnknownSpace.
    """
    parsed = read_lut_file(path, fmt)
    target_device = device or parsed.device
    if not _NAME.fullmatch(target_device):
        raise LutFormatError(f"device name {target_device!r}: use 1-64 letters, digits, '.', '_' or '-'")
    space = get_space(parsed.space_name, parsed.space_config)
    problems = _mismatches(parsed, space, expect_space, expect_settings)
    if problems and not force:
        raise LutMismatch(f"{path}: " + "; ".join(problems) + "; pass --force to import anyway")
    store = LutStore(db)
    existing = store.find(space=space.identity(), device=target_device,
                          settings_hash=parsed.settings_hash, precision=parsed.precision)
    if existing and not replace:
        raise LutMismatch(
            f"a {parsed.precision} LUT of {space.identity()} on {target_device} with settings "
            f"{parsed.settings_hash} exists already ({existing[0].entries} entries); pass "
            "--replace to overwrite it, or --device to import under another device name"
        )
    if existing:
        store.delete(existing[0].id)
    all_keys = {b.key for b in space.all_blocks()}
    lut = store.ensure(
        space=space.identity(), space_name=space.name, space_config=space.config(),
        # A forced import of another space version is the user's word that the
        # blocks still mean the same modules: it is stored as the local version.
        space_version=space.version, device=target_device,
        settings_hash=parsed.settings_hash, settings=parsed.settings,
        blocks_total=len(all_keys), source=source or Path(path).name,
        statistic=parsed.statistic, precision=parsed.precision,
    )  # fmt: skip
    store.put_entries(lut.id, parsed.entries, origin_space=space.name,
                      precision=parsed.precision)
    if parsed.calibration is not None:
        store.set_calibration(lut.id, parsed.calibration)
    if all_keys <= {e.block_key for e in parsed.entries}:
        store.set_status(lut.id, "complete")
    return ImportResult(store.get(lut.id), len(parsed.entries), bool(existing),
                        tuple(problems))


def _mismatches(
    parsed: LutFile,
    space: SearchSpace,
    expect_space: str | None,
    expect_settings: agent_pb2.BenchmarkSettings | None,
) -> list[str]:
    problems = []
    if expect_space is not None and expect_space not in (space.name, space.identity()):
        problems.append(f"the file is a LUT of {space.identity()}, not {expect_space}")
    if parsed.space_version != space.version:
        problems.append(
            f"it was built for version {parsed.space_version} of {space.name}, this fleetnas has "
            f"version {space.version} (block keys may name other modules)"
        )
    known = {b.key for b in space.all_blocks()}
    unknown = [e.block_key for e in parsed.entries if e.block_key not in known]
    if unknown:
        problems.append(f"{len(unknown)} block keys are not blocks of {space.identity()} "
                        f"(first: {unknown[0]})")
    if expect_settings is not None:
        problems += [f"settings differ: {m}" for m in settings_mismatches(expect_settings,
                                                                          parsed.settings)]
    return problems

