"""``--name``, ``--tag k=v`` and ``--rename`` of ``fleetnas measure``: user models with names.

The flags reach the command as one :class:`Naming` (parameter ``naming``).
:meth:`Naming.check` validates them before any work (a bad ``--tag`` or
name is a usage error naming the fix); :meth:`Naming.apply` reads each
model's identity (:func:`~fleetnas.controller.compress.model_identity`) and
stores it under the cost DB's naming rule (see
:mod:`fleetnas.controller.costdb._user_models`), before anything is
measured, so a name conflict costs no device time. The compression library
(onnx, torch) is imported only when a model is named.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from fleetnas.controller.cli._options import collect_params
from fleetnas.controller.costdb import CostDB, InvalidRecord
from fleetnas.controller.costdb._user_models import validate_name, validate_tags

F = TypeVar("F", bound=Callable[..., Any])


def parse_tags(values: Sequence[str]) -> dict[str, str]:
    """``("team=vision", "owner=ana")`` -> a dict; a one-line ClickException naming a bad ``--tag``."""
    tags: dict[str, str] = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or not value:
            raise click.ClickException(f"--tag {text!r}: write KEY=VALUE, e.g. --tag team=vision")
        tags[key.strip()] = value
    try:
        validate_tags(tags)
    except InvalidRecord as exc:
        raise click.ClickException(f"--tag: {exc}") from exc
    return tags


@dataclass(frozen=True)
class Naming:
    """What ``--name`` / ``--tag`` / ``--rename`` ask for (nothing when all are unset)."""

    name: str | None
    tag_texts: tuple[str, ...]
    rename: bool

    @property
    def wanted(self) -> bool:
        """Whether any model is to be named or tagged."""
        return self.name is not None or bool(self.tag_texts)

    def check(self, models: Sequence[Path]) -> None:
        """A click error for flags that cannot apply to ``models`` (a bad name: one line)."""
        parse_tags(self.tag_texts)
        if self.rename and self.name is None:
            raise click.UsageError("--rename needs --name NEW-NAME")
        if self.name is not None:
            if len(models) != 1:
                raise click.UsageError(
                    f"--name names one model; {len(models)} were given (name them one by one)")
            try:
                validate_name(self.name)
            except InvalidRecord as exc:
                raise click.ClickException(f"--name: {exc}") from exc

    def apply(self, db: CostDB, models: Sequence[Path]) -> list[str]:
        """Name (or tag) each model in ``db``; returns one line per model saying what was
        stored. ClickException for a file that is not a model; cost-DB errors propagate."""
        if not self.wanted:
            return []
        from fleetnas.controller.compress import InvalidModel, model_identity

        lines = []
        tags = parse_tags(self.tag_texts)
        for path in models:
            try:
                ident = model_identity(path.read_bytes())
            except InvalidModel as exc:
                raise click.ClickException(f"{path}: {exc}") from exc
            name = self.name
            if name is None:
                stored = db.get_user_model(ident.sha256)
                name = stored.name if stored is not None else path.stem
            model = db.name_model(
                ident.sha256, name, tags=tags, format=ident.format, precision=ident.precision,
                inputs=ident.inputs, size_bytes=ident.size_bytes, params=ident.params,
                flops=ident.flops, rename=self.rename,
            )
            lines.append(f"{path.name}: named {model.name!r} ({ident.format}, {ident.precision}"
                         f"{', ' + format(ident.params, ',') + ' params' if ident.params else ''})")
        return lines


def naming_options(func: F) -> F:
    """``--name``, ``--tag`` (repeatable) and ``--rename``, passed on as ``naming``."""
    func = collect_params(func, "naming", Naming, ("name", "tags", "rename"))
    for option in reversed([
        click.option("--name", metavar="NAME",
                     help="Store the model under NAME, with its precision, params, FLOPs and "
                     "inputs (one model only; names are unique)."),
        click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE",
                     help="A tag of the named model; repeatable; merged with its stored tags."),
        click.option("--rename", is_flag=True,
                     help="Give a model that already has a name the new --name."),
    ]):  # fmt: skip
        func = option(func)
    return func
