"""Device shells: where the agent's benchmarks run (this host, or a phone over ADB).

See ``_base.py`` for the contract. :func:`open_shell` picks the shell the
agent's configuration asks for; the service talks only to the contract.
"""

from __future__ import annotations

from fleetnas.agent.config import AgentConfig
from fleetnas.agent.device_telemetry import DeviceTelemetry
from fleetnas.agent.runner import BenchmarkRunner
from fleetnas.agent.shells._base import DeviceShell
from fleetnas.agent.shells._local import LocalShell

__all__ = ["AndroidShell", "DeviceShell", "LocalShell", "open_shell"]


def open_shell(
    config: AgentConfig,
    *,
    telemetry: DeviceTelemetry | None = None,
    runner_class: type[BenchmarkRunner] = BenchmarkRunner,
) -> DeviceShell:
    """The phone of ``--adb SERIAL`` (:class:`AndroidShell`), else this host
    (:class:`LocalShell` with ``telemetry`` and ``runner_class``). Raises what they raise.

    Telemetry sources measure this host, so a phone agent takes none: ValueError.
    """
    if config.adb_serial:
        if telemetry is not None:
            telemetry.close()
            raise ValueError("telemetry sources measure this host; a phone agent has none")
        from fleetnas.agent.shells._android import AndroidShell

        return AndroidShell.open(config)
    return LocalShell.open(config, telemetry=telemetry, runner_class=runner_class)


def __getattr__(name: str) -> object:
    # AndroidShell lives behind a lazy import: a host agent never loads agent/android.
    if name == "AndroidShell":
        from fleetnas.agent.shells._android import AndroidShell

        return AndroidShell
    raise AttributeError(name)
