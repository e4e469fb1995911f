"""``Adb`` against the stand-in ``adb``: states, exit statuses, precise errors, timeouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetnas.agent.android import (
    Adb,
    AdbNotFound,
    AdbTimeout,
    DeviceNotFound,
    DeviceOffline,
    DeviceUnauthorized,
    PushFailed,
)
from tests.agent.android.fake_phone import FakePhone


def test_devices_lists_states_and_leaves_out_unplugged_phones(add_phone) -> None:
    add_phone("A1")
    add_phone("B2").set_state("unauthorized")
    add_phone("C3").set_state("offline")
    add_phone("D4").set_state("absent")
    rows = Adb("A1").devices()
    assert [(d.serial, d.state) for d in rows] == [
        ("A1", "device"), ("B2", "unauthorized"), ("C3", "offline")]
    assert rows[0].details["model"] == "Pixel_7" and rows[0].details["transport_id"] == "1"


@pytest.mark.parametrize(
    ("state", "error", "hint"),
    [
        ("unauthorized", DeviceUnauthorized, "accept the 'Allow USB debugging' dialog"),
        ("offline", DeviceOffline, "is offline"),
        ("absent", DeviceNotFound, "is not attached"),
    ],
)
def test_a_phone_that_cannot_be_used_gets_a_named_error(
    phone: FakePhone, state: str, error: type[Exception], hint: str
) -> None:
    phone.set_state(state)
    adb = Adb(phone.serial)
    with pytest.raises(error, match=hint):
        adb.check_ready()
    with pytest.raises(error, match=hint):  # from adb's own stderr text, no extra call
        adb.shell("echo never")


def test_unknown_serial_is_not_found(phone: FakePhone) -> None:
    with pytest.raises(DeviceNotFound, match="NOPE is not attached"):
        Adb("NOPE").shell("true")


def test_shell_returns_output_and_the_remote_exit_status(phone: FakePhone) -> None:
    done = Adb(phone.serial).shell("echo out; echo err >&2; exit 3")
    assert done.stdout == "out\n" and "err" in done.stderr
    assert done.exit_status == 3


def test_shell_runs_on_the_phone_file_system(phone: FakePhone) -> None:
    adb = Adb(phone.serial)
    assert adb.getprop("ro.product.model") == "Pixel 7"
    assert adb.getprop("ro.not.set") == ""
    assert adb.shell("cat /sys/devices/system/cpu/possible").stdout == "0-7\n"
    with pytest.raises(ValueError):
        adb.getprop("x; rm -rf /")


def test_push_copies_and_push_errors_are_named(phone: FakePhone, tmp_path: Path) -> None:
    adb = Adb(phone.serial)
    local = tmp_path / "model.bin"
    local.write_bytes(b"12345")
    adb.push(local, "/data/local/tmp/fleetnas/x/model.bin")
    assert phone.remote("/data/local/tmp/fleetnas/x/model.bin").read_bytes() == b"12345"
    with pytest.raises(PushFailed, match="cannot stat"):
        adb.push(tmp_path / "missing.bin", "/data/local/tmp/m")
    phone.set_faults(push_error="No space left on device")
    with pytest.raises(PushFailed, match="No space left on device"):
        adb.push(local, "/data/local/tmp/m")


def test_timeout_kills_the_host_side_only(phone: FakePhone) -> None:
    adb = Adb(phone.serial)
    with pytest.raises(AdbTimeout) as caught:
        adb.shell("echo started; sleep 30", timeout_s=1.0)
    assert "started" in caught.value.stdout
    # as on a real phone, the command itself is still running there: stopping it is the
    # caller's job (the bench does it; this test's teardown kills it)
    assert phone.live_processes()


def test_missing_adb_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AdbNotFound, match="install Android platform-tools"):
        Adb("ANY")
    with pytest.raises(ValueError):
        Adb("two words", executable="/bin/true")
