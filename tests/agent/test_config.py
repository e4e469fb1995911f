"""The agent's trust model and config validation."""

from __future__ import annotations

import pytest

from fleetnas.agent.config import AgentConfig, ConfigError, is_loopback


@pytest.mark.parametrize("host,expected", [
    ("127.0.0.1", True), ("127.5.5.5", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("10.0.0.2", False), ("::", False), ("pi4.lan", False),
])
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected


def test_off_loopback_without_token_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="FLEETNAS_AGENT_TOKEN"):
        AgentConfig(host="0.0.0.0", cache_dir=tmp_path).validate()
    AgentConfig(host="0.0.0.0", token="t", cache_dir=tmp_path).validate()
    AgentConfig(host="0.0.0.0", insecure=True, cache_dir=tmp_path).validate()
    AgentConfig(host="127.0.0.1", cache_dir=tmp_path).validate()


@pytest.mark.parametrize("overrides,fragment", [
    ({"tls_cert": "cert.pem"}, "--tls-cert and --tls-key go together"),
    ({"tls_client_ca": "ca.pem"}, "mTLS"),
    ({"max_model_mb": 0}, "--max-model-mb"),
    ({"cache_budget_mb": 10, "max_model_mb": 20}, "--cache-budget-mb"),
    ({"memory_cap_mb": 10}, "--memory-cap-mb"),
    ({"max_queue": -1}, "--max-queue"),
    ({"port": 70000}, "--port"),
    ({"max_uploads": 0}, "--max-uploads"),
    ({"upload_idle_timeout_s": 0}, "--upload-idle-timeout"),
    ({"grpc_workers": 8, "max_queue": 4, "max_uploads": 2}, "raise it to 18"),
    ({"adb_benchmark_binaries": ("benchmark_model=bm",)}, "--adb-benchmark-binary needs --adb"),
    ({"adb_lock_dir": "locks"}, "--adb-lock-dir needs --adb SERIAL"),
    ({"adb_serial": "R5CT"}, "--adb needs at least one --adb-benchmark-binary"),
    ({"adb_serial": "R5CT", "adb_benchmark_binaries": ("bm",), "adb_cluster": "mid"},
     "--adb-cluster 'mid': choose one of little, big, prime, all"),
    ({"adb_serial": "R5CT", "adb_benchmark_binaries": ("bm",),
      "adb_cooldown_timeout_s": -1.0}, "--adb-cooldown-timeout must be >= 0"),
    ({"adb_serial": "R5CT", "adb_benchmark_binaries": ("bm",),
      "adb_cooldown_target_c": float("nan")}, "--adb-cooldown-target"),
    ({"adb_serial": "R5CT", "adb_benchmark_binaries": ("bm",), "energy_idle_s": 2.0},
     "--energy-idle-s measures this host's energy meters"),
])
def test_inconsistent_settings_name_the_flag(tmp_path, overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        AgentConfig(cache_dir=tmp_path, **overrides).validate()


def test_thread_pool_has_a_thread_for_every_budget_slot(tmp_path):
    config = AgentConfig(cache_dir=tmp_path, max_queue=3, max_uploads=2)
    budgets = config.thread_budgets()
    assert budgets["Benchmark"] == 5 and budgets["UploadModel"] == 2
    assert {"Status", "Describe", "HasModels", "Check"} <= set(budgets)
    assert config.handler_threads == sum(budgets.values())
    AgentConfig(cache_dir=tmp_path, max_queue=3, max_uploads=2,
                grpc_workers=config.handler_threads + 5).validate()
    with pytest.raises(ConfigError, match=f"raise it to {config.handler_threads}"):
        AgentConfig(cache_dir=tmp_path, max_queue=3, max_uploads=2,
                    grpc_workers=config.handler_threads - 1).validate()


@pytest.mark.parametrize("free_gb,max_model_mb,budget_mb", [
    (100, 256, 2048),  # a big disk: the cap
    (4, 256, 1024),    # a 4 GB-free SD card: a quarter of it
    (0.4, 256, 256),   # nearly full: still room for one model
])
def test_the_automatic_cache_budget_follows_the_free_disk(tmp_path, free_gb, max_model_mb,
                                                          budget_mb):
    from fleetnas.agent.config import auto_cache_budget_mb

    free = int(free_gb * 2**30)
    assert auto_cache_budget_mb(tmp_path, max_model_mb, free_bytes=free) == budget_mb


def test_an_agent_without_a_budget_reports_the_one_sized_to_its_disk(tmp_path, start_agent):
    import shutil

    _, client = start_agent(cache_dir=tmp_path / "not" / "made" / "yet", max_model_mb=8)
    reported = client.describe().limits.cache_budget_bytes
    free_mb = shutil.disk_usage(tmp_path).free // 2**20
    assert 8 * 2**20 <= reported <= 2048 * 2**20
    # a quarter of this disk, up to the cap: within 1% of what the disk had free at start
    assert reported == pytest.approx(min(2048, free_mb / 4) * 2**20, rel=0.01)
