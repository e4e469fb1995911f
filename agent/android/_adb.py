"""Running ``adb`` for one phone: timeouts, exit statuses and precise errors.

Every call is ``adb -s SERIAL ...`` in a process group of its own, with a
wall-clock timeout; past it the whole group is killed (the host side only:
what runs *on the phone* is the caller's to stop, see ``_bench.py``).

Exit statuses: ``adb shell`` passes the remote command's status back only
with the shell protocol (adb 1.0.35+ and Android 7+); older pairs always
exit 0. :meth:`Adb.shell` therefore appends a marker line carrying ``$?``
and strips it again, so the status is known either way. A missing marker
means the command did not finish on the phone: if the phone has left
``adb devices`` by then, that is :class:`DeviceLost` (unplugged mid-run).

adb's own failures are recognised by the texts AOSP adb prints
(``adb: device unauthorized.``, ``adb: device offline``, ``adb: device
'X' not found``, ``no devices/emulators found``; recent platform-tools
prefix them with ``adb: ``, older ones with ``error: ``); the remote
command's stderr is never matched, only lines with those prefixes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleetnas.agent.android import _errors

DEFAULT_TIMEOUT_S = 30.0
EXIT_MARKER = "@@fleetnas-exit:"
# adb prints this much at most for the calls fleetnas makes; a runaway
# remote command is cut here rather than filling the agent's memory.
MAX_OUTPUT_CHARS = 8 * 1024 * 1024
_TAIL_LINES = 20
_KILL_WAIT_S = 5.0

# States `adb devices` prints (adb's ConnectionState to_string).
STATE_DEVICE = "device"
STATE_ABSENT = "absent"  # not listed at all (fleetnas' word, not adb's)

_ADB_ERROR_PREFIX = re.compile(r"^(?:adb: )?(?:error: )?")
_NOT_FOUND = re.compile(r"device '.*' not found|no devices/emulators found|device not found")
_OFFLINE = re.compile(r"device offline|device still connecting|device still authorizing")


class AdbTimeout(Exception):
    """An adb call ran past its timeout; the host-side adb process was killed.

    ``stdout``/``stderr`` hold what it printed before. Internal to the
    Android backend: callers turn it into a named error once they know what
    timed out (and have stopped it on the phone).
    """

    def __init__(self, args: Sequence[str], timeout_s: float, stdout: str, stderr: str) -> None:
        super().__init__(f"adb {' '.join(args)[:200]} timed out after {timeout_s:g} s")
        self.timeout_s = timeout_s
        self.stdout = stdout
        self.stderr = stderr


@dataclass(frozen=True)
class AdbDevice:
    """One row of ``adb devices -l``: serial, state and the ``key:value`` details."""

    serial: str
    state: str
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ShellResult:
    """What a finished remote command printed and its exit status on the phone."""

    stdout: str
    stderr: str
    exit_status: int

    def tail(self, lines: int = _TAIL_LINES) -> str:
        """The last ``lines`` lines of stdout then stderr, for error messages."""
        return last_lines(self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr,
                          lines)


def last_lines(text: str, lines: int = _TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of ``text``, joined by newlines."""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def parse_devices(text: str) -> list[AdbDevice]:
    """Parse ``adb devices`` / ``adb devices -l`` output.

    Rows are ``SERIAL<TAB>STATE`` (short form) or ``SERIAL<spaces>STATE
    key:value ...`` (long form). The header, daemon start-up chatter
    (``* daemon ...``) and blank lines are skipped. The multi-word state
    ``no permissions (...)`` is kept as ``no permissions``.
    """
    found: list[AdbDevice] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("List of devices") or line.startswith("*"):
            continue
        if "\t" in line:
            serial, _, rest = line.partition("\t")
        else:
            serial, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        if rest.startswith("no permissions"):
            state, tail = "no permissions", ""
        else:
            state, _, tail = rest.partition(" ")
        details = dict(item.split(":", 1) for item in tail.split() if ":" in item)
        found.append(AdbDevice(serial=serial.strip(), state=state, details=details))
    return found


class Adb:
    """``adb`` for one serial. Thread-safe (each call is its own process)."""

    def __init__(self, serial: str, *, executable: str = "adb") -> None:
        """Resolve ``executable`` (a name on PATH or a path); AdbNotFound if absent.

        ``serial`` is the phone's adb serial (``adb devices`` first column);
        ValueError if empty or if it holds whitespace.
        """
        if not serial or any(c.isspace() for c in serial):
            raise ValueError(f"adb serial must be a non-empty word, got {serial!r}")
        resolved = shutil.which(executable)
        if resolved is None:
            raise _errors.AdbNotFound(
                f"adb not found ({executable!r} is not an executable on PATH): install Android "
                "platform-tools (https://developer.android.com/tools/releases/platform-tools) "
                "or give its path"
            )
        self.serial = serial
        self.executable = resolved

    # -- raw calls --------------------------------------------------------------
    def run(
        self, args: Sequence[str], *, timeout_s: float = DEFAULT_TIMEOUT_S, target: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``adb [-s SERIAL] ARGS``; returns whatever it exited with.

        Raises AdbTimeout past ``timeout_s`` (the adb process group is killed
        and reaped first) and AdbNotFound if the executable vanished.
        """
        argv = [self.executable, *(["-s", self.serial] if target else []), *args]
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            raise _errors.AdbNotFound(f"cannot run {self.executable}: {exc}") from exc
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            raise AdbTimeout(args, timeout_s, out or "", err or "") from None
        except BaseException:
            _kill_group(proc)
            proc.communicate()
            raise
        return subprocess.CompletedProcess(
            argv, proc.returncode, out[:MAX_OUTPUT_CHARS], err[:MAX_OUTPUT_CHARS]
        )

    # -- devices and state ----------------------------------------------------
    def devices(self, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[AdbDevice]:
        """Every device adb knows (``adb devices -l``)."""
        done = self.run(["devices", "-l"], timeout_s=timeout_s, target=False)
        if done.returncode != 0:
            raise _errors.AdbFailed(
                f"adb devices failed (exit {done.returncode}): {last_lines(done.stderr, 3)}"
            )
        return parse_devices(done.stdout)

    def state(self, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
        """This serial's state (``device``, ``unauthorized``, ``offline``, ...) or ``absent``."""
        for device in self.devices(timeout_s=timeout_s):
            if device.serial == self.serial:
                return device.state
        return STATE_ABSENT

    def check_ready(self, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Raise the named error unless the phone is attached and authorized."""
        state = self.state(timeout_s=timeout_s)
        if state != STATE_DEVICE:
            raise state_error(self.serial, state)

    # -- shell, push, getprop -------------------------------------------------
    def shell(self, command: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> ShellResult:
        """Run ``command`` with the phone's ``sh`` and return its output and exit status.

        Raises DeviceNotFound / DeviceUnauthorized / DeviceOffline when adb
        cannot reach the phone, DeviceLost when the command did not finish
        because the phone went away, AdbFailed when it did not finish for
        another reason, AdbTimeout past ``timeout_s``.
        """
        # In a subshell, so that an `exit` in the command still reaches the marker.
        script = f'( {command}\n)\n__fleetnas_rc=$?; printf "\\n{EXIT_MARKER}%s\\n" "$__fleetnas_rc"'
        done = self.run(["shell", script], timeout_s=timeout_s)
        index = done.stdout.rfind("\n" + EXIT_MARKER)
        if index >= 0:
            status_text = done.stdout[index + 1 + len(EXIT_MARKER):].strip()
            try:
                status = int(status_text.split()[0])
            except (ValueError, IndexError):
                status = -1
            return ShellResult(stdout=done.stdout[:index], stderr=done.stderr, exit_status=status)
        raise_adb_error(self.serial, done.stderr)
        state = self.state()
        if state != STATE_DEVICE:
            raise _errors.DeviceLost(
                f"phone {self.serial} went away while a command ran on it (adb now reports "
                f"it {state}); reconnect it. Last output:\n"
                f"{last_lines(done.stdout + done.stderr, 10)}"
            )
        raise _errors.AdbFailed(
            f"adb shell on {self.serial} ended (exit {done.returncode}) before the command "
            f"finished: {last_lines(done.stdout + done.stderr, 10)}"
        )

    def push(self, local: Path, remote: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Copy ``local`` to ``remote`` on the phone; PushFailed with adb's reason if not."""
        try:
            done = self.run(["push", str(local), remote], timeout_s=timeout_s)
        except AdbTimeout as exc:
            raise _errors.PushFailed(
                f"adb push {local.name} -> {remote} timed out after {exc.timeout_s:g} s"
            ) from None
        if done.returncode == 0:
            return
        raise_adb_error(self.serial, done.stderr)
        raise _errors.PushFailed(
            f"adb push {local.name} -> {remote} failed: "
            f"{last_lines(done.stderr or done.stdout, 3) or f'exit {done.returncode}'}"
        )

    def getprop(self, key: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
        """One system property (empty string when unset)."""
        if not re.fullmatch(r"[A-Za-z0-9._-]+", key):
            raise ValueError(f"not a property name: {key!r}")
        return self.shell(f"getprop {key}", timeout_s=timeout_s).stdout.strip()


def state_error(serial: str, state: str) -> _errors.AndroidError:
    """The named error for a phone in ``state`` (anything but ``device``)."""
    if state == STATE_ABSENT:
        return _errors.DeviceNotFound(
            f"phone {serial} is not attached (adb devices does not list it): plug it in, "
            "enable USB debugging, or check the serial"
        )
    if state == "unauthorized":
        return _errors.DeviceUnauthorized(
            f"phone {serial} is unauthorized: unlock it and accept the 'Allow USB debugging' "
            "dialog for this host (then retry)"
        )
    if state == "no permissions":
        return _errors.DeviceUnauthorized(
            f"phone {serial}: no permissions to open the USB device on this host (udev rules; "
            "see developer.android.com/tools/device)"
        )
    return _errors.DeviceOffline(
        f"phone {serial} is {state}: adb cannot talk to it (replug it, or "
        "'adb reconnect offline')"
    )


def raise_adb_error(serial: str, stderr: str) -> None:
    """Raise the named error when ``stderr`` holds one of adb's own failure texts."""
    for raw in stderr.splitlines():
        if not (raw.startswith("adb: ") or raw.startswith("error: ")):
            continue
        line = _ADB_ERROR_PREFIX.sub("", raw).strip()
        if line.startswith("device unauthorized"):
            raise state_error(serial, "unauthorized")
        if _OFFLINE.search(line):
            raise state_error(serial, "offline")
        if _NOT_FOUND.search(line):
            raise state_error(serial, STATE_ABSENT)
        if "cannot connect to daemon" in line or "failed to start daemon" in line:
            raise _errors.AdbFailed(f"the adb server is not running: {line} (try 'adb start-server')")


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    try:
        proc.wait(timeout=_KILL_WAIT_S)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail
        pass
