"""Record the parts of the real ``pynvml`` that fleetnas uses, for the tests' stand-in.

Usage (any Python with fleetnas importable; pynvml is imported from the
wheel's file, so no NVIDIA driver is needed):

    pip download --no-deps nvidia-ml-py==13.615.71 -d /tmp/nvml
    unzip -o /tmp/nvml/nvidia_ml_py-*.whl pynvml.py -d /tmp/nvml
    python tests/agent/data/telemetry/record_pynvml_api.py /tmp/nvml/pynvml.py \
        > tests/agent/data/telemetry/pynvml_api.json
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys

from fleetnas.agent.telemetry._nvml import PYNVML_NAMES


def main(path: str) -> None:
    spec = importlib.util.spec_from_file_location("pynvml", path)
    assert spec is not None and spec.loader is not None
    pynvml = importlib.util.module_from_spec(spec)
    sys.modules["pynvml"] = pynvml  # pynvml looks itself up there while it builds its errors
    spec.loader.exec_module(pynvml)
    functions = {
        name: list(inspect.signature(getattr(pynvml, name)).parameters)
        for name in PYNVML_NAMES
        if name.startswith("nvml")
    }
    constants = {
        name: getattr(pynvml, name)
        for name in dir(pynvml)
        if (name in PYNVML_NAMES and name.startswith("NVML_"))
        or name.startswith("nvmlClocksEventReason")
        or name.startswith("nvmlClocksThrottleReason")
    }
    errors = {
        cls.__name__: value for value, cls in sorted(pynvml.NVMLError._valClassMapping.items())
    }
    strings = {str(k): v for k, v in sorted(pynvml.NVMLError._errcode_to_string.items())}
    version = getattr(pynvml, "__version__", None)
    json.dump(
        {
            "source": f"nvidia-ml-py {version or '13.615.71'} pynvml.py",
            "functions": functions,
            "constants": constants,
            "errors": errors,
            "error_strings": strings,
        },
        sys.stdout,
        indent=1,
        sort_keys=True,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
