"""Named errors of the search driver; the CLI turns them into one-line messages."""

from __future__ import annotations


class DriverError(Exception):
    """Base class of the search driver's errors."""


class SearchConfigError(DriverError, ValueError):
    """The search configuration is inconsistent (an objective nothing can compute, ...)."""


class SearchNotFound(DriverError, KeyError):
    """No search with this id in the cost database."""

    def __str__(self) -> str:  # KeyError quotes its argument; a message reads better
        return str(self.args[0]) if self.args else "search not found"


class SearchBusy(DriverError):
    """Another live process is running this search."""


class SearchAborted(DriverError):
    """The search stopped before its budget (devices unavailable, bad settings...).

    Everything evaluated so far is stored; ``fleetnas search --resume ID``
    continues once the cause is fixed.
    """
