"""A stand-in ``adb`` client for tests: phones are folders on this host.

Installed as ``adb`` on PATH by the test fixtures (with a ``#!`` line for
this interpreter, run with ``-S``). It imports only ``os``, ``sys``,
``time``, ``math`` and ``select``: every ``adb`` call starts a fresh
interpreter, and on a loaded 2-core machine ``json``/``re``/``subprocess``
alone cost a quarter of a second per call. ``$FAKE_ADB_HOME`` holds one
folder per serial (see ``tests/agent/android/fake_phone.py``):

* ``state``: ``device``, ``unauthorized``, ``offline`` or ``absent``
  (unplugged: not listed);
* ``fs/``: the phone's file system (``proc``, ``sys``, ``data/local/tmp``);
* ``bin/``: its commands (``getprop``, ``dumpsys``, ``taskset``, ``uname``),
  first on the shell's PATH, then ``toybox/``: links to this host's ``sh``,
  ``cat``, ``grep``, ``sha256sum``, ``kill`` ..., as toybox provides them on
  a phone (nothing else of the host is on the PATH);
* ``thermal.txt``: a cooling model (``key=value`` lines); before every
  command that reads thermal or cpufreq files the thermal zones, the
  battery temperature, ``dumpsys thermalservice``, the cpufreq caps and
  ``/proc/stat`` are rewritten from it (Newton cooling towards ambient; the
  stand-in benchmarks add heat; ``hold_samples`` keeps the heat for that
  many state samples first);
* ``push_error.txt``: when present, ``push`` fails with its text; every
  push is recorded in ``push.log``.

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

import math
import os
import select
import sys
import time

HOME = os.environ.get("FAKE_ADB_HOME", "/nonexistent")
UNAUTHORIZED = (
    "adb: device unauthorized.\n"
    "This adb server's $ADB_VENDOR_KEYS is not set\n"
    "Try 'adb kill-server' if that seems wrong.\n"
    "Otherwise check for a confirmation dialog on your device."
)
PHONE_ROOTS = ("data/", "sys/", "proc/cpuinfo", "proc/meminfo", "proc/stat", "proc/loadavg",
               "proc/version")
WORD_START = " \t\n;|&(='\""


def fail(message, status=1):
    os.write(2, (message + "\n").encode())
    raise SystemExit(status)


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def state_of(phone):
    return read(os.path.join(phone, "state"), "absent").strip() or "absent"


def phones():
    try:
        names = sorted(os.listdir(HOME))
    except OSError:
        return []
    found = [os.path.join(HOME, n) for n in names]
    return [p for p in found if os.path.isdir(p) and state_of(p) != "absent"]


def load_model(phone):
    model = {}
    for line in read(os.path.join(phone, "thermal.txt")).splitlines():
        key, _, value = line.partition("=")
        if key:
            model[key] = value
    return model


def devices(long):
    lines = ["List of devices attached"]
    for index, phone in enumerate(phones(), start=1):
        serial, state = os.path.basename(phone), state_of(phone)
        if not long:
            lines.append(f"{serial}\t{state}")
            continue
        row = f"{serial:<22} {state} usb:1-{index}"
        if state == "device":
            info = dict(line.split("=", 1) for line in
                        read(os.path.join(phone, "info.txt")).splitlines() if "=" in line)
            model = "".join(c if c.isalnum() else "_" for c in info.get("model", "Phone"))
            row += (f" product:{info.get('product', 'phone')} model:{model} "
                    f"device:{info.get('device', 'phone')}")
        lines.append(f"{row} transport_id:{index}")
    print("\n".join(lines) + "\n")


def target(serial):
    """The phone a command goes to, or exit with adb's error for it."""
    if serial is None:
        attached = phones()
        if not attached:
            fail("adb: no devices/emulators found")
        if len(attached) > 1:
            fail("adb: more than one device/emulator")
        phone = attached[0]
    else:
        phone = os.path.join(HOME, serial)
        if not os.path.isdir(phone) or state_of(phone) == "absent":
            fail(f"adb: device '{serial}' not found")
    state = state_of(phone)
    if state == "unauthorized":
        fail(UNAUTHORIZED)
    if state == "offline":
        fail("adb: device offline")
    return phone


# -- the phone's moving parts ---------------------------------------------------
def soc_temperature(model, now):
    tau = float(model.get("tau_s", "1"))
    excess = float(model.get("excess_c", "0"))
    if tau > 0:
        excess *= math.exp(-max(0.0, now - float(model.get("at", now))) / tau)
    return float(model.get("ambient_c", "33")) + excess


def refresh(phone, command):
    """Rewrite the thermal, cpufreq and /proc/stat files from thermal.txt, as of now.

    ``hold_samples=N`` keeps the SoC at the heat it was set to until N state
    samples (commands that run ``dumpsys thermalservice``) have read it; it
    cools from then on.
    """
    model = load_model(phone)
    if not model:
        return
    now = time.time()
    hold = int(model.get("hold_samples", "0"))
    if hold > 0:  # no cooling yet: the heat stays as it was set
        model["at"] = str(now)
        if "dumpsys thermalservice" in command:
            model["hold_samples"] = str(hold - 1)
        write(os.path.join(phone, "thermal.txt"), "".join(f"{k}={v}\n" for k, v in model.items()))
    fs = os.path.join(phone, "fs")
    soc = soc_temperature(model, now)
    ambient = float(model.get("ambient_c", "33"))
    for index, zone in enumerate(z for z in model.get("zones", "").split(",") if z):
        zone_type, _, offset = zone.partition(":")
        temp = soc + float(offset) if offset else ambient + 0.3 * (soc - ambient) - 2.0
        folder = os.path.join(fs, f"sys/class/thermal/thermal_zone{index}")
        os.makedirs(folder, exist_ok=True)
        write(os.path.join(folder, "type"), zone_type + "\n")
        write(os.path.join(folder, "temp"), f"{round(temp * 1000)}\n")
    thresholds = [float(t) for t in model.get("status_thresholds", "").split(",") if t]
    status = sum(1 for t in thresholds if soc >= t)
    battery = ambient - 5.0 + 0.2 * (soc - ambient)
    os.makedirs(os.path.join(phone, "dumpsys"), exist_ok=True)
    write(os.path.join(phone, "dumpsys", "thermalservice.txt"),
          "IsStatusOverride: false\nThermalEventListeners:\n\tcallbacks: 1\n\tkilled: false\n"
          f"\tbroadcasts count: -1\nThermal Status: {status}\nCached temperatures:\n"
          f"\tTemperature{{mValue={soc:.1f}, mType=0, mName=CPU, mStatus={status}}}\n"
          "HAL Ready: true\nCurrent temperatures from HAL:\n"
          f"\tTemperature{{mValue={soc:.3f}, mType=0, mName=CPU, mStatus={status}}}\n"
          f"\tTemperature{{mValue={battery:.1f}, mType=2, mName=BATTERY, mStatus=0}}\n")
    write(os.path.join(phone, "dumpsys", "battery.txt"),
          read(os.path.join(phone, "battery.txt")).replace("@TEMP@", str(round(battery * 10))))
    policies = os.path.join(fs, "sys/devices/system/cpu/cpufreq")
    for policy in sorted(os.listdir(policies)) if os.path.isdir(policies) else []:
        top = int(read(os.path.join(policies, policy, "cpuinfo_max_freq"), "0"))
        cap = int(top * 0.7) if status >= 2 else top
        write(os.path.join(policies, policy, "scaling_max_freq"), f"{cap}\n")
    busy = float(model.get("busy_percent", "5"))
    stat = os.path.join(fs, "proc/stat")
    ticks = [int(v) for v in read(stat, "cpu 0 0 0 0 0 0 0").split()[1:8]]
    ticks[0] += round(busy)
    ticks[3] += round(100 - busy)
    write(stat, "cpu  " + " ".join(map(str, ticks)) + "\n")


def translate(command, fs):
    """Point absolute phone paths into the phone's folder (see the module docstring)."""
    out = []
    i = 0
    while i < len(command):
        c = command[i]
        starts_word = i == 0 or command[i - 1] in WORD_START
        if c == "/" and starts_word:
            rest = command[i + 1:]
            if any(rest.startswith(root) for root in PHONE_ROOTS):
                out.append(fs + "/")
                i += 1
                continue
            if not rest or rest[0] in " \t\n;|&)":
                out.append(fs)
                i += 1
                continue
        out.append(c)
        i += 1
    return "".join(out)


def shell(phone, command):
    if "dumpsys" in command or "/sys" in command or "sys/" in command:
        refresh(phone, command)
    fs = os.path.join(phone, "fs")
    env = {"PATH": f"{phone}/bin:{phone}/toybox", "FAKE_PHONE": phone,
           "HOME": os.path.join(fs, "data/local/tmp"), "LANG": "C"}
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the "phone" process: a session of its own, in the phone's folder
        try:
            os.setsid()
            os.chdir(fs)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            for fd in (out_r, err_r, out_w, err_w, null):
                os.close(fd)
            os.execve("/bin/sh", ["/bin/sh", "-c", translate(command, fs)], env)
        finally:
            os._exit(127)
    os.close(out_w)
    os.close(err_w)
    with open(os.path.join(phone, "procs.log"), "a") as log:
        log.write(f"{pid} shell\n")
    sinks = {out_r: 1, err_r: 2}
    status = None
    while True:
        ready, _, _ = select.select(list(sinks), [], [], 0.02)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if chunk:
                os.write(sinks[fd], chunk)
            else:
                del sinks[fd]
        if status is None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(raw)
        if status is not None and not ready:
            break  # the shell has ended and its output is drained (orphans do not count)
        if status is None and state_of(phone) != "device":
            os._exit(1)  # unplugged: the command keeps running on the phone
    raise SystemExit(status if status >= 0 else 128 - status)


def copy(source, dest):
    with open(source, "rb") as src, open(dest, "wb") as dst:
        while True:
            block = src.read(1 << 20)
            if not block:
                break
            dst.write(block)


def push(phone, local, remote):
    if not os.path.isfile(local):
        fail(f"adb: error: cannot stat '{local}': No such file or directory")
    error = read(os.path.join(phone, "push_error.txt")).strip()
    if error:
        fail(f"adb: error: failed to copy '{local}' to '{remote}': remote {error}")
    dest = os.path.join(phone, "fs", remote.lstrip("/"))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    start = time.monotonic()
    copy(local, dest)
    size = os.path.getsize(dest)
    took = max(time.monotonic() - start, 1e-6)
    with open(os.path.join(phone, "push.log"), "a") as log:
        log.write(remote + "\n")
    print(f"{local}: 1 file pushed, 0 skipped. {size / took / 1e6:.1f} MB/s ({size} bytes in "
          f"{took:.3f}s)")


def pull(phone, remote, local):
    source = os.path.join(phone, "fs", remote.lstrip("/"))
    if not os.path.isfile(source):
        fail(f"adb: error: failed to stat remote object '{remote}': No such file or directory")
    copy(source, local)
    print(f"{remote}: 1 file pulled, 0 skipped.")


def main(argv):
    serial = None
    while argv and argv[0] in ("-s", "-d", "-e"):
        if argv[0] == "-s":
            if len(argv) < 2:
                fail("adb: -s requires an argument")
            serial, argv = argv[1], argv[2:]
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
