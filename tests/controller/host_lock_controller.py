"""A controller process for the cross-process host-lock test (not a test module).

    python -m tests.controller.host_lock_controller ADDRESS DB START_FILE SEED

Waits for START_FILE, then measures four distinct tiny models on the one agent
at ADDRESS through a Scheduler, recording into DB, and exits 0 when all four
were measured.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.fleet import Device, Fleet
from fleetnas.controller.scheduler import Job, OutcomeStatus, Scheduler
from tests import onnx_models
from tests.controller.conftest import tiny_settings


def main(address: str, db_path: str, start_file: str, seed: int) -> int:
    fleet = Fleet.of([Device("dev", "cpu", address)])
    settings = tiny_settings(min_runs=5, max_runs=100_000, min_duration_s=0.3,
                             max_duration_s=0.4)
    jobs = [Job.on_device(onnx_models.mlp(32, 2, seed=seed * 10 + i), "dev", settings)
            for i in range(4)]
    with CostDB(db_path) as db, Scheduler(fleet, db) as scheduler:
        scheduler.monitor.wait_rounds(1, timeout=30)  # described before the start signal
        while not Path(start_file).exists():
            time.sleep(0.01)
        outcomes = scheduler.run(jobs)
    return 0 if all(o.status is OutcomeStatus.MEASURED for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
