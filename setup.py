"""Package discovery for the design card's layout (metadata lives in pyproject.toml).

The repository keeps ``agent/``, ``controller/`` and ``protos/`` at the top
level, but installs them as ``fleetnas.agent``, ``fleetnas.controller`` and
``fleetnas.api`` so they never collide with other packages. Subpackages are
found by walking for ``__init__.py``, so a new one needs no edit here.
"""

from pathlib import Path

from setuptools import setup

ROOTS = {
    "fleetnas.agent": "agent",
    "fleetnas.controller": "controller",
    "fleetnas.api": "protos/fleetnas/api",
}


def _discover() -> tuple[list[str], dict[str, str]]:
    here = Path(__file__).parent
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for name, folder in ROOTS.items():
        base = here / folder
        for init in sorted(base.rglob("__init__.py")):
            rel = init.parent.relative_to(base)
            pkg = ".".join([name, *rel.parts]) if rel.parts else name
            packages.append(pkg)
        package_dir[name] = folder
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _discover()
setup(packages=PACKAGES, package_dir=PACKAGE_DIR)
