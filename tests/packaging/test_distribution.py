"""The distribution a plain ``pip install`` builds, and the agent's light footprint."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contains_every_module_asset_and_generated_stub(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("fleetnas-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for folder, package in (("agent", "fleetnas/agent"), ("controller", "fleetnas/controller"),
                            ("protos/fleetnas/api", "fleetnas/api")):
        for path in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in path.parts:
                expected.add(f"{package}/{path.relative_to(ROOT / folder).as_posix()}")
    expected |= {"fleetnas/agent/assets/reference.onnx", "fleetnas/api/v1/agent.proto",
                 "fleetnas/api/v1/agent_pb2.pyi"}
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing}"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "fleetnas-agent = fleetnas.agent.cli:main" in text
    assert "fleetnas = fleetnas.controller._entry_point:main" in text


AGENT_ONLY = """
import importlib, pkgutil, sys
class Block:
    # the agent install has none of these: importing one is a packaging bug
    banned = {"torch", "onnx", "sqlite_utils", "click", "rich", "matplotlib"}
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.banned:
            raise ImportError(f"agent imported {name}")
sys.meta_path.insert(0, Block())
import fleetnas.agent
for mod in pkgutil.iter_modules(fleetnas.agent.__path__):
    importlib.import_module(f"fleetnas.agent.{mod.name}")
from fleetnas.agent.cli import main
try:
    main(["--help"])
except SystemExit as e:
    assert e.code == 0
print("agent-ok")
"""


def test_agent_imports_without_controller_dependencies():
    proc = subprocess.run([sys.executable, "-c", AGENT_ONLY], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "agent-ok" in proc.stdout


def test_generated_code_is_fresh():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


AGENT_ONLY_CONTROLLER_SCRIPT = """
import sys
class Block:
    # an agent-only install (pip install 'fleetnas[agent]'): none of these are there
    banned = {"torch", "onnx", "sqlite_utils", "click", "rich", "matplotlib"}
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.banned:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
sys.argv = ["fleetnas", "db", "stats"]
from fleetnas.controller._entry_point import main
main()
"""


def test_fleetnas_script_on_an_agent_only_install_names_the_controller_extra():
    proc = subprocess.run([sys.executable, "-c", AGENT_ONLY_CONTROLLER_SCRIPT],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "pip install 'fleetnas[controller]'" in lines[0] and "click" in lines[0]
    assert "Traceback" not in proc.stderr


def test_fleetnas_script_runs_the_controller_cli_when_installed(tmp_path):
    script = "import sys\nsys.argv = ['fleetnas', '--help']\n" \
             "from fleetnas.controller._entry_point import main\nmain()\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "measure" in proc.stdout and "search" in proc.stdout
