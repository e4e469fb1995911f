"""Fixtures: real ``fleetnas-agent serve`` subprocesses on loopback, and fleets of them."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import click
import pytest

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.cli import SUBCOMMANDS, main
from fleetnas.controller.fleet import Device, Fleet
from fleetnas.controller.local_agents import (
    LocalAgent,
    restart_local_agent,
    start_local_agents,
    stop_local_agents,
)


def tiny_settings(**overrides: object) -> agent_pb2.BenchmarkSettings:
    """Few runs: enough to exercise the path, fast enough for a test."""
    values: dict[str, object] = dict(
        warmup_runs=2, min_runs=5, max_runs=30, min_duration_s=0.0, max_duration_s=0.5,
        timeout_s=60.0,
    )
    values.update(overrides)
    return agent_pb2.BenchmarkSettings(**values)  # type: ignore[arg-type]


class AgentPool:
    """Starts and restarts local agents for one test; every one is stopped at teardown.

    Agents are named ``a0``, ``a1``, ... in start order across calls.
    """

    def __init__(self, base_dir: Path) -> None:
        self._base_dir = base_dir
        self._all: list[LocalAgent] = []
        self._count = 0

    def start(
        self,
        count: int,
        *,
        host_fingerprints: Sequence[str | None] | None = None,
        token: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> list[LocalAgent]:
        agents = start_local_agents(
            count, self._base_dir / f"batch{self._count}", name_prefix="agent",
            host_fingerprints=host_fingerprints, token=token, extra_args=extra_args,
        )
        for agent in agents:
            agent.name = f"a{self._count}"
            self._count += 1
            self._all.append(agent)
        return agents

    def restart(self, agent: LocalAgent) -> LocalAgent:
        """Start a stopped agent again on the same port, cache and fingerprint."""
        new = restart_local_agent(agent)
        self._all.append(new)
        return new

    def stop_all(self) -> None:
        stop_local_agents([a for a in self._all if a.running()], timeout_s=10)


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[AgentPool]:
    pool = AgentPool(tmp_path / "agents")
    yield pool
    pool.stop_all()


def fleet_of(
    agents: Sequence[LocalAgent],
    device_class: str = "cpu",
    *,
    token_env: str | None = None,
    path: Path | None = None,
) -> Fleet:
    """A fleet with one device per agent, named as the agents, all of one class."""
    return Fleet.of(
        (Device(a.name, device_class, a.address, token_env=token_env) for a in agents), path
    )


OWN_COMMANDS = {
    "fleet": "fleetnas.controller.cli.fleet:fleet",
    "measure": "fleetnas.controller.cli.measure:measure",
    "agent": "fleetnas.controller.cli.agent:agent",
}


def fleetnas_cli() -> click.Group:
    """The ``fleetnas`` root group with the fleet, measure and agent commands on it.

    Adds them the way the root registers them, only where the root does not yet.
    """
    for name, target in OWN_COMMANDS.items():
        if name not in SUBCOMMANDS and name not in main.commands:
            module_name, attribute = target.split(":")
            main.add_command(getattr(importlib.import_module(module_name), attribute), name)
    return main


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    """A real local Ray instance for the module (``ray.init(num_cpus=2)``), shut down after;
    its workers import this checkout (and the tests' modules) through PYTHONPATH."""
    import ray

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), old]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
