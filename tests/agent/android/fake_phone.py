"""Stand-in phones for the Android tests: a folder per serial that the stand-in ``adb`` serves.

:func:`install_adb` puts the stand-in ``adb`` (``standin/adb.py``) on PATH;
:class:`FakePhone` builds a phone folder — properties, ``/proc``, ``/sys``
and ``dumpsys`` texts, the commands of its shell (``standin/*.sh``,
``standin/taskset.py``) — and lets a test unplug it, deny authorization,
inject faults and read what ran on it.

The default phone is a 1+3+4 arm64 SoC: cpu0-3 Cortex-A55 (0xd05, 300-1803
MHz), cpu4-6 Cortex-A78 (0xd41, 500-2400 MHz), cpu7 Cortex-X1 (0xd44,
500-2850 MHz). Its files are written in the formats the kernel and AOSP
print (arm64 ``cpuinfo.c``, cpufreq sysfs, ``getprop``, ``dumpsys
battery`` as recorded in ``data/dumpsys_battery_cn_notes.txt``); the values
are made up for the stand-in and are not a recording of a real phone.
"""

from __future__ import annotations

import os
import shutil
import signal
import site
import stat
import sys
import time
from pathlib import Path

import psutil

STANDIN = Path(__file__).parent / "standin"
# What the phone's shell finds besides its own bin/ (getprop, dumpsys, taskset, uname):
# this host's versions of the toybox commands fleetnas uses, and nothing else.
TOYBOX = ("sh", "cat", "grep", "sed", "sha256sum", "kill", "chmod", "mkdir", "rm", "sleep",
          "ls", "cp", "mv", "head", "tail", "true", "false")

CLUSTERS = (  # (cpus, CPU part, min kHz, max kHz, capacity)
    ((0, 1, 2, 3), 0xD05, 300000, 1803000, 325),
    ((4, 5, 6), 0xD41, 500000, 2400000, 870),
    ((7,), 0xD44, 500000, 2850000, 1024),
)
PROPS = {
    "ro.product.manufacturer": "Google",
    "ro.product.brand": "google",
    "ro.product.model": "Pixel 7",
    "ro.product.device": "panther",
    "ro.product.name": "panther",
    "ro.soc.manufacturer": "Google",
    "ro.soc.model": "GS201",
    "ro.board.platform": "gs201",
    "ro.hardware": "panther",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.build.fingerprint": "google/panther/panther:14/UQ1A.240205.002/11224170:user/release-keys",
}
THERMAL = {  # the cooling model the stand-in adb and benchmarks share (thermal.txt)
    "ambient_c": 33.0,
    "excess_c": 0.0,
    "tau_s": 1.0,
    "heat_per_run_s": 0.0,
    "busy_percent": 5.0,
    "hold_samples": 0,
    "status_thresholds": "45,55,65,75,85,95",
    # type:offset from the SoC temperature; no offset: a board sensor that lags behind
    "zones": "cpu-0-0-usr:0.0,cpu-1-0-usr:1.5,gpuss-0-usr:-1.0,battery:,skin-therm:,xo-therm:",
}
BATTERY = """Current Battery Service state:
  AC powered: false
  USB powered: true
  Wireless powered: false
  Max charging current: 500000
  Max charging voltage: 5000000
  Charge counter: 3270000
  status: 2
  health: 2
  present: true
  level: 80
  scale: 100
  voltage: 4352
  temperature: @TEMP@
  technology: Li-ion
"""


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def install_adb(bin_dir: Path) -> Path:
    """Write the stand-in ``adb`` into ``bin_dir`` (for this interpreter, ``-S``)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    adb = bin_dir / "adb"
    _script(adb, f"#!{sys.executable} -S\n" + (STANDIN / "adb.py").read_text())
    return adb


def install_tool(directory: Path, name: str) -> Path:
    """A stand-in benchmark binary named ``name`` (``benchmark_model``, ``onnxruntime_perf_test``)."""
    directory.mkdir(parents=True, exist_ok=True)
    tool = directory / name
    _script(tool, f"#!{sys.executable} -S\n" + (STANDIN / "phone_benchmark.py").read_text())
    return tool


def _cpuinfo() -> str:
    blocks = []
    for cpus, part, *_ in CLUSTERS:
        for cpu in cpus:
            blocks.append(
                f"processor\t: {cpu}\nBogoMIPS\t: 49.15\n"
                "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp\n"
                "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\n"
                f"CPU part\t: 0x{part:03x}\nCPU revision\t: 0\n"
            )
    return "\n".join(blocks) + "\n"


class FakePhone:
    """One stand-in phone under ``home/<serial>``."""

    def __init__(self, home: Path, serial: str, *, props: dict[str, str] | None = None) -> None:
        self.serial = serial
        self.dir = home / serial
        self.fs = self.dir / "fs"
        self._build({**PROPS, "ro.serialno": serial, **(props or {})})

    def _build(self, props: dict[str, str]) -> None:
        for sub in ("bin", "toybox", "dumpsys", "fs/proc", "fs/data/local/tmp"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        for command in TOYBOX:
            found = shutil.which(command)
            if found:
                (self.dir / "toybox" / command).symlink_to(found)
        self.set_state("device")
        # where the stand-in benchmarks (python -S) find numpy, LiteRT and onnxruntime
        (self.dir / "site.txt").write_text("\n".join(site.getsitepackages()) + "\n")
        (self.dir / "info.txt").write_text(
            f"model={props['ro.product.model']}\nproduct={props['ro.product.name']}\n"
            f"device={props['ro.product.device']}\n")
        (self.dir / "props.txt").write_text("".join(f"[{k}]: [{v}]\n" for k, v in props.items()))
        (self.dir / "kernel.txt").write_text("5.10.157-android13-4-00001-gfleetnas-ab10000000\n")
        (self.dir / "battery.txt").write_text(BATTERY)
        self.set_thermal()
        for name in ("getprop", "dumpsys", "uname"):
            _script(self.dir / "bin" / name, (STANDIN / f"{name}.sh").read_text())
        _script(self.dir / "bin" / "taskset",
                f"#!{sys.executable} -S\n" + (STANDIN / "taskset.py").read_text())
        proc = self.fs / "proc"
        (proc / "cpuinfo").write_text(_cpuinfo())
        (proc / "meminfo").write_text("MemTotal:        7869432 kB\nMemFree:          512000 kB\n"
                                      "MemAvailable:    3145728 kB\n")
        (proc / "loadavg").write_text("1.25 1.10 0.98 2/1834 12345\n")
        (proc / "stat").write_text("cpu  1000 0 500 90000 100 0 10\n")
        cpu_root = self.fs / "sys/devices/system/cpu"
        count = sum(len(c[0]) for c in CLUSTERS)
        cpu_root.mkdir(parents=True, exist_ok=True)
        (cpu_root / "possible").write_text(f"0-{count - 1}\n")
        (cpu_root / "online").write_text(f"0-{count - 1}\n")
        for cpus, _, low, high, capacity in CLUSTERS:
            policy = cpu_root / f"cpufreq/policy{cpus[0]}"
            policy.mkdir(parents=True, exist_ok=True)
            for name, value in (("related_cpus", " ".join(map(str, cpus))),
                                ("affected_cpus", " ".join(map(str, cpus))),
                                ("cpuinfo_min_freq", low), ("cpuinfo_max_freq", high),
                                ("scaling_min_freq", low), ("scaling_max_freq", high),
                                ("scaling_cur_freq", high), ("scaling_governor", "schedutil"),
                                ("scaling_driver", "exynos-acme")):
                (policy / name).write_text(f"{value}\n")
            for cpu in cpus:
                (cpu_root / f"cpu{cpu}").mkdir(exist_ok=True)
                (cpu_root / f"cpu{cpu}/cpu_capacity").write_text(f"{capacity}\n")

    # -- what a test changes ---------------------------------------------------
    def set_state(self, state: str) -> None:
        """``device``, ``unauthorized``, ``offline`` or ``absent`` (unplugged)."""
        (self.dir / "state").write_text(state + "\n")

    @property
    def state(self) -> str:
        return (self.dir / "state").read_text().strip()

    def set_faults(self, *, push_error: str = "", **faults: object) -> None:
        """Faults of the stand-in benchmarks (``faults.txt``) and of ``adb push``."""
        (self.dir / "faults.txt").write_text("".join(
            f"{key}={str(value).replace(chr(10), chr(92) + 'n')}\n" for key, value in faults.items()))
        (self.dir / "push_error.txt").write_text(push_error)

    def thermal_model(self) -> dict[str, str]:
        path = self.dir / "thermal.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def set_thermal(self, **changes: object) -> None:
        """Update the cooling model; ``excess_c`` is the SoC's heat above ambient now."""
        model = {**{k: str(v) for k, v in THERMAL.items()}, "at": str(time.time()),
                 **self.thermal_model(), **{k: str(v) for k, v in changes.items()}}
        if "excess_c" in changes:
            model["at"] = str(time.time())
        (self.dir / "thermal.txt").write_text("".join(f"{k}={v}\n" for k, v in model.items()))

    # -- what a test reads -----------------------------------------------------
    def remote(self, path: str) -> Path:
        """A phone path (``/data/local/tmp/...``) as a host path."""
        return self.fs / path.lstrip("/")

    def taskset_log(self) -> list[str]:
        path = self.dir / "taskset.log"
        return path.read_text().splitlines() if path.exists() else []

    def pushes(self) -> list[str]:
        """Phone paths pushed to, in order."""
        path = self.dir / "push.log"
        return path.read_text().splitlines() if path.exists() else []

    def recorded_pids(self) -> list[tuple[int, str]]:
        path = self.dir / "procs.log"
        if not path.exists():
            return []
        found = []
        for line in path.read_text().splitlines():
            pid, _, name = line.partition(" ")
            found.append((int(pid), name))
        return found

    def live_processes(self) -> list[tuple[int, str]]:
        """Recorded phone processes still running (zombies count as gone)."""
        alive = []
        for pid, name in self.recorded_pids():
            try:
                proc = psutil.Process(pid)
                if proc.status() != psutil.STATUS_ZOMBIE and str(self.dir) in " ".join(
                        proc.cmdline() + [proc.cwd()]):
                    alive.append((pid, name))
            except (psutil.NoSuchProcess, psutil.AccessDenied, OSError):
                continue
        return alive

    def wait_gone(self, timeout_s: float = 10.0) -> list[tuple[int, str]]:
        """Wait (at most ``timeout_s``) for the recorded phone processes to end; the ones left.

        For the shells around a killed benchmark: they end on their own once it is
        gone (their output pipe is closed), a moment after the kill.
        """
        live = self.live_processes()
        procs = []
        for pid, _ in live:
            try:
                procs.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(procs, timeout=timeout_s)
        return self.live_processes()

    def kill_all(self) -> None:
        """Teardown only: kill what a test left running on this phone."""
        for pid, _ in self.live_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
