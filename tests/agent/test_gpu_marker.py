"""The ``gpu`` marker: registered, and skipped only where onnxruntime has no CUDA provider."""

from __future__ import annotations

import pytest

from tests.agent.conftest import gpu_skip_reason

pytest_plugins = ["pytester"]

GPU_TEST = """
import pytest

@pytest.mark.gpu
def test_needs_a_gpu():
    import onnxruntime
    assert "CUDAExecutionProvider" in onnxruntime.get_available_providers()

def test_plain():
    pass
"""


def test_the_marker_is_registered(pytestconfig: pytest.Config) -> None:
    assert any(line.startswith("gpu:") for line in pytestconfig.getini("markers"))


def test_gpu_tests_skip_with_the_reason_only_without_cuda(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "from tests.agent.conftest import pytest_collection_modifyitems, pytest_report_header\n"
    )
    pytester.makeini("[pytest]\nmarkers =\n    gpu: needs a GPU\n")
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest_inprocess("-ra")
    reason = gpu_skip_reason()
    if reason is None:  # a GPU machine: the gpu test runs (and must pass)
        result.assert_outcomes(passed=2)
        result.stdout.fnmatch_lines(["gpu tests: run*"])
    else:
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines(["gpu tests: skipped: needs onnxruntime's*",
                                     "SKIPPED*needs onnxruntime's CUDAExecutionProvider*"])
        assert "fleetnas[agent-gpu]" in reason
