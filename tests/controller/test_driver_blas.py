"""single_blas_thread: BLAS at one thread inside the block, the caller's setting after it."""

from __future__ import annotations

import numpy as np
import pytest

from fleetnas.controller.driver._blas import single_blas_thread

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> list[int]:
    return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]


def test_one_thread_inside_and_restored_after() -> None:
    np.ones((2, 2)) @ np.ones((2, 2))  # numpy's BLAS is loaded
    before = _blas_threads()
    if not before:
        pytest.skip("numpy here links no BLAS threadpoolctl can see")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        with single_blas_thread():
            assert _blas_threads() == [1] * len(before)
            with single_blas_thread():  # nests
                assert _blas_threads() == [1] * len(before)
            assert _blas_threads() == [1] * len(before)
        assert _blas_threads() == [min(2, n) for n in before]
    assert _blas_threads() == before


def test_restored_when_the_block_raises() -> None:
    before = _blas_threads()
    with pytest.raises(RuntimeError), single_blas_thread():
        raise RuntimeError("boom")
    assert _blas_threads() == before
