"""``fleetnas-agent`` as a real process: serve + SIGTERM drain, one-command bench, TLS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fleetnas.agent import errors
from fleetnas.agent.cli import THROWAWAY_PREFIX
from fleetnas.agent.client import AgentClient
from fleetnas.agent.lifeline import owned_prefix
from tests import onnx_models
from tests.agent.agent_process import wait_all_gone, wait_for, worker_pids
from tests.agent.conftest import fast_settings

AGENT = [sys.executable, "-m", "fleetnas.agent.cli"]


def _wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"agent exited early: {proc.stderr.read()}")
        assert time.monotonic() < deadline, "agent did not start in time"
        time.sleep(0.05)
    return path.read_text()


def test_serve_then_sigterm_drains_in_flight_benchmark(tmp_path):
    port_file = tmp_path / "port"
    env = dict(os.environ, FLEETNAS_AGENT_TOKEN="s3cret")
    proc = subprocess.Popen(
        [*AGENT, "serve", "--port", "0", "--port-file", str(port_file),
         "--cache-dir", str(tmp_path / "cache")],
        env=env, stderr=subprocess.PIPE, text=True)
    try:
        port = int(_wait_for_file(port_file, proc))
        with AgentClient(f"127.0.0.1:{port}", token="s3cret") as client:
            assert client.health()
            sha = client.ensure_model(onnx_models.slow_model(1.0))
            outcome: dict[str, object] = {}
            t = threading.Thread(target=lambda: outcome.setdefault(
                "result", client.benchmark(sha, fast_settings(warmup_runs=0, min_runs=1, max_runs=1))))
            t.start()
            deadline = time.monotonic() + 30
            while not client.status().busy and time.monotonic() < deadline:
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            t.join(120)
            assert len(outcome["result"].samples_ms) == 1
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    events = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    assert "serving" in names and "draining" in names and names[-1] == "stopped"
    assert all("s3cret" not in json.dumps(e) for e in events)


def test_serve_refuses_public_address_without_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FLEETNAS_AGENT_TOKEN"}
    proc = subprocess.run([*AGENT, "serve", "--host", "0.0.0.0", "--port", "0",
                           "--cache-dir", str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "FLEETNAS_AGENT_TOKEN" in proc.stderr and "--insecure" in proc.stderr


def test_bench_one_command_on_a_throwaway_local_agent(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(onnx_models.mlp(64, 2))
    proc = subprocess.run([*AGENT, "bench", str(model), "--json", "--warmup", "2",
                           "--min-runs", "5", "--max-duration", "0.5"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["stats"]["median_ms"] > 0 and len(result["samples_ms"]) >= 5
    table = subprocess.run([*AGENT, "bench", str(model), "--min-runs", "5", "--max-duration",
                            "0.5"], capture_output=True, text=True, timeout=120)
    assert table.returncode == 0 and "median" in table.stdout and "ms" in table.stdout


def test_a_killed_bench_leaves_a_cache_that_the_next_bench_removes(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    slow = tmp_path / "slow.onnx"
    slow.write_bytes(onnx_models.slow_model(5.0))
    proc = subprocess.Popen([*AGENT, "bench", str(slow), "--warmup", "0", "--min-runs", "1",
                             "--max-runs", "1"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: list(tmp_path.glob(f"{THROWAWAY_PREFIX}*/models/*")), 120,
                 "the throw-away agent to cache the model")
        workers = worker_pids(proc.pid)
    finally:
        proc.kill()  # SIGKILL: it cannot remove its cache
        proc.wait()
    assert wait_all_gone(workers, within_s=30) == []  # its agent's workers died with it
    left = list(tmp_path.glob(f"{THROWAWAY_PREFIX}*"))
    assert len(left) == 1
    alive = tmp_path / f"{owned_prefix(THROWAWAY_PREFIX)}x"  # a live owner: this test
    alive.mkdir()
    untagged = tmp_path / f"{THROWAWAY_PREFIX}abc"  # no owner in its name: not ours to judge
    untagged.mkdir()

    model = tmp_path / "m.onnx"
    model.write_bytes(onnx_models.mlp(16, 1))
    done = subprocess.run([*AGENT, "bench", str(model), "--min-runs", "3", "--max-duration",
                           "0.5"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert set(tmp_path.glob(f"{THROWAWAY_PREFIX}*")) == {alive, untagged}


def test_bench_reports_a_bad_model_in_one_line(tmp_path):
    model = tmp_path / "bad.onnx"
    model.write_bytes(onnx_models.random_bytes(1000))
    proc = subprocess.run([*AGENT, "bench", str(model)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("fleetnas-agent: model_invalid:")
    assert "Traceback" not in proc.stderr


def _make_pki(d: Path) -> dict[str, Path]:
    """A CA, a server cert for 127.0.0.1/localhost and a client cert, via openssl."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=fleetnas-test-ca")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                      ("client", "extendedKeyUsage=clientAuth")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", f"/CN={name}")
        (d / f"{name}.ext").write_text(ext + "\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")
    return {n: d / n for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


def test_mutual_tls(start_agent, tmp_path, good_model):
    pki = _make_pki(tmp_path)
    server, _ = start_agent(tls_cert=pki["server.crt"], tls_key=pki["server.key"],
                            tls_client_ca=pki["ca.crt"], token="tok")
    address = f"127.0.0.1:{server.port}"
    ca = pki["ca.crt"].read_bytes()
    with AgentClient(address, token="tok", root_certificates=ca,
                     client_cert=pki["client.crt"].read_bytes(),
                     client_key=pki["client.key"].read_bytes()) as client:
        sha = client.ensure_model(good_model)
        assert client.benchmark(sha, fast_settings()).stats.median_ms > 0
        assert client.describe().limits.tls
    # no client certificate: the handshake fails
    with AgentClient(address, token="tok", root_certificates=ca, call_timeout_s=5) as client:
        with pytest.raises(errors.AgentUnavailable):
            client.describe()
    # plaintext against a TLS port: refused too
    with AgentClient(address, token="tok", call_timeout_s=5) as client:
        with pytest.raises(errors.AgentUnavailable):
            client.describe()


def test_unusable_paths_and_dead_agents_are_one_line_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    serve = subprocess.run([*AGENT, "serve", "--port", "0", "--cache-dir", str(blocker / "x")],
                           capture_output=True, text=True, timeout=60)
    assert serve.returncode == 2 and "Traceback" not in serve.stderr
    assert str(blocker) in serve.stderr
    missing_ca = subprocess.run([*AGENT, "describe", "--address", "127.0.0.1:1", "--tls-ca",
                                 str(tmp_path / "none.pem")], capture_output=True, text=True,
                                timeout=60)
    assert missing_ca.returncode == 2 and "none.pem" in missing_ca.stderr
    assert "Traceback" not in missing_ca.stderr
    dead = subprocess.run([*AGENT, "describe", "--address", "127.0.0.1:1"],
                          capture_output=True, text=True, timeout=60)
    assert dead.returncode == 1 and dead.stderr.startswith("fleetnas-agent: agent unavailable")


PINNED_AGENT = [sys.executable, "-c",
                "import os, sys\n"
                "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # like taskset -c N\n"
                "from fleetnas.agent.cli import main\n"
                "sys.exit(main(sys.argv[1:]))"]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_agent_pinned_to_one_cpu_reports_one_usable_core_and_warns(tmp_path, good_model):
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [*PINNED_AGENT, "serve", "--port", "0", "--port-file", str(port_file),
         "--cache-dir", str(tmp_path / "cache")], stderr=subprocess.PIPE, text=True)
    try:
        port = int(_wait_for_file(port_file, proc))
        with AgentClient(f"127.0.0.1:{port}") as client:
            cpu = client.describe().cpu
            assert cpu.usable_cores == 1
            assert cpu.logical_cores == os.cpu_count()  # the host's counts stay as they are
            sha = client.ensure_model(good_model)
            two = client.benchmark(sha, fast_settings(intra_op_threads=2))
            one = client.benchmark(sha, fast_settings(intra_op_threads=1))
        assert any(w.startswith("oversubscribed: 2 intra-op threads on 1 usable cores")
                   for w in two.warnings), list(two.warnings)
        assert not any(w.startswith("oversubscribed") for w in one.warnings)
    finally:
        proc.terminate()
        proc.wait(60)
