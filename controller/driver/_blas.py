"""One BLAS thread while the hybrid source fits and predicts (its matrices are small).

The surrogate's matrices are at most a few thousand rows by a few dozen
features. On such sizes a multi-threaded BLAS (OpenBLAS by default starts one
thread per core) gains nothing, and its worker threads spin-wait between
calls, interleaved with the driver's Python: on the 2-core reference host
that doubled the controller CPU of a hybrid search (bench_search, hybrid at
800 measurements: 15.3 vs 8.2 ms per measurement with ``OPENBLAS_NUM_THREADS=1``).

:func:`single_blas_thread` limits the BLAS libraries numpy loaded to one
thread for the duration of a ``with`` block and restores the caller's
setting after it. It uses ``threadpoolctl`` (a dependency of the controller extra;
an install without it runs the block unchanged). Results do not depend
on the thread count beyond floating-point summation order in BLAS kernels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_controller: Any = None
_looked = False


def _get_controller() -> Any:
    """The process's threadpoolctl controller, built on first use (None without threadpoolctl)."""
    global _controller, _looked
    if not _looked:
        _looked = True
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # optional: the limit only saves CPU
            _controller = None
        else:
            _controller = ThreadpoolController()
    return _controller


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Run the block with BLAS limited to one thread (restored on exit); nests."""
    controller = _get_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield
