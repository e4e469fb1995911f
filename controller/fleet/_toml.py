"""Read and write the fleet file (TOML).

The format, version 1::

    version = 1

    [[devices]]
    name = "pi4-a"
    class = "pi4"
    address = "192.168.1.20:50051"
    token_env = "FLEETNAS_PI4_TOKEN"        # the token is read from $FLEETNAS_PI4_TOKEN at connect time
    tls_ca = "certs/fleet-ca.pem"  # paths are relative to this file's folder

Keys of a device: ``name``, ``class``, ``address`` (required), ``token_env``,
``tls``, ``tls_ca``, ``tls_cert``, ``tls_key``, ``tls_server_name``. Unknown
keys are an error (a typo must not silently drop TLS), and so is a literal
``token``: secrets live in environment variables, never in the file.

Reading uses :mod:`tomllib` (``tomli`` on Python 3.10). Writing is done here
(the format is small): :func:`save_fleet` rewrites the whole file atomically,
so comments in a hand-edited file are not kept.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fleetnas.controller.atomic_files import write_text_atomic
from fleetnas.controller.fleet._errors import FleetError, FleetFileError
from fleetnas.controller.fleet._model import Device, Fleet

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

FLEET_ENV = "FLEETNAS_FLEET"
DEFAULT_FLEET_FILE = "fleet.toml"
FORMAT_VERSION = 1

# TOML key -> Device field, in the order they are written.
_KEYS: tuple[tuple[str, str], ...] = (
    ("name", "name"),
    ("class", "device_class"),
    ("address", "address"),
    ("token_env", "token_env"),
    ("tls", "tls"),
    ("tls_ca", "tls_ca"),
    ("tls_cert", "tls_cert"),
    ("tls_key", "tls_key"),
    ("tls_server_name", "tls_server_name"),
)
_FIELD_OF = dict(_KEYS)
_REQUIRED = ("name", "class", "address")
_SECRET_KEYS = ("token", "password", "secret", "tls_key_pem")

_HEADER = """\
# fleetnas fleet file (written by `fleetnas fleet add/remove` and `fleetnas agent local`).
# One [[devices]] table per agent. Secrets are references only: token_env names an
# environment variable; tls_ca / tls_cert / tls_key name PEM files (relative paths are
# relative to this file's folder). Rewriting this file does not keep comments.
"""


def fleet_path(explicit: str | Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The fleet file to use: ``explicit``, else ``$FLEETNAS_FLEET``, else ``./fleet.toml``."""
    if explicit is not None:
        return Path(explicit)
    environ = os.environ if env is None else env
    value = environ.get(FLEET_ENV)
    return Path(value) if value else Path(DEFAULT_FLEET_FILE)


def _device_from_table(path: Path, index: int, table: Any) -> Device:
    where = f"devices[{index}]"
    if not isinstance(table, dict):
        raise FleetFileError(path, f"{where}: expected a [[devices]] table")
    for key in table:
        if key in _SECRET_KEYS:
            raise FleetFileError(
                path,
                f"{where}: {key!r} is not allowed: secrets never go in the fleet file; "
                "set token_env = \"SOME_VAR\" and export SOME_VAR instead",
            )
        if key not in _FIELD_OF:
            raise FleetFileError(
                path, f"{where}: unknown key {key!r} (known: {', '.join(_FIELD_OF)})"
            )
    for key in _REQUIRED:
        if key not in table:
            raise FleetFileError(path, f"{where}: missing {key!r}")
    values: dict[str, Any] = {}
    for key, value in table.items():
        expected = bool if key == "tls" else str
        if not isinstance(value, expected):
            raise FleetFileError(
                path, f"{where}.{key}: expected a {expected.__name__}, got {value!r}"
            )
        values[_FIELD_OF[key]] = value
    try:
        return Device(**values)
    except FleetError as exc:
        raise FleetFileError(path, f"{where}: {exc}") from None


def parse_fleet(text: str, path: Path) -> Fleet:
    """Parse fleet-file text; ``path`` is recorded and used in error messages."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FleetFileError(path, f"not valid TOML: {exc}") from None
    except RecursionError:
        # tomllib parses nested arrays/tables recursively; a fleet file needs two levels.
        raise FleetFileError(
            path, "values are nested too deeply to be a fleet file (see docs/fleet.md for the "
            "format: [[devices]] tables of strings and booleans)"
        ) from None
    version = doc.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise FleetFileError(
            path, f"version {version!r} is not supported (this fleetnas reads {FORMAT_VERSION})"
        )
    unknown = set(doc) - {"version", "devices"}
    if unknown:
        raise FleetFileError(path, f"unknown top-level keys: {', '.join(sorted(unknown))}")
    tables = doc.get("devices", [])
    if not isinstance(tables, list):
        raise FleetFileError(path, "'devices' must be an array of [[devices]] tables")
    devices = [_device_from_table(path, i, t) for i, t in enumerate(tables)]
    try:
        return Fleet(tuple(devices), path)
    except FleetError as exc:
        raise FleetFileError(path, str(exc)) from None


def load_fleet(path: str | Path, *, missing_ok: bool = False) -> Fleet:
    """Read the fleet file at ``path``.

    A missing file is an empty fleet when ``missing_ok``, else a
    :class:`FleetFileError` that says how to create one. Raises
    :class:`FleetFileError` for a malformed file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return Fleet((), path)
        raise FleetFileError(
            path,
            "no such fleet file: create one with `fleetnas fleet add NAME --address HOST:PORT "
            "--class CLASS` or start local agents with `fleetnas agent local`",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetFileError(path, f"cannot read: {exc}") from None
    return parse_fleet(text, path)


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string (quoted, with every control character escaped)."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def dump_fleet(fleet: Fleet) -> str:
    """The fleet as fleet-file text (parses back to an equal fleet)."""
    lines = [_HEADER, f"version = {FORMAT_VERSION}"]
    for device in fleet.devices:
        lines.append("")
        lines.append("[[devices]]")
        for key, attr in _KEYS:
            value = getattr(device, attr)
            if value is None or (key == "tls" and value is False):
                continue
            rendered = ("true" if value else "false") if isinstance(value, bool) else toml_string(value)
            lines.append(f"{key} = {rendered}")
    return "\n".join(lines) + "\n"


def save_fleet(fleet: Fleet, path: str | Path | None = None) -> Path:
    """Write ``fleet`` to ``path`` (default: ``fleet.path``) atomically; return the path."""
    target = Path(path) if path is not None else fleet.path
    if target is None:
        raise ValueError("save_fleet: no path given and the fleet has none")
    return write_text_atomic(target, dump_fleet(fleet))
