"""What the ``fleetnas lut`` CLI tests share: the tiny NAS-Bench-201 space, tiny benchmark
settings, ``invoke`` and one loopback agent with its fleet file, cost DB path and ONNX cache.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner, Result

from fleetnas.controller.cli import main
from fleetnas.controller.fleet import Device, Fleet, save_fleet
from fleetnas.controller.local_agents import LocalAgent, start_local_agents, stop_local_agents
from fleetnas.controller.spaces import get_space

SPACE_CONFIG = {"channels": 4, "cells_per_stage": 1}
SPACE = get_space("nb201", SPACE_CONFIG)
SPACE_ARGS = ["--space", "nb201", "--space-config", json.dumps(SPACE_CONFIG)]
TINY = ["--warmup", "2", "--min-runs", "5", "--max-runs", "20", "--min-duration", "0",
        "--max-duration", "0.2"]


def invoke(*args: str) -> Result:
    """``fleetnas ARGS`` in-process, 240 columns wide; exceptions propagate."""
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "240"}, catch_exceptions=False)


@dataclass
class LutCli:
    """One agent (device ``a0``), its fleet file, a cost DB path, the ONNX cache, and
    the outputs a fixture keeps for its tests."""

    agent: LocalAgent
    root: Path
    db_path: Path
    fleet_path: Path
    cache_dir: Path
    outputs: dict[str, Result] = field(default_factory=dict)

    def args(self, *more: str) -> list[str]:
        return ["--db", str(self.db_path), *more]

    def device_args(self) -> list[str]:
        return ["--device", "a0", "--fleet", str(self.fleet_path), "--cache-dir",
                str(self.cache_dir)]

    def build(self, *more: str) -> Result:
        """``lut build`` of SPACE on a0 with TINY settings and ``more``; asserts it worked."""
        result = invoke(*self.args("lut", "build", *SPACE_ARGS, *self.device_args(), *TINY,
                                   "--quiet", *more))
        assert result.exit_code == 0, result.output
        return result


@contextmanager
def lut_cli(root: Path) -> Iterator[LutCli]:
    """A LutCli under ``root``; its agent is stopped on exit."""
    (agent,) = start_local_agents(1, root / "agents", name_prefix="a")
    try:
        fleet_path = root / "fleet.toml"
        save_fleet(Fleet.of([Device("a0", "cpu", agent.address)]), fleet_path)
        yield LutCli(agent, root, root / "cost.db", fleet_path, root / "onnx")
    finally:
        stop_local_agents([agent])
