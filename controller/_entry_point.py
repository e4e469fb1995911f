"""The ``fleetnas`` console script: the controller CLI, or one line on how to install it.

``pip install 'fleetnas[agent]'`` installs both console scripts of the one
distribution, but not the controller's dependencies (click, rich,
sqlite-utils, torch, ...). This module imports nothing of them itself, so on
an agent-only install ``fleetnas`` prints one line naming
``pip install 'fleetnas[controller]'`` instead of a ``ModuleNotFoundError``
traceback. Anything else missing is a real bug and is raised as it is.
"""

from __future__ import annotations

import sys

#: top-level modules of the ``controller`` extra (pyproject.toml) that an agent-only install lacks
CONTROLLER_DEPENDENCIES = frozenset(
    {"click", "rich", "sqlite_utils", "torch", "onnx", "matplotlib", "tomli"}
)
INSTALL_HINT = "pip install 'fleetnas[controller]'"
EXIT_MISSING_DEPENDENCY = 1


def missing_dependency_message(exc: ModuleNotFoundError) -> str | None:
    """The one-line hint when ``exc`` is about a controller dependency, else ``None``."""
    top = (exc.name or "").partition(".")[0]
    if top not in CONTROLLER_DEPENDENCIES:
        return None
    return (
        f"fleetnas: the controller's dependencies are not installed ({top} is missing); "
        f"install them with: {INSTALL_HINT}  (on a device, the agent is fleetnas-agent)"
    )


def main() -> None:
    """Run ``fleetnas`` (``fleetnas.controller.cli:main``) with the process's arguments."""
    try:
        from fleetnas.controller.cli import main as cli
    except ModuleNotFoundError as exc:
        message = missing_dependency_message(exc)
        if message is None:
            raise
        print(message, file=sys.stderr)
        raise SystemExit(EXIT_MISSING_DEPENDENCY) from None
    cli()
