"""The fleet: devices, the fleet file, secrets at connect time, probes and heartbeats.

Public API (everything else is private)::

    fleet = load_fleet(fleet_path())            # ./fleet.toml, $FLEETNAS_FLEET or --fleet
    fleet = fleet.with_device(Device("pi4-a", "pi4", "10.0.0.5:50051", token_env="FLEETNAS_PI4_TOKEN"))
    save_fleet(fleet)
    factory = ClientFactory.for_fleet(fleet)    # reads tokens/TLS files when connecting
    results = probe_devices(list(fleet), factory)
    with HeartbeatMonitor(fleet, factory) as monitor:
        monitor.health("pi4-a").up
    changes = record_probes(db, fleet, results)  # {name: how its hardware changed}
    added = add_device(fleet, "pi4-b", "10.0.0.6:50051")  # class from the agent's --class
    save_fleet(added.fleet)
"""

from fleetnas.controller.fleet._add import (
    AddedDevice,
    add_device,
    defaults_summary,
    described_class,
)
from fleetnas.controller.fleet._connect import ClientFactory
from fleetnas.controller.fleet._errors import (
    DuplicateDevice,
    FleetError,
    FleetFileError,
    InvalidDevice,
    MissingSecret,
    UnknownClass,
    UnknownDevice,
)
from fleetnas.controller.fleet._heartbeat import (
    DeviceHealth,
    HealthState,
    HeartbeatMonitor,
    backoff_delay,
)
from fleetnas.controller.fleet._history import record_probes
from fleetnas.controller.fleet._model import (
    TOKEN_ENV_PREFIX,
    Device,
    Fleet,
    check_address,
    check_name,
)
from fleetnas.controller.fleet._probe import ProbeResult, error_reason, probe_device, probe_devices
from fleetnas.controller.fleet._toml import (
    DEFAULT_FLEET_FILE,
    FLEET_ENV,
    dump_fleet,
    fleet_path,
    load_fleet,
    parse_fleet,
    save_fleet,
)

__all__ = [
    "DEFAULT_FLEET_FILE",
    "FLEET_ENV",
    "TOKEN_ENV_PREFIX",
    "AddedDevice",
    "ClientFactory",
    "Device",
    "DeviceHealth",
    "DuplicateDevice",
    "Fleet",
    "FleetError",
    "FleetFileError",
    "HealthState",
    "HeartbeatMonitor",
    "InvalidDevice",
    "MissingSecret",
    "ProbeResult",
    "UnknownClass",
    "UnknownDevice",
    "add_device",
    "backoff_delay",
    "check_address",
    "check_name",
    "defaults_summary",
    "described_class",
    "dump_fleet",
    "error_reason",
    "fleet_path",
    "load_fleet",
    "parse_fleet",
    "probe_device",
    "probe_devices",
    "record_probes",
    "save_fleet",
]
