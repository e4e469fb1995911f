"""The fleet model and file, secrets at connect time, probes of dead addresses (no agents)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetnas.controller.fleet import (
    ClientFactory,
    Device,
    DuplicateDevice,
    Fleet,
    FleetFileError,
    InvalidDevice,
    MissingSecret,
    UnknownClass,
    UnknownDevice,
    backoff_delay,
    dump_fleet,
    fleet_path,
    load_fleet,
    parse_fleet,
    probe_device,
    save_fleet,
)


def _free_port() -> int:
    """A port nothing listens on (bound by the OS, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fleet_file_round_trip_keeps_every_field(tmp_path: Path) -> None:
    fleet = Fleet.of([
        Device("pi4-a", "pi4", "192.168.1.20:50051", token_env="FLEETNAS_PI4_TOKEN"),
        Device("jetson", "orin", "[::1]:50052", tls=True),
        Device("x86.1", "x86", "build-box.lan:9000", token_env="FLEETNAS_X86_TOKEN",
               tls_ca="certs/ca.pem", tls_cert="c.pem", tls_key="k.pem",
               tls_server_name="agent.internal"),
    ])
    path = save_fleet(fleet, tmp_path / "fleet.toml")
    loaded = load_fleet(path)
    assert loaded.devices == fleet.devices
    assert loaded.path == path
    assert loaded.classes() == ["pi4", "orin", "x86"]


names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
paths = st.text(min_size=1, max_size=30).filter(lambda s: s.strip() == s and s)


@settings(max_examples=60, deadline=None)
@given(
    name=names, cls=names, port=st.integers(1, 65535), env=st.none() | st.just("FLEETNAS_SOME_TOKEN"),
    tls=st.booleans(), ca=st.none() | paths,
)
def test_dump_then_parse_is_identity(name, cls, port, env, tls, ca) -> None:
    fleet = Fleet.of([Device(name, cls, f"host-{port}.lan:{port}", token_env=env, tls=tls,
                             tls_ca=ca)])
    assert parse_fleet(dump_fleet(fleet), Path("f.toml")).devices == fleet.devices


def test_a_literal_token_in_the_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text('[[devices]]\nname = "a"\nclass = "c"\naddress = "h:1"\ntoken = "s3cret"\n')
    with pytest.raises(FleetFileError, match="token_env"):
        load_fleet(path)


@pytest.mark.parametrize(
    "body, match",
    [
        ('[[devices]]\nname = "a"\nclass = "c"\naddress = "h:1"\ntsl = true\n', "unknown key 'tsl'"),
        ('[[devices]]\nname = "a"\nclass = "c"\n', "missing 'address'"),
        ('[[devices]]\nname = "a"\nclass = "c"\naddress = "h"\n', "HOST:PORT"),
        ('[[devices]]\nname = "a b"\nclass = "c"\naddress = "h:1"\n', "device name"),
        ('[[devices]]\nname = "a"\nclass = "c"\naddress = "u:p@h:1"\n', "credentials"),
        ('[[devices]]\nname = "a"\nclass = "c"\naddress = "h:1"\ntls = "yes"\n', "bool"),
        ("version = 2\n", "version 2"),
        ("[[devices]\n", "not valid TOML"),
        ('[[devices]]\nname="a"\nclass="c"\naddress="h:1"\n' * 2, "already in the fleet"),
        # a shared file must not name any variable of yours as the token to send
        ('[[devices]]\nname="a"\nclass="c"\naddress="h:1"\ntoken_env="PATH"\n',
         "must be named FLEETNAS_..., e.g. FLEETNAS_PATH"),
        ("x = " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
        ("x = " + "{a=" * 3000 + "1" + "}" * 3000 + "\n", "nested too deeply"),
    ],
)
def test_malformed_fleet_files_name_the_problem(tmp_path: Path, body: str, match: str) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(body)
    with pytest.raises(FleetFileError, match=match) as info:
        load_fleet(path)
    assert str(path) in str(info.value)


def test_missing_file_says_how_to_create_one_or_is_empty_when_allowed(tmp_path: Path) -> None:
    with pytest.raises(FleetFileError, match="fleetnas fleet add"):
        load_fleet(tmp_path / "none.toml")
    assert len(load_fleet(tmp_path / "none.toml", missing_ok=True)) == 0


def test_fleet_path_prefers_flag_then_env_then_cwd_default() -> None:
    assert fleet_path("x.toml", {"FLEETNAS_FLEET": "env.toml"}) == Path("x.toml")
    assert fleet_path(None, {"FLEETNAS_FLEET": "env.toml"}) == Path("env.toml")
    assert fleet_path(None, {}) == Path("fleet.toml")


def test_fleet_lookups_and_edits() -> None:
    a = Device("a", "pi4", "h:1")
    fleet = Fleet.of([a, Device("b", "pi4", "h:2"), Device("c", "x86", "h:3")])
    assert [d.name for d in fleet.in_class("pi4")] == ["a", "b"]
    with pytest.raises(UnknownDevice, match="fleetnas fleet add zz"):
        fleet.get("zz")
    with pytest.raises(UnknownClass, match="classes: pi4, x86"):
        fleet.in_class("gpu")
    with pytest.raises(DuplicateDevice):
        fleet.with_device(a)
    moved = fleet.with_device(Device("a", "x86", "h:9"), replace=True)
    assert moved.get("a").address == "h:9" and [d.name for d in moved] == ["a", "b", "c"]
    assert "a" not in fleet.without("a")
    with pytest.raises(InvalidDevice, match="environment variable name"):
        Device("a", "c", "h:1", token_env="not a var")
    with pytest.raises(InvalidDevice, match="go together"):
        Device("a", "c", "h:1", tls_cert="c.pem")


def test_secrets_come_from_env_at_connect_time(tmp_path: Path) -> None:
    device = Device("pi", "pi4", "127.0.0.1:1", token_env="FLEETNAS_PI_TOKEN")
    factory = ClientFactory(base_dir=tmp_path, env={})
    with pytest.raises(MissingSecret, match="export FLEETNAS_PI_TOKEN="):
        factory.connect(device)
    assert ClientFactory(env={"FLEETNAS_PI_TOKEN": "t0k"}).token_for(device) == "t0k"
    tls_device = Device("pi", "pi4", "127.0.0.1:1", tls_ca="ca.pem")
    with pytest.raises(MissingSecret, match="tls_ca"):
        factory.connect(tls_device)
    (tmp_path / "ca.pem").write_bytes(b"not really a cert")
    factory.connect(tls_device).close()  # relative to base_dir; read only when connecting


def test_probe_of_a_dead_address_is_down_with_a_reason_not_an_exception() -> None:
    device = Device("ghost", "cpu", f"127.0.0.1:{_free_port()}")
    result = probe_device(device, ClientFactory(env={}), timeout_s=1.0)
    assert not result.up
    assert result.reason and result.reason.startswith("unreachable")
    missing = probe_device(Device("s", "cpu", "127.0.0.1:1", token_env="FLEETNAS_NOPE_TOKEN"),
                           ClientFactory(env={}), timeout_s=1.0)
    assert not missing.up and "FLEETNAS_NOPE_TOKEN" in (missing.reason or "")


def test_backoff_doubles_and_is_bounded() -> None:
    delays = [backoff_delay(n, 0.5, 30.0) for n in range(1, 10)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(delays) == 30.0 and delays == sorted(delays)
    assert backoff_delay(10_000, 0.5, 30.0) == 30.0
