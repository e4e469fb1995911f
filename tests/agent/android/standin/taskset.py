"""Stand-in toybox ``taskset MASK CMD [ARGS...]`` (run with ``python -S``).

Checks the mask as toybox does (hex digits, no ``0x``; at least one of the
phone's CPUs), records it in ``$FAKE_PHONE/taskset.log``, pins itself to
this host's CPUs standing in for the phone's (phone CPU i -> host CPU
i mod n) and execs the command, keeping its pid. Exit statuses as toybox's
exec: 127 not found, 126 not executable.
"""

import errno
import os
import sys

phone = os.environ["FAKE_PHONE"]
args = sys.argv[1:]
if len(args) < 2:
    sys.stderr.write("taskset: Needs 2 args\n")
    raise SystemExit(1)
mask_text, command = args[0], args[1:]
try:
    mask = int(mask_text, 16) if all(c in "0123456789abcdefABCDEF" for c in mask_text) else -1
except ValueError:
    mask = -1
if mask < 0:
    sys.stderr.write(f"taskset: bad mask '{mask_text}'\n")
    raise SystemExit(1)
with open(os.path.join(phone, "fs/sys/devices/system/cpu/possible")) as f:
    possible = f.read().strip()
low, _, high = possible.partition("-")
cpus = [c for c in range(int(low), int(high or low) + 1) if mask >> c & 1]
if not cpus:
    sys.stderr.write(f"taskset: failed to set pid {os.getpid()}'s affinity: Invalid argument\n")
    raise SystemExit(1)
with open(os.path.join(phone, "taskset.log"), "a") as log:
    log.write(f"{mask_text} {' '.join(command)}\n")
host = sorted(os.sched_getaffinity(0))
os.sched_setaffinity(0, {host[c % len(host)] for c in cpus})
try:
    os.execvp(command[0], command)
except OSError as exc:
    reason = "Exec format error" if exc.errno == errno.ENOEXEC else exc.strerror
    sys.stderr.write(f"taskset: exec {command[0]}: {reason}\n")
    raise SystemExit(127 if exc.errno == errno.ENOENT else 126) from None
