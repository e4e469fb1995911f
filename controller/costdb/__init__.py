"""The cost database: every measurement the fleet ever made, in one SQLite file.

Open one with :class:`CostDB`; records are :class:`Device`, :class:`Model`,
:class:`Measurement` and a measurement's operator :class:`Profile`;
:func:`settings_hash` is the identity of a measurement's settings, the third part of the cache key (model, device, settings). See
``docs/costdb.md`` for the schema, the pooling formats and how to browse a
database with standard SQLite tools.
"""

from __future__ import annotations

from fleetnas.controller.costdb._codec import (
    canonical_json,
    message_to_dict,
    named_row,
    named_rows,
)
from fleetnas.controller.costdb._database import (
    DEFAULT_BUSY_TIMEOUT_S,
    LOCAL_SOURCE,
    CostDB,
    DeviceSummary,
    Summary,
)
from fleetnas.controller.costdb._errors import (
    CorruptRow,
    CostDBError,
    DatabaseBusy,
    DatabaseDamaged,
    DeviceNotFound,
    ImportFormatError,
    InvalidRecord,
    ModelAlreadyNamed,
    NameTaken,
    NotACostDB,
    SchemaTooNew,
)
from fleetnas.controller.costdb._hardware import hardware_change, hardware_id
from fleetnas.controller.costdb._migrations import LATEST_VERSION, MIGRATIONS, Migration
from fleetnas.controller.costdb._pooling import FORMATS, ExportReport, ImportReport
from fleetnas.controller.costdb._profiles import Profile
from fleetnas.controller.costdb._records import Device, Measurement, Model, measurement_uid
from fleetnas.controller.costdb._settings_hash import (
    RUN_LIMIT_FIELDS,
    settings_from_dict,
    settings_hash,
    settings_to_dict,
)
from fleetnas.controller.costdb._user_models import UserModel, UserModelSummary

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_S",
    "FORMATS",
    "LATEST_VERSION",
    "LOCAL_SOURCE",
    "MIGRATIONS",
    "RUN_LIMIT_FIELDS",
    "CorruptRow",
    "CostDB",
    "CostDBError",
    "DatabaseBusy",
    "DatabaseDamaged",
    "Device",
    "DeviceNotFound",
    "DeviceSummary",
    "ExportReport",
    "ImportFormatError",
    "ImportReport",
    "InvalidRecord",
    "Measurement",
    "Migration",
    "Model",
    "ModelAlreadyNamed",
    "NameTaken",
    "NotACostDB",
    "Profile",
    "SchemaTooNew",
    "Summary",
    "UserModel",
    "UserModelSummary",
    "canonical_json",
    "hardware_change",
    "hardware_id",
    "measurement_uid",
    "message_to_dict",
    "named_row",
    "named_rows",
    "settings_from_dict",
    "settings_hash",
    "settings_to_dict",
]
