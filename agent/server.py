"""Build and run the agent's gRPC server.

:func:`create_server` builds everything (device shell, model store, job
gate, servicer, health, auth, RPC budgets, TLS) and binds the address; it
returns an :class:`AgentServer` whose ``port`` is the bound port (tests bind
port 0).
The thread pool has one thread per RPC budget slot (see ``rpc_budgets.py``),
so a flood of one kind of call never starves the others.
:meth:`AgentServer.stop` is the graceful shutdown: health goes NOT_SERVING,
new benchmarks are refused, in-flight work drains, then the server stops and
the shell is closed (worker processes killed, a phone's lock released).

The device shell (``shells.open_shell``): a phone with ``--adb SERIAL``,
else this host. On this host the agent probes NVML, Jetson and RAPL once
(:meth:`DeviceTelemetry.probe`) and keeps the sources that read something
for its lifetime; ``create_server(config, telemetry=...)`` hands it others
(tests pass sources over fake NVML modules and sysfs trees), and
``runner_class`` another :class:`BenchmarkRunner`. The shell owns both and
closes them on stop.
"""

from __future__ import annotations

import dataclasses
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleetnas.agent._health import AgentHealthServicer
from fleetnas.agent.auth import TokenAuthInterceptor
from fleetnas.agent.config import AgentConfig, ConfigError, auto_cache_budget_mb
from fleetnas.agent.device_telemetry import DeviceTelemetry
from fleetnas.agent.job_gate import JobGate
from fleetnas.agent.logs import get_logger
from fleetnas.agent.model_store import ModelStore
from fleetnas.agent.rpc_budgets import AGENT_SERVICE, RpcBudgets, agent_budgets
from fleetnas.agent.runner import BenchmarkRunner
from fleetnas.agent.service import AgentService
from fleetnas.agent.shells import DeviceShell, LocalShell, open_shell
from fleetnas.api.v1 import agent_pb2, agent_pb2_grpc

SERVICE_NAME = AGENT_SERVICE
# Room for one ~1 MB upload chunk plus framing; whole models never travel in
# one message.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# gRPC's own limit of RPCs in progress (running, queued for a thread or open
# streams), a memory backstop across all connections; past it gRPC refuses
# calls itself (RESOURCE_EXHAUSTED without a reason: AgentOverloaded to the
# client). Far above the budgets' sum: below it, the budgets alone decide.
# (A per-connection HTTP/2 stream limit is no help: clients that race past it
# see UNAVAILABLE "RST_STREAM", which reads as "agent down".)
MAX_CONCURRENT_RPCS = 1024


@dataclass
class AgentServer:
    """A started agent. ``port`` is the bound port; call ``stop()`` to drain and stop."""

    server: grpc.Server
    port: int
    config: AgentConfig
    service: AgentService
    health: AgentHealthServicer
    gate: JobGate
    shell: DeviceShell
    budgets: RpcBudgets
    _stopped: threading.Event

    @property
    def runner(self) -> BenchmarkRunner | None:
        """The worker runner of an agent on this host; None for a phone agent."""
        return self.shell.runner if isinstance(self.shell, LocalShell) else None

    @property
    def telemetry(self) -> DeviceTelemetry | None:
        """The telemetry sources of an agent on this host; None for a phone agent."""
        return self.shell.telemetry if isinstance(self.shell, LocalShell) else None

    def stop(self, drain_timeout_s: float | None = None) -> None:
        """Graceful shutdown: NOT_SERVING, refuse new work, drain, stop, close the shell."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        log = get_logger()
        log.info("draining")
        self.health.enter_graceful_shutdown()  # NOT_SERVING for every service, for good
        self.service.serving = False
        self.gate.close()
        timeout = self.config.drain_timeout_s if drain_timeout_s is None else drain_timeout_s
        drained = self.gate.wait_idle(timeout)
        self.server.stop(grace=2.0).wait()
        self.shell.close()
        log.info("stopped", extra={"drained": drained})

    def wait(self) -> None:
        self.server.wait_for_termination()


def _credentials(config: AgentConfig) -> grpc.ServerCredentials | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    key = Path(config.tls_key).read_bytes()
    cert = Path(config.tls_cert).read_bytes()
    client_ca = Path(config.tls_client_ca).read_bytes() if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def _limits(config: AgentConfig) -> agent_pb2.AgentLimits:
    return agent_pb2.AgentLimits(
        max_model_bytes=config.max_model_bytes,
        cache_budget_bytes=config.cache_budget_bytes,
        max_timeout_s=config.max_timeout_s,
        memory_cap_bytes=config.memory_cap_bytes,
        max_queue=config.max_queue,
        auth_required=bool(config.token),
        tls=config.tls,
    )


def _grpc_server(config: AgentConfig, budgets: RpcBudgets) -> grpc.Server:
    """The gRPC server: one thread per budget slot, auth first, then the budgets."""
    # Authentication first: unauthenticated calls never spend a budget.
    interceptors: list[grpc.ServerInterceptor] = (
        [TokenAuthInterceptor(config.token)] if config.token else []
    )
    interceptors.append(budgets)
    return grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=config.handler_threads, thread_name_prefix="fleetnas-agent"
        ),
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
    )


def _description(config: AgentConfig, shell: DeviceShell) -> agent_pb2.DeviceDescription:
    """The shell's description with the agent's limits and device-side defaults."""
    description = shell.describe()
    config.check_default_providers(description)
    description.limits.CopyFrom(_limits(config))
    description.defaults.CopyFrom(config.defaults())
    return description


def create_server(
    config: AgentConfig,
    *,
    telemetry: DeviceTelemetry | None = None,
    runner_class: type[BenchmarkRunner] = BenchmarkRunner,
) -> AgentServer:
    """Validate ``config``, build the agent and start serving on its address.

    ``telemetry`` defaults to the sources found on this machine. Raises
    ConfigError for unsafe or inconsistent settings (a ``--default-provider``
    no runtime has) and when the address cannot be bound; a phone agent
    raises the phone's named errors (``agent/android``) when it cannot start.
    """
    config.validate()
    # Workers and the zygote run in folders of their own: every path they get must be
    # absolute, so a relative --cache-dir is taken relative to where the agent started.
    config = dataclasses.replace(config, cache_dir=Path(config.cache_dir).absolute())
    if config.cache_budget_mb is None:  # sized once, to the disk as it is at start
        config = dataclasses.replace(config, cache_budget_mb=auto_cache_budget_mb(
            config.cache_dir, config.max_model_mb))
    shell = open_shell(config, telemetry=telemetry, runner_class=runner_class)
    try:
        description = _description(config, shell)
        cache_dir = Path(config.cache_dir)
        store = ModelStore(
            cache_dir / "models",
            budget_bytes=config.cache_budget_bytes,
            max_model_bytes=config.max_model_bytes,
        )
    except BaseException:
        shell.close()
        raise
    gate = JobGate(config.max_queue)
    service = AgentService(config, store=store, gate=gate, shell=shell, description=description)
    budgets = agent_budgets(config.thread_budgets())
    server = _grpc_server(config, budgets)
    agent_pb2_grpc.add_AgentServicer_to_server(service, server)
    health_servicer = AgentHealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    creds = _credentials(config)
    try:
        if creds is None:
            port = server.add_insecure_port(config.address)
        else:
            port = server.add_secure_port(config.address, creds)
    except RuntimeError as exc:
        shell.close()
        raise ConfigError(f"cannot listen on {config.address}: {exc}") from exc
    if port == 0:
        shell.close()
        raise ConfigError(f"cannot listen on {config.address}: address in use or not local")
    server.start()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    get_logger().info(
        "serving",
        extra={
            "address": f"{config.host}:{port}",
            "tls": config.tls,
            "auth": bool(config.token),
            "host_fingerprint": description.host_fingerprint,
        },
    )
    return AgentServer(
        server=server,
        port=port,
        config=config,
        service=service,
        health=health_servicer,
        gate=gate,
        shell=shell,
        budgets=budgets,
        _stopped=threading.Event(),
    )
