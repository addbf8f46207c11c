"""Where a training job's workers go on Ray: one bundle of resources per rank, in one placement
group, so the whole group is placed together or not at all.

A job that could never be placed (a worker bigger than every node, more workers than the
cluster holds, ``STRICT_SPREAD`` over too few nodes) is refused at once with
:class:`InvalidParameterValue`, instead of a placement group that waits forever. A job that
fits but finds the resources taken waits ``timeout`` seconds for them, then its placement group
is removed and :class:`TemporarilyUnavailable` says why.

Ray is imported inside the functions that need it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from slipway.exceptions import InvalidParameterValue, TemporarilyUnavailable

__all__ = [
    "BACKENDS",
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "check_placeable",
    "describe_bundle",
    "parse_resources",
    "place",
    "remove",
    "resolve_backend",
    "worker_bundle",
]

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
DEFAULT_STRATEGY = "PACK"
BACKENDS = ("auto", "gloo", "nccl")
_ALIASES = {"cpu": "CPU", "cpus": "CPU", "gpu": "GPU", "gpus": "GPU", "memory": "memory"}


def parse_resources(text: str) -> dict[str, float]:
    """``"CPU=2,GPU=1,memory=4e9"`` as a mapping (the command line's form)."""
    resources: dict[str, float] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, amount = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            resources[name.strip()] = float(amount)
        except ValueError:
            raise InvalidParameterValue(
                f"Invalid resources {text!r}: use NAME=AMOUNT pairs separated by commas, "
                "e.g. CPU=2,GPU=1"
            ) from None
    return resources


def worker_bundle(resources: Mapping[str, Any] | None, backend: str) -> dict[str, float]:
    """What each worker asks Ray for: ``resources`` with ``cpu``/``gpu`` spelled as Ray does,
    1 CPU when none is named, and 1 GPU for nccl when none is named.

    Raises:
        InvalidParameterValue: a name that is not a string, an amount that is not a number
            >= 0, or a request for nothing at all.
    """
    bundle: dict[str, float] = {}
    for name, amount in (resources or {}).items():
        if not isinstance(name, str) or not name.strip():
            raise InvalidParameterValue(f"Invalid resource name {name!r}")
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise InvalidParameterValue(f"Invalid amount {amount!r} of {name}: use a number")
        if not math.isfinite(amount) or amount < 0:
            raise InvalidParameterValue(f"Invalid amount {amount!r} of {name}: use a number >= 0")
        key = _ALIASES.get(name.strip().lower(), name.strip())
        bundle[key] = float(amount)
    bundle.setdefault("CPU", 1.0)
    if backend == "nccl":
        bundle.setdefault("GPU", 1.0)
    bundle = {k: v for k, v in bundle.items() if v > 0}
    if not bundle:
        raise InvalidParameterValue(
            "Each worker must ask for some resource (CPU=0 and nothing else)"
        )
    return bundle


def resolve_backend(name: str, resources: Mapping[str, Any] | None) -> str:
    """``auto`` as nccl when the workers ask for GPUs and gloo otherwise (the driver's own
    machine says nothing about the cluster's); nccl with ``GPU=0`` is refused (without a GPU
    named, each nccl worker asks for one)."""
    if name not in BACKENDS:
        raise InvalidParameterValue(f"Unknown backend {name!r}: use one of {', '.join(BACKENDS)}")
    gpus: float | None = None
    for key, amount in (resources or {}).items():
        if isinstance(key, str) and _ALIASES.get(key.strip().lower()) == "GPU":
            gpus = float(amount) if isinstance(amount, int | float) else 0.0
    if name == "auto":
        return "nccl" if gpus else "gloo"
    if name == "nccl" and gpus is not None and gpus <= 0:
        raise InvalidParameterValue("The nccl backend needs a GPU per worker: ask for GPU=1")
    return name


def describe_bundle(bundle: Mapping[str, float]) -> str:
    parts = []
    for key, amount in bundle.items():
        if key == "memory":
            parts.append(f"{amount / 2**30:.1f} GiB memory")
        else:
            parts.append(f"{amount:g} {key}")
    return ", ".join(parts)


def _fits_on(node_resources: Mapping[str, float], bundle: Mapping[str, float]) -> int:
    """How many bundles a node with ``node_resources`` holds at most."""
    counts = []
    for key, amount in bundle.items():
        counts.append(int(node_resources.get(key, 0.0) // amount + 1e-9))
    return min(counts) if counts else 0


def check_placeable(workers: int, bundle: Mapping[str, float], strategy: str) -> None:
    """Refuse a job the cluster could never place, even empty: a worker that no node holds,
    more workers than all nodes hold together, ``STRICT_PACK`` beyond one node, or
    ``STRICT_SPREAD`` over fewer nodes than workers (connect first).

    Raises:
        InvalidParameterValue: naming what was asked and what the cluster has.
    """
    from slipway.engines.ray import check_fits, cluster_nodes

    if strategy not in STRATEGIES:
        raise InvalidParameterValue(
            f"Unknown placement strategy {strategy!r}: use one of {', '.join(STRATEGIES)}"
        )
    standard = ("CPU", "GPU", "memory")
    check_fits(
        "Each training worker",
        cpu=bundle.get("CPU", 0.0),
        gpu=bundle.get("GPU", 0.0),
        memory=int(bundle.get("memory", 0.0)),
        resources={k: v for k, v in bundle.items() if k not in standard},
    )
    nodes = cluster_nodes()
    per_node = [_fits_on(node.resources, bundle) for node in nodes]
    if strategy == "STRICT_PACK":
        room, how = max(per_node, default=0), "on one node (STRICT_PACK)"
    elif strategy == "STRICT_SPREAD":
        room, how = sum(1 for n in per_node if n > 0), "one per node (STRICT_SPREAD)"
    else:
        room, how = sum(per_node), f"on its {len(nodes)} node{'s' if len(nodes) != 1 else ''}"
    if workers <= room:
        return
    raise InvalidParameterValue(
        f"{workers} training workers of {describe_bundle(bundle)} each do not fit the Ray "
        f"cluster: it holds at most {room} {how}. Use at most {room} workers, ask for less "
        "per worker, or add nodes."
    )


def place(
    workers: int, bundle: Mapping[str, float], strategy: str, timeout: float, name: str
) -> Any:
    """A ready placement group of ``workers`` bundles.

    Raises:
        TemporarilyUnavailable: the bundles were not all free within ``timeout`` seconds (the
            group is removed, so nothing stays reserved).
    """
    from ray.util import placement_group

    group = placement_group([dict(bundle) for _ in range(workers)], strategy=strategy, name=name)
    try:
        ready = bool(group.wait(timeout_seconds=timeout))
    except BaseException:
        remove(group)
        raise
    if ready:
        return group
    remove(group)
    raise TemporarilyUnavailable(
        f"The Ray cluster has room for {workers} training workers of {describe_bundle(bundle)} "
        f"({strategy}) but not free now: nothing was placed in {timeout:g} s. Wait for other "
        "jobs to end, or raise the placement timeout."
    )


def remove(group: Any) -> None:
    """Remove a placement group, releasing what it reserved; a cluster that is gone already
    has nothing to release."""
    from ray.util import remove_placement_group

    try:
        remove_placement_group(group)
    except Exception:  # the cluster or the group is gone: nothing is reserved any more
        return
