"""Structured logs: one JSON object per line on stderr (or plain text for humans)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LOGGER_NAME = "fleetnas.agent"
# Any one string field of a record (client values end up in them); tracebacks
# get more room. A record can never grow into a multi-MB line.
MAX_FIELD_CHARS = 4000
MAX_TRACEBACK_CHARS = 16000


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more)"


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON with ``ts``, ``level``, ``event`` and any ``extra`` fields.

    String values are cut to ``MAX_FIELD_CHARS`` (a traceback to
    ``MAX_TRACEBACK_CHARS``).
    """

    _RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "level": record.levelname.lower(),
            "event": _cut(record.getMessage(), MAX_FIELD_CHARS),
        }
        for key, value in vars(record).items():
            if key not in self._RESERVED and not key.startswith("_"):
                payload[key] = _cut(value, MAX_FIELD_CHARS) if isinstance(value, str) else value
        if record.exc_info:
            payload["exc"] = _cut(self.formatException(record.exc_info), MAX_TRACEBACK_CHARS)
        return json.dumps(payload, default=str, sort_keys=False)


def configure(fmt: str = "json", level: str = "info") -> logging.Logger:
    """Configure and return the agent's logger (idempotent)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)
