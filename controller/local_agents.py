"""Start and stop agents on loopback as subprocesses: the embedded default.

``fleetnas agent local``, ``fleetnas measure --local``, the tests and the
benches all run real ``fleetnas-agent serve`` processes through this module,
so a new user can measure with no set-up and tests exercise the real wire.

Each agent listens on ``127.0.0.1`` on a port the OS picks (``--port 0
--port-file``) unless a port is given (a restart on the same port). Its
token, if any, is passed through the environment, never on the command line.
Its output goes to ``agent.log`` in its cache folder. Every agent runs in its
own session, so a Ctrl-C in the terminal reaches only the controller, which
then stops the agents gracefully (SIGTERM: the agent drains, then exits).

Every agent dies with the process that started it, however that process dies
(``fleetnas.agent.lifeline``: parent-death signal plus a pipe): a killed
controller leaves no agent serving on loopback. :func:`temporary_agent_dir`
is the throw-away folder of such an agent; the next one removes the folders
whose owner died.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fleetnas.agent.client import AgentClient
from fleetnas.agent.config import TOKEN_ENV
from fleetnas.agent.errors import AgentError
from fleetnas.agent.lifeline import Tethered, clean_stale, owned_prefix, spawn

LOOPBACK = "127.0.0.1"
DEFAULT_STARTUP_TIMEOUT_S = 60.0
DEFAULT_STOP_TIMEOUT_S = 15.0
TEMP_DIR_PREFIX = "fleetnas-local-agent-"
_LOG_TAIL_CHARS = 2000


class LocalAgentError(RuntimeError):
    """A local agent did not start (the message carries the tail of its log)."""


@dataclass
class LocalAgent:
    """One agent subprocess on loopback. ``port`` is known once it is ready."""

    name: str
    cache_dir: Path
    tether: Tethered = field(repr=False)
    port_file: Path
    log_path: Path
    host_fingerprint: str | None = None
    token: str | None = field(default=None, repr=False)
    extra_args: tuple[str, ...] = ()
    port: int = 0

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.tether.process

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return text[-chars:]

    def wait_ready(self, timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S) -> LocalAgent:
        """Wait for the port file, then for gRPC health SERVING; raise LocalAgentError."""
        deadline = time.monotonic() + timeout_s
        while not self.port:
            if not self.running():
                raise LocalAgentError(
                    f"local agent {self.name!r} exited with code {self.process.returncode} "
                    f"before listening; its log ({self.log_path}) ends with:\n{self.log_tail()}"
                )
            try:
                text = self.port_file.read_text().strip()
            except FileNotFoundError:
                text = ""
            if text.isdigit():
                self.port = int(text)
                break
            if time.monotonic() > deadline:
                self.kill()
                raise LocalAgentError(
                    f"local agent {self.name!r} did not start within {timeout_s:g} s; "
                    f"its log ({self.log_path}) ends with:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        with AgentClient(self.address, call_timeout_s=5.0) as client:
            while True:
                try:
                    if client.health(timeout=2.0):
                        return self
                except AgentError:
                    pass
                if not self.running() or time.monotonic() > deadline:
                    self.kill()
                    raise LocalAgentError(
                        f"local agent {self.name!r} on port {self.port} never became healthy; "
                        f"its log ({self.log_path}) ends with:\n{self.log_tail()}"
                    )
                time.sleep(0.05)

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (graceful drain), then SIGKILL after ``timeout_s``; return the exit code."""
        if self.running():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.tether.release()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL now (a crash, as far as the controller can tell) and reap the process."""
        if self.running():
            self.process.kill()
        self.process.wait()
        self.tether.release()


def _child_env(token: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(TOKEN_ENV, None)
    if token:
        env[TOKEN_ENV] = token
    return env


def spawn_local_agent(
    name: str,
    cache_dir: str | Path,
    *,
    port: int = 0,
    host_fingerprint: str | None = None,
    token: str | None = None,
    extra_args: Sequence[str] = (),
    python: str | None = None,
) -> LocalAgent:
    """Start one agent process and return at once (call :meth:`LocalAgent.wait_ready`).

    ``extra_args`` are further ``fleetnas-agent serve`` flags (e.g.
    ``("--memory-cap-mb", "512")``).
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    port_file = cache / "agent.port"
    port_file.unlink(missing_ok=True)
    log_path = cache / "agent.log"
    argv = [
        python or sys.executable, "-m", "fleetnas.agent.lifeline", "fleetnas.agent.cli",
        "--log-format", "text",
        "serve", "--host", LOOPBACK, "--port", str(port),
        "--port-file", str(port_file), "--cache-dir", str(cache),
    ]
    if host_fingerprint:
        argv += ["--host-fingerprint", host_fingerprint]
    argv += list(extra_args)
    with open(log_path, "ab") as log:
        tether = spawn(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(token),
            start_new_session=True,
        )
    return LocalAgent(
        name=name,
        cache_dir=cache,
        tether=tether,
        port_file=port_file,
        log_path=log_path,
        host_fingerprint=host_fingerprint,
        token=token,
        extra_args=tuple(extra_args),
    )


def start_local_agents(
    count: int,
    base_dir: str | Path,
    *,
    name_prefix: str = "local",
    host_fingerprints: Sequence[str | None] | None = None,
    token: str | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> list[LocalAgent]:
    """Start ``count`` agents (in parallel) named ``{prefix}-0`` ... and wait until all serve.

    Agent ``i`` keeps its cache in ``base_dir/{name}``. ``host_fingerprints``
    (one per agent, ``None`` = the real one) lets tests pose as several hosts
    or as several agents of one host. On failure every started agent is killed.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    fingerprints = list(host_fingerprints) if host_fingerprints is not None else [None] * count
    if len(fingerprints) != count:
        raise ValueError(f"{len(fingerprints)} host fingerprints for {count} agents")
    agents: list[LocalAgent] = []
    try:
        for i in range(count):
            name = f"{name_prefix}-{i}"
            agents.append(
                spawn_local_agent(
                    name, Path(base_dir) / name, host_fingerprint=fingerprints[i],
                    token=token, extra_args=extra_args,
                )
            )
        for agent in agents:
            agent.wait_ready(startup_timeout_s)
    except BaseException:
        for agent in agents:
            agent.kill()
        raise
    return agents


def restart_local_agent(
    agent: LocalAgent, *, startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S
) -> LocalAgent:
    """Start ``agent`` again on the same port, cache folder and fingerprint (it must be stopped).

    Retries the bind for a few seconds: the port may still be held briefly
    after the old process died.
    """
    if agent.running():
        raise ValueError(f"local agent {agent.name!r} (pid {agent.pid}) is still running")
    deadline = time.monotonic() + startup_timeout_s
    while True:
        new = spawn_local_agent(
            agent.name, agent.cache_dir, port=agent.port,
            host_fingerprint=agent.host_fingerprint, token=agent.token,
            extra_args=agent.extra_args,
        )
        try:
            return new.wait_ready(max(1.0, deadline - time.monotonic()))
        except LocalAgentError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stop_local_agents(
    agents: Sequence[LocalAgent], timeout_s: float = DEFAULT_STOP_TIMEOUT_S
) -> None:
    """Stop every agent gracefully (all SIGTERMed first, so they drain in parallel)."""
    for agent in agents:
        if agent.running():
            agent.process.send_signal(signal.SIGTERM)
    for agent in agents:
        agent.stop(timeout_s)


@contextmanager
def temporary_agent_dir(root: str | Path | None = None) -> Iterator[Path]:
    """A fresh folder for a throw-away agent, removed on exit.

    Created under ``root`` (default: the system temp folder) as
    ``fleetnas-local-agent-<owner>-*``. Folders of that name whose owner
    process is dead (it was killed before it could remove them) are removed
    first.
    """
    parent = Path(root) if root is not None else Path(tempfile.gettempdir())
    clean_stale(parent, TEMP_DIR_PREFIX)
    path = Path(tempfile.mkdtemp(prefix=owned_prefix(TEMP_DIR_PREFIX), dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def local_agents(
    count: int, base_dir: str | Path, **kwargs: object
) -> Iterator[list[LocalAgent]]:
    """Context manager around :func:`start_local_agents` / :func:`stop_local_agents`."""
    agents = start_local_agents(count, base_dir, **kwargs)  # type: ignore[arg-type]
    try:
        yield agents
    finally:
        stop_local_agents(agents)
