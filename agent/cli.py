"""``fleetnas-agent``: run the device agent, or benchmark an ONNX file with one command.

Commands:
  serve     run the agent (gRPC) until SIGTERM/SIGINT, then drain and stop
  bench     benchmark MODEL.onnx on a running agent (--address) or on a
            throw-away local agent started on loopback for this one command
  describe  print a running agent's device description
  status    print a running agent's live status
  demo      start a local agent and benchmark the bundled reference model

The agent install has no click/rich (it must stay light), hence argparse.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

from fleetnas.agent import __version__
from fleetnas.agent.config import ADB_CLUSTERS, TOKEN_ENV, AgentConfig, ConfigError
from fleetnas.agent.errors import AgentError
from fleetnas.agent.lifeline import clean_stale, owned_prefix
from fleetnas.agent.proto_json import message_dict
from fleetnas.agent.report import format_description, format_result
from fleetnas.agent.settings_args import (
    add_settings_flags,
    build_settings,
    settings_from_namespace,
)

EPILOG_SERVE = """examples:
  fleetnas-agent serve                                  # loopback only, no token needed
  FLEETNAS_AGENT_TOKEN=s3cret fleetnas-agent serve --host 0.0.0.0 --port 50051
  fleetnas-agent serve --host 0.0.0.0 --tls-cert agent.crt --tls-key agent.key \\
      --tls-client-ca fleet-ca.crt                      # mTLS (token still via env)
  fleetnas-agent serve --port 0 --port-file /tmp/agent.port   # pick a free port
  fleetnas-agent serve --class pi4 --default-threads 4         # how this device is measured
  fleetnas-agent serve --class orin --default-provider CUDAExecutionProvider \\
      --default-provider CPUExecutionProvider
  fleetnas-agent serve --adb R5CT1234ABC --class pixel7 \\
      --adb-benchmark-binary benchmark_model=android_aarch64_benchmark_model
                                                        # serve a phone attached over ADB
"""
EPILOG_BENCH = """examples:
  fleetnas-agent bench model.onnx                       # throw-away local agent
  fleetnas-agent bench model.onnx --threads 2 --method paired
  fleetnas-agent bench model.onnx --shape x=1x3x224x224 --json
  fleetnas-agent bench model.onnx --address pi4.lan:50051   # token from $FLEETNAS_AGENT_TOKEN
"""

# The cache folders of throw-away agents (bench, demo without --address).
THROWAWAY_PREFIX = "fleetnas-agent-bench-"
# How an unset default reads in --help where "none" would mislead.
_UNSET_SHOWN = {"cache_budget_mb": "auto"}
# Settings listed once: dest, flag, type, help (defaults come from AgentConfig).
_SERVE_OPTIONS: list[tuple[str, str, type, str]] = [
    ("host", "--host", str, "interface to listen on; off loopback a token is required"),
    ("port", "--port", int, "TCP port; 0 picks a free one (see --port-file)"),
    ("tls_cert", "--tls-cert", Path, "PEM server certificate (enables TLS)"),
    ("tls_key", "--tls-key", Path, "PEM private key for --tls-cert"),
    ("tls_client_ca", "--tls-client-ca", Path, "PEM CA that client certs must chain to (mTLS)"),
    ("cache_dir", "--cache-dir", Path, "model cache, scratch and calibration folder"),
    ("cache_budget_mb", "--cache-budget-mb", int,
     "budget of the model cache in MiB (LRU eviction); auto = a quarter of the free disk where "
     "--cache-dir lives, at most 2048, at least --max-model-mb"),
    ("max_model_mb", "--max-model-mb", int, "largest model accepted"),
    ("max_queue", "--max-queue", int, "benchmarks allowed to wait behind the running one"),
    ("max_timeout_s", "--max-timeout", float, "longest wall-clock time one benchmark may take (s)"),
    ("memory_cap_mb", "--memory-cap-mb", int, "memory cap of a benchmark worker process"),
    ("host_fingerprint", "--host-fingerprint", str,
     "override the host fingerprint (give VMs that share one machine the same value)"),
    ("grpc_workers", "--grpc-workers", int,
     "gRPC handler threads; 0 = one per RPC budget slot (--max-queue + 2 + --max-uploads + 10); "
     "fewer is refused"),
    ("max_uploads", "--max-uploads", int,
     "uploads received at once; more get RESOURCE_EXHAUSTED (AGENT_OVERLOADED)"),
    ("upload_idle_timeout_s", "--upload-idle-timeout", float,
     "cancel an upload whose client sends nothing for this long (s)"),
    ("drain_timeout_s", "--drain-timeout", float, "on shutdown, how long to let in-flight work finish"),
    ("default_threads", "--default-threads", int,
     "intra-op threads for requests that leave them unset (this device's own count)"),
    ("device_class", "--class", str, "the device class (pool) this agent belongs to, in Describe"),
    ("energy_idle_s", "--energy-idle-s", float,
     "measure this many idle seconds before each benchmark for net energy figures (0 = off)"),
    ("adb_serial", "--adb", str,
     "serve the phone with this adb serial instead of this host (docs/android.md)"),
    ("adb_path", "--adb-path", str, "the adb executable (a name on PATH or a path)"),
    ("adb_cooldown_target_c", "--adb-cooldown-target", float,
     "before each run, wait until the phone's SoC is at most this hot (°C) or stops cooling"),
    ("adb_cooldown_timeout_s", "--adb-cooldown-timeout", float,
     "longest cool-down wait before a run goes ahead with a warning (s; 0 = check once)"),
    ("adb_lock_dir", "--adb-lock-dir", Path,
     "folder of the per-phone lock files; none = $XDG_RUNTIME_DIR/fleetnas-adb, else "
     "<tmp>/fleetnas-adb-<uid>"),
    ("adb_work_dir", "--adb-work-dir", str, "the agent's folder on the phone"),
]


def _add_settings_options(p: argparse.ArgumentParser) -> None:
    add_settings_flags(p.add_argument_group("benchmark settings (unset = the agent's default)"))


def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="host:port of a running agent")
    p.add_argument("--tls-ca", type=Path, help="PEM CA to verify the agent's certificate")
    p.add_argument("--tls", action="store_true", help="use TLS with the system's CAs")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetnas-agent",
        description="fleetnas device agent: benchmarks ONNX models on this device.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="run 'fleetnas-agent COMMAND --help' for a command's options and examples",
    )
    parser.add_argument("--version", action="version", version=f"fleetnas-agent {__version__}")
    parser.add_argument("--log-format", choices=["json", "text"], default="json")
    parser.add_argument("--log-level", default="info")
    sub = parser.add_subparsers(dest="command", required=True)

    defaults = AgentConfig()
    serve = sub.add_parser("serve", help="run the agent", epilog=EPILOG_SERVE,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    for dest, flag, typ, help_text in _SERVE_OPTIONS:
        default = getattr(defaults, dest)
        shown = "%(default)s" if default not in (None, "") else _UNSET_SHOWN.get(dest, "none")
        serve.add_argument(flag, dest=dest, type=typ, default=default,
                           help=f"{help_text} (default: {shown})")
    serve.add_argument("--default-provider", dest="default_providers", action="append",
                       default=[], metavar="NAME",
                       help="execution provider for requests that leave providers unset; repeat "
                            "in order of preference (default: CPUExecutionProvider)")
    serve.add_argument("--adb-benchmark-binary", dest="adb_benchmark_binaries",
                       action="append", default=[], metavar="KIND=PATH[,LIB...]",
                       help="with --adb: a benchmark binary built for the phone, KIND "
                            "benchmark_model (.tflite) or onnxruntime_perf_test (.onnx), with "
                            "shared libraries to push beside it; repeat per kind")
    serve.add_argument("--adb-cluster", dest="adb_cluster", choices=ADB_CLUSTERS,
                       default=defaults.adb_cluster,
                       help="with --adb: the core cluster benchmarks are pinned to "
                            "(default: %(default)s)")
    serve.add_argument("--insecure", action="store_true",
                       help="allow listening off loopback without a token")
    serve.add_argument("--port-file", type=Path, help="write the bound port to this file")
    serve.add_argument("--token", default=None,
                       help=f"shared secret; prefer the {TOKEN_ENV} env var")

    bench = sub.add_parser("bench", help="benchmark an ONNX file", epilog=EPILOG_BENCH,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("model", type=Path, help="path to an .onnx file")
    _client_options(bench)
    _add_settings_options(bench)

    for name, help_text in (("describe", "print a running agent's device description"),
                            ("status", "print a running agent's live status")):
        p = sub.add_parser(name, help=help_text,
                           epilog=f"example:\n  fleetnas-agent {name} --address 127.0.0.1:50051",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        _client_options(p)

    demo = sub.add_parser("demo", help="benchmark the bundled reference model on a local agent",
                          epilog="example:\n  fleetnas-agent demo",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--json", action="store_true")
    return parser


def _serve(args: argparse.Namespace) -> int:
    from fleetnas.agent.server import create_server

    values = {f.name: getattr(args, f.name) for f in fields(AgentConfig) if hasattr(args, f.name)}
    values["token"] = args.token or os.environ.get(TOKEN_ENV) or None
    values["insecure"] = args.insecure
    values["default_providers"] = tuple(args.default_providers)
    values["adb_benchmark_binaries"] = tuple(args.adb_benchmark_binaries)
    config = AgentConfig(**values)
    if args.port_file and not args.port_file.parent.is_dir():
        raise ConfigError(f"--port-file: no such folder: {args.port_file.parent}")
    agent = create_server(config)
    if args.port_file:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(str(agent.port))
        tmp.replace(args.port_file)
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop_requested.wait(0.5):
        pass
    agent.stop()
    return 0


def _client_for(args: argparse.Namespace):
    from fleetnas.agent.client import AgentClient

    root = args.tls_ca.read_bytes() if getattr(args, "tls_ca", None) else None
    return AgentClient(args.address, token=os.environ.get(TOKEN_ENV) or None,
                       root_certificates=root, tls=bool(getattr(args, "tls", False)))


def _print(message, as_json: bool, text: str) -> None:
    if as_json:
        print(json.dumps(message_dict(message), indent=2))
    else:
        print(text)


def _bench_on(client, model_bytes: bytes, settings, as_json: bool) -> None:
    sha = client.ensure_model(model_bytes)
    result = client.benchmark(sha, settings)
    _print(result, as_json, format_result(result))


@contextmanager
def _throwaway_cache() -> Iterator[Path]:
    """A fresh cache folder in the temp folder, removed on exit.

    Named after this process (``fleetnas-agent-bench-<pid>-<start>-*``), so
    that the next one removes the folders of those that were killed before
    they could remove their own (``lifeline.clean_stale``).
    """
    parent = Path(tempfile.gettempdir())
    clean_stale(parent, THROWAWAY_PREFIX)
    path = Path(tempfile.mkdtemp(prefix=owned_prefix(THROWAWAY_PREFIX), dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _with_local_agent(fn) -> None:
    """Run ``fn(client)`` against a throw-away agent on 127.0.0.1:0."""
    from fleetnas.agent.client import AgentClient
    from fleetnas.agent.server import create_server

    with _throwaway_cache() as cache:
        agent = create_server(AgentConfig(host="127.0.0.1", port=0, cache_dir=cache))
        try:
            with AgentClient(f"127.0.0.1:{agent.port}") as client:
                fn(client)
        finally:
            agent.stop(drain_timeout_s=5)


def _bench(args: argparse.Namespace) -> int:
    if not args.model.is_file():
        raise SystemExit(f"fleetnas-agent: no such file: {args.model}")
    settings = settings_from_namespace(args)
    data = args.model.read_bytes()
    if args.address:
        with _client_for(args) as client:
            _bench_on(client, data, settings, args.json)
    else:
        _with_local_agent(lambda client: _bench_on(client, data, settings, args.json))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from fleetnas.agent.reference import default_reference_path

    data = default_reference_path().read_bytes()

    def run(client) -> None:
        if not args.json:
            print(format_description(client.describe()), end="\n\n")
        for method in ("plain", "paired"):
            if not args.json:
                print(f"== reference model, method {method} ==")
            _bench_on(client, data, build_settings(method=method), args.json)
            if not args.json:
                print()

    _with_local_agent(run)
    return 0


def _describe_or_status(args: argparse.Namespace) -> int:
    if not args.address:
        raise SystemExit(f"fleetnas-agent {args.command}: --address HOST:PORT is required")
    with _client_for(args) as client:
        if args.command == "describe":
            desc = client.describe()
            _print(desc, args.json, format_description(desc))
        else:
            st = client.status()
            _print(st, True, "")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from fleetnas.agent.logs import configure

    args = _parser().parse_args(argv)
    # One-shot commands run an embedded agent whose request logs would only
    # repeat the one-line error printed below.
    one_shot = args.command in ("bench", "demo") and args.log_level == "info"
    configure(args.log_format, "critical" if one_shot else args.log_level)
    handlers = {"serve": _serve, "bench": _bench, "demo": _demo,
                "describe": _describe_or_status, "status": _describe_or_status}
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        print(f"fleetnas-agent: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"fleetnas-agent: {exc}", file=sys.stderr)
        return 2
    except AgentError as exc:
        reason = exc.reason_name.removeprefix("ERROR_REASON_").lower()
        label = "" if reason == "unspecified" else f"{reason}: "
        print(f"fleetnas-agent: {label}{exc.message}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (e.g. `| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a path given on the command line: cache dir, port file, PEM files
        where = f": {exc.filename}" if exc.filename else ""
        print(f"fleetnas-agent: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
