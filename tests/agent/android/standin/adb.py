"""A stand-in ``adb`` client for tests: phones are folders on this host.

Installed as ``adb`` on PATH by the test fixtures (with a ``#!`` line for
this interpreter, run with ``-S``: standard library only). ``$FAKE_ADB_HOME``
holds one folder per serial (see ``tests/agent/android/fake_phone.py``):

* ``state``: ``device``, ``unauthorized``, ``offline`` or ``absent``
  (unplugged: not listed);
* ``fs/``: the phone's file system (``proc``, ``sys``, ``data/local/tmp``);
* ``bin/``: its commands (``getprop``, ``dumpsys``, ``taskset``, ``uname``),
  first on the shell's PATH; the rest come from this host (``sh``, ``cat``,
  ``grep``, ``sha256sum``, ``kill`` ...), as toybox provides them on a phone;
* ``thermal.json``: a cooling model; before every command the thermal
  zones, the battery temperature, ``dumpsys thermalservice``, the cpufreq
  caps and ``/proc/stat`` are rewritten from it (Newton cooling towards
  ambient; the stand-in benchmarks add heat);
* ``faults.json``: faults for ``push`` (and for the stand-in benchmarks);
  every push is recorded in ``push.log``.

Answers, with the texts and exit statuses AOSP adb prints (see
docs/android.md): ``devices [-l]``, ``get-state``, ``shell``, ``push``,
``pull``, ``version``, ``start-server``, ``kill-server``. ``shell`` runs the
command with ``/bin/sh -c`` inside ``fs/`` in a session of its own, so
killing this client leaves the "phone" process running, as on a real phone,
and relays its output through pipes of its own. Its exit status is the
command's (the shell protocol). If the phone's state leaves ``device``
while the command runs (unplugged), the client exits 1 at once without the
command's status, leaving the command running.

The one departure from a phone's shell: absolute phone paths in the
command (``/data/...``, ``/sys/...``, ``/proc/{cpuinfo,meminfo,stat,
loadavg,version}`` and a bare ``/`` as in ``cd /``) are rewritten to point
into ``fs/``. ``/proc/<pid>/...`` is left alone: the "phone's" processes
are this host's.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HOME = Path(os.environ.get("FAKE_ADB_HOME", "/nonexistent"))
_PHONE_PATH = re.compile(
    r"(?<![\w./-])/(?=(?:data|sys|proc/(?:cpuinfo|meminfo|stat|loadavg|version))(?:[/\s'\";|&)]|$))"
)
_BARE_ROOT = re.compile(r"(?<![\w./-])/(?=[\s;|&)]|$)")
UNAUTHORIZED = (
    "adb: device unauthorized.\n"
    "This adb server's $ADB_VENDOR_KEYS is not set\n"
    "Try 'adb kill-server' if that seems wrong.\n"
    "Otherwise check for a confirmation dialog on your device."
)


def fail(message: str, status: int = 1) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    raise SystemExit(status)


def state_of(phone: Path) -> str:
    try:
        return (phone / "state").read_text().strip()
    except OSError:
        return "absent"


def phones() -> list[Path]:
    try:
        return sorted(p for p in HOME.iterdir() if p.is_dir() and state_of(p) != "absent")
    except OSError:
        return []


def load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def devices(long: bool) -> None:
    print("List of devices attached")
    for index, phone in enumerate(phones(), start=1):
        state = state_of(phone)
        if not long:
            print(f"{phone.name}\t{state}")
            continue
        row = f"{phone.name:<22} {state} usb:1-{index}"
        if state == "device":
            info = load_json(phone / "info.json")
            model = re.sub(r"[^A-Za-z0-9]", "_", info.get("model", "Phone"))
            row += f" product:{info.get('product', 'phone')} model:{model} " \
                   f"device:{info.get('device', 'phone')}"
        print(f"{row} transport_id:{index}")
    print()


def target(serial: str | None) -> Path:
    """The phone a command goes to, or exit with adb's error for it."""
    if serial is None:
        attached = phones()
        if not attached:
            fail("adb: no devices/emulators found")
        if len(attached) > 1:
            fail("adb: more than one device/emulator")
        phone = attached[0]
    else:
        phone = HOME / serial
        if not phone.is_dir() or state_of(phone) == "absent":
            fail(f"adb: device '{serial}' not found")
    state = state_of(phone)
    if state == "unauthorized":
        fail(UNAUTHORIZED)
    if state == "offline":
        fail("adb: device offline")
    return phone


# -- the phone's moving parts ---------------------------------------------------
def soc_temperature(model: dict, now: float) -> float:
    tau = float(model.get("tau_s", 1.0))
    excess = float(model.get("excess_c", 0.0))
    if tau > 0:
        excess *= math.exp(-max(0.0, now - float(model.get("at", now))) / tau)
    return float(model.get("ambient_c", 33.0)) + excess


def refresh(phone: Path) -> None:
    """Rewrite the thermal, cpufreq and /proc/stat files from thermal.json, as of now."""
    model = load_json(phone / "thermal.json")
    if not model:
        return
    fs = phone / "fs"
    soc = soc_temperature(model, time.time())
    ambient = float(model.get("ambient_c", 33.0))
    for index, (zone_type, offset) in enumerate(model.get("zones", [])):
        temp = soc + offset if offset is not None else ambient + 0.3 * (soc - ambient) - 2.0
        zone = fs / f"sys/class/thermal/thermal_zone{index}"
        zone.mkdir(parents=True, exist_ok=True)
        (zone / "type").write_text(zone_type + "\n")
        (zone / "temp").write_text(f"{round(temp * 1000)}\n")
    status = sum(1 for t in model.get("status_thresholds", []) if soc >= t)
    battery = ambient - 5.0 + 0.2 * (soc - ambient)
    dumpsys = phone / "dumpsys"
    dumpsys.mkdir(exist_ok=True)
    (dumpsys / "thermalservice.txt").write_text(
        "IsStatusOverride: false\nThermalEventListeners:\n\tcallbacks: 1\n\tkilled: false\n"
        f"\tbroadcasts count: -1\nThermal Status: {status}\nCached temperatures:\n"
        f"\tTemperature{{mValue={soc:.1f}, mType=0, mName=CPU, mStatus={status}}}\n"
        "HAL Ready: true\nCurrent temperatures from HAL:\n"
        f"\tTemperature{{mValue={soc:.3f}, mType=0, mName=CPU, mStatus={status}}}\n"
        f"\tTemperature{{mValue={battery:.1f}, mType=2, mName=BATTERY, mStatus=0}}\n"
    )
    template = (phone / "battery.txt").read_text() if (phone / "battery.txt").exists() else ""
    (dumpsys / "battery.txt").write_text(template.replace("@TEMP@", str(round(battery * 10))))
    for policy in sorted((fs / "sys/devices/system/cpu/cpufreq").glob("policy*")):
        top = (policy / "cpuinfo_max_freq").read_text().strip()
        cap = int(int(top) * 0.7) if status >= 2 else int(top)
        (policy / "scaling_max_freq").write_text(f"{cap}\n")
    busy = float(model.get("busy_percent", 5.0))
    stat = fs / "proc/stat"
    ticks = [int(v) for v in stat.read_text().split()[1:8]] if stat.exists() else [0] * 7
    ticks[0] += round(busy)
    ticks[3] += round(100 - busy)
    stat.write_text("cpu  " + " ".join(map(str, ticks)) + "\n")


def translate(command: str, fs: Path) -> str:
    """Point absolute phone paths into the phone's folder (see the module docstring)."""
    command = _PHONE_PATH.sub(str(fs) + "/", command)
    return _BARE_ROOT.sub(str(fs), command)


def relay(source, sink) -> None:
    for chunk in iter(lambda: source.read1(65536), b""):
        sink.write(chunk)
        sink.flush()


def shell(phone: Path, command: str) -> None:
    refresh(phone)
    fs = phone / "fs"
    env = {
        "PATH": f"{phone / 'bin'}:/usr/bin:/bin",
        "FAKE_PHONE": str(phone),
        "HOME": str(fs / "data/local/tmp"),
        "LANG": "C",
    }
    proc = subprocess.Popen(
        ["/bin/sh", "-c", translate(command, fs)],
        cwd=fs, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True,
    )
    with open(phone / "procs.log", "a") as log:
        log.write(f"{proc.pid} shell\n")
    threads = [
        threading.Thread(target=relay, args=(proc.stdout, sys.stdout.buffer), daemon=True),
        threading.Thread(target=relay, args=(proc.stderr, sys.stderr.buffer), daemon=True),
    ]
    for thread in threads:
        thread.start()
    while proc.poll() is None:
        if state_of(phone) != "device":  # unplugged: the command keeps running on the phone
            sys.stdout.flush()
            os._exit(1)
        time.sleep(0.02)
    for thread in threads:
        thread.join(timeout=5)
    raise SystemExit(proc.returncode if proc.returncode >= 0 else 128 - proc.returncode)


def push(phone: Path, local: str, remote: str) -> None:
    faults = load_json(phone / "faults.json")
    source = Path(local)
    if not source.is_file():
        fail(f"adb: error: cannot stat '{local}': No such file or directory")
    if faults.get("push_error"):
        fail(f"adb: error: failed to copy '{local}' to '{remote}': remote {faults['push_error']}")
    dest = phone / "fs" / remote.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    shutil.copyfile(source, dest)
    with open(phone / "push.log", "a") as log:
        log.write(f"{remote}\n")
    size = dest.stat().st_size
    took = max(time.monotonic() - start, 1e-6)
    print(f"{local}: 1 file pushed, 0 skipped. {size / took / 1e6:.1f} MB/s ({size} bytes in "
          f"{took:.3f}s)")


def pull(phone: Path, remote: str, local: str) -> None:
    source = phone / "fs" / remote.lstrip("/")
    if not source.is_file():
        fail(f"adb: error: failed to stat remote object '{remote}': No such file or directory")
    shutil.copyfile(source, local)
    print(f"{remote}: 1 file pulled, 0 skipped.")


def main(argv: list[str]) -> None:
    serial = None
    while argv and argv[0] in ("-s", "-d", "-e"):
        if argv[0] == "-s":
            if len(argv) < 2:
                fail("adb: -s requires an argument")
            serial = argv[1]
            argv = argv[2:]
        else:
            argv = argv[1:]
    if not argv:
        fail("adb: usage: adb [-s SERIAL] COMMAND")
    command, args = argv[0], argv[1:]
    if command == "devices":
        devices("-l" in args)
    elif command == "version":
        print("Android Debug Bridge version 1.0.41\nVersion 35.0.2-fleetnas-standin")
    elif command in ("start-server", "kill-server"):
        pass
    elif command == "get-state":
        target(serial)
        print("device")
    elif command == "shell":
        shell(target(serial), " ".join(args))
    elif command == "push" and len(args) == 2:
        push(target(serial), args[0], args[1])
    elif command == "pull" and len(args) == 2:
        pull(target(serial), args[0], args[1])
    else:
        fail(f"adb: unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
