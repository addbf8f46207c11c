"""The container a Slipway component runs in on Kubeflow: its ``deploymentSpec`` executor.

Like Kubeflow's lightweight Python components, the image is a plain Python image and the
command carries the program: it installs ``slipway`` (the version that compiled the pipeline)
and the component's ``packages`` with pip, writes the embedded program (the component's
function and the helpers it uses, see :mod:`slipway.pipelines.kfp.program`) to a file, and
runs it through :mod:`slipway.pipelines.kfp.executor_main`, which speaks Kubeflow's executor
protocol. Kubeflow substitutes ``{{$}}`` in the arguments with the executor input JSON.

Resources become both requests and limits (a step gets what it asked for, and no more), the
step's ``timeout`` travels as the ``SLIPWAY_STEP_TIMEOUT`` environment variable (Kubeflow v2
has no per-task timeout; executor_main enforces it), and ``cache_version`` is an argument, so
that changing it changes Kubeflow's cache key, which hashes the command and arguments.
"""

from __future__ import annotations

import shlex
from typing import Any

from slipway.pipelines.component import StepOptions

DEFAULT_IMAGE = "python:3.11"
"""The image of a component that names none (Kubeflow's default for Python components)."""
GPU_RESOURCE = "nvidia.com/gpu"
TIMEOUT_ENV = "SLIPWAY_STEP_TIMEOUT"
PROGRAM_FILE = "slipway_component.py"
EXECUTOR_MODULE = "slipway.pipelines.kfp.executor_main"

_INSTALL = """if ! [ -x "$(command -v pip)" ]; then
    python3 -m ensurepip || python3 -m ensurepip --user
fi
PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet --no-warn-script-location \
{requirements} && "$0" "$@"
"""
_RUN = f"""program_path=$(mktemp -d)
printf "%s" "$0" > "$program_path/{PROGRAM_FILE}"
python3 -m {EXECUTOR_MODULE} --component_module_path "$program_path/{PROGRAM_FILE}" "$@"
"""


def slipway_requirement() -> str:
    """``slipway==<this version>``: what the container installs to run a component."""
    from slipway import __version__

    return f"slipway=={__version__}"


def executor_spec(
    *,
    function: str,
    program: str,
    options: StepOptions,
    image: str,
    requirement: str,
) -> dict[str, Any]:
    """The ``deploymentSpec.executors`` entry of one component as run with ``options``."""
    requirements = " ".join(shlex.quote(r) for r in (requirement, *options.packages))
    args = ["--executor_input", "{{$}}", "--function_to_execute", function]
    if options.cache_version is not None:
        args += ["--cache_version", options.cache_version]
    container: dict[str, Any] = {
        "image": options.image or image,
        "command": [
            "sh",
            "-c",
            _INSTALL.format(requirements=requirements),
            "sh",
            "-ec",
            _RUN,
            program,
        ],
        "args": args,
    }
    env = [{"name": k, "value": v} for k, v in options.env]
    if options.timeout is not None:
        env.append({"name": TIMEOUT_ENV, "value": _number(options.timeout)})
    if env:
        container["env"] = env
    resources = resource_spec(options)
    if resources:
        container["resources"] = resources
    return {"container": container}


def resource_spec(options: StepOptions) -> dict[str, Any]:
    """``container.resources`` for the cpu, memory and gpu of ``options`` (empty if none)."""
    out: dict[str, Any] = {}
    if options.cpu is not None:
        text = cpu_text(options.cpu)
        out.update(
            cpuRequest=options.cpu,
            cpuLimit=options.cpu,
            resourceCpuRequest=text,
            resourceCpuLimit=text,
        )
    if options.memory is not None:
        text = memory_text(options.memory)
        gigabytes = options.memory / 1e9  # the deprecated float fields count in GB
        out.update(
            memoryRequest=gigabytes,
            memoryLimit=gigabytes,
            resourceMemoryRequest=text,
            resourceMemoryLimit=text,
        )
    if options.gpu:
        count = str(options.gpu)
        # type/count are the older spellings, which older Kubeflow backends still read
        out["accelerator"] = {
            "resourceType": GPU_RESOURCE,
            "resourceCount": count,
            "type": GPU_RESOURCE,
            "count": count,
        }
    return out


def cpu_text(cores: float) -> str:
    """Cores as Kubernetes writes them: ``"2"``, ``"500m"``."""
    if float(cores).is_integer():
        return str(int(cores))
    return f"{round(cores * 1000)}m"


def memory_text(size: int) -> str:
    """Bytes as Kubernetes writes them, in the largest unit that divides them exactly."""
    for unit, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    for unit, factor in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def duration_text(seconds: float) -> str:
    """A protobuf Duration in JSON: ``"30s"``, ``"0.5s"``."""
    return f"{_number(seconds)}s"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


__all__ = [
    "DEFAULT_IMAGE",
    "EXECUTOR_MODULE",
    "GPU_RESOURCE",
    "TIMEOUT_ENV",
    "cpu_text",
    "duration_text",
    "executor_spec",
    "memory_text",
    "resource_spec",
    "slipway_requirement",
]
