"""One agent per phone per host: the file lock, across processes and through AndroidPhone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fleetnas.agent.android import AndroidPhone, PhoneBusy, PhoneLock
from fleetnas.agent.android._lock import lock_path
from tests.agent.android.fake_phone import FakePhone

HOLDER = """
import sys
from pathlib import Path
from fleetnas.agent.android import PhoneLock
lock = PhoneLock(sys.argv[1], lock_dir=Path(sys.argv[2]))
lock.acquire()
print("locked", flush=True)
sys.stdin.read()  # hold it until the test closes stdin or kills us
"""


def test_second_lock_on_a_serial_is_refused_until_released(lock_dir: Path) -> None:
    first = PhoneLock("R5CT1234ABC", lock_dir=lock_dir)
    first.acquire()
    other = PhoneLock("R5CT1234ABC", lock_dir=lock_dir)
    with pytest.raises(PhoneBusy, match=r"already driven by another fleetnas agent on this host"):
        other.acquire()
    PhoneLock("OTHERPHONE", lock_dir=lock_dir).acquire()  # another phone: no conflict
    first.release()
    other.acquire()
    assert other.held
    other.release()


def test_a_lock_held_by_another_process_names_it_and_dies_with_it(lock_dir: Path) -> None:
    serial = "192.168.1.5:5555"  # adb-over-TCP serials make safe file names too
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, serial, str(lock_dir)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(PhoneBusy, match=rf"pid {holder.pid}\b"):
            PhoneLock(serial, lock_dir=lock_dir).acquire()
        assert lock_path(serial, lock_dir).name == "192.168.1.5_5555.lock"
    finally:
        holder.kill()
        holder.wait()
    with PhoneLock(serial, lock_dir=lock_dir) as lock:  # the kernel dropped the dead holder's lock
        assert lock.held


def test_two_agents_cannot_drive_one_phone(
    phone: FakePhone, tools: dict[str, Path], lock_dir: Path
) -> None:
    spec = [str(tools["benchmark_model"])]
    with AndroidPhone.from_specs(phone.serial, spec, lock_dir=lock_dir) as first:
        with pytest.raises(PhoneBusy):
            AndroidPhone.from_specs(phone.serial, spec, lock_dir=lock_dir)
        assert first.fingerprint  # the first agent is unaffected
    AndroidPhone.from_specs(phone.serial, spec, lock_dir=lock_dir).close()  # free again
