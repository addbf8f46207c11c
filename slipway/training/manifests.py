"""A Kubeflow ``PyTorchJob`` (``kubeflow.org/v1``) that runs what ``slipway train`` runs
locally: ``slipway train --nproc 2 train.py --lr 0.1 --emit pytorchjob -o job.yaml``.

The shape:

* ``spec.pytorchReplicaSpecs``: a ``Master`` (one pod) and, with more than one node,
  ``Worker`` pods for the rest; each pod's container is named ``pytorch`` (the operator finds
  it by that name) and runs ``torchrun`` with ``nprocPerNode`` processes. The operator gives
  every pod ``MASTER_ADDR``, ``MASTER_PORT`` (``pytorchjob-port``, 23456), ``WORLD_SIZE``
  (pods x processes), ``RANK``, ``PET_NNODES``, ``PET_NPROC_PER_NODE`` and
  ``PET_NODE_RANK``, which the command passes on to ``torchrun``. Kubernetes expands
  ``$(NAME)`` in a command from the container's environment, operator-made variables
  included; ``$(`` in the script's own arguments is escaped so they reach it unchanged.
* Elastic (``elastic=(min, max)``): ``Worker`` pods only, ``elasticPolicy`` with the c10d
  rendezvous; the operator then gives ``torchrun`` its node range and rendezvous endpoint
  through ``PET_*`` variables.
* ``runPolicy.backoffLimit`` is ``max_restarts`` (pods restart ``OnFailure`` when it is above
  0), ``activeDeadlineSeconds`` the job's timeout.
* ``SLIPWAY_TRACKING_URI`` (and ``SLIPWAY_EXPERIMENT_NAME``) so the script's ``slipway``
  calls log to the same place, when that place is a server or database a pod can reach.

The image must hold Python, torch, Slipway and the script (at the path given, relative to the
image's working directory); the default ``python:3.11`` holds only Python, so the header says
so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from slipway.exceptions import InvalidParameterValue

__all__ = [
    "API_VERSION",
    "CONTAINER_NAME",
    "DEFAULT_IMAGE",
    "DEFAULT_PORT",
    "KIND",
    "PORT_NAME",
    "pytorchjob_manifest",
    "pytorchjob_yaml",
]

API_VERSION = "kubeflow.org/v1"
KIND = "PyTorchJob"
CONTAINER_NAME = "pytorch"
PORT_NAME = "pytorchjob-port"
DEFAULT_PORT = 23456
DEFAULT_IMAGE = "python:3.11"
MAX_NAME_LENGTH = 50
"""Pods are named ``<job>-master-0`` / ``<job>-worker-<n>``, and must stay 63-character DNS
labels."""
_REMOTE_SCHEMES = ("http://", "https://", "postgresql://", "postgres://", "mysql")


def kubernetes_name(text: str) -> str:
    """``text`` as a job name: lowercase letters, digits and ``-``, starting with a letter."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if not name:
        raise InvalidParameterValue(f"Cannot make a Kubernetes name out of {text!r}")
    if not name[0].isalpha():
        name = "job-" + name
    return name[:MAX_NAME_LENGTH].rstrip("-")


def _positive(label: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidParameterValue(f"Invalid {label} {value!r}: use an integer >= {minimum}")
    return value


def _escape(arg: str) -> str:
    """An argument Kubernetes passes through as is (``$(X)`` would be expanded)."""
    return arg.replace("$(", "$$(")


def pytorchjob_manifest(
    script: str,
    script_args: Sequence[str] = (),
    *,
    name: str | None = None,
    namespace: str | None = None,
    image: str = DEFAULT_IMAGE,
    nnodes: int = 1,
    nproc_per_node: int = 1,
    max_restarts: int = 0,
    elastic: tuple[int, int] | None = None,
    backend: str = "auto",
    cpu: str | None = None,
    memory: str | None = None,
    gpus: int = 0,
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The PyTorchJob for ``script`` as a dict (see :func:`pytorchjob_yaml` for the text).

    Args:
        script: the training script's path inside the image.
        script_args: its arguments.
        name: the job's name; the script's name when omitted.
        namespace: the job's namespace; the one ``kubectl`` uses when omitted.
        image: a container image with torch, Slipway and the script.
        nnodes: pods (machines); one is the Master, the rest Workers.
        nproc_per_node: worker processes per pod (``nprocPerNode``).
        max_restarts: ``runPolicy.backoffLimit`` (and the elastic policy's ``maxRestarts``).
        elastic: ``(min, max)`` pods for an elastic job; ``nnodes`` must lie between them.
        backend: ``gloo``, ``nccl`` or ``auto`` (nccl with GPUs), given to the script as
            ``SLIPWAY_TRAINING_BACKEND``.
        cpu: CPU request and limit per pod (``"4"``, ``"500m"``).
        memory: memory request and limit per pod (``"16Gi"``).
        gpus: ``nvidia.com/gpu`` per pod.
        tracking_uri: where the script's runs go, for pods that can reach it.
        experiment_name: the experiment the script's runs go to.
        timeout: ``runPolicy.activeDeadlineSeconds``.
        env: more environment variables for the container.

    Raises:
        InvalidParameterValue: for numbers out of range or an unusable name.
    """
    nnodes = _positive("nnodes", nnodes)
    nproc_per_node = _positive("nproc_per_node", nproc_per_node)
    max_restarts = _positive("max_restarts", max_restarts, 0)
    gpus = _positive("gpus", gpus, 0)
    if backend not in ("auto", "gloo", "nccl"):
        raise InvalidParameterValue(f"Unknown backend {backend!r}: use auto, gloo or nccl")
    if backend == "nccl" and gpus == 0:
        raise InvalidParameterValue("The nccl backend needs GPUs: pass gpus (--gpus) too")
    if elastic is not None:
        low, high = (
            _positive("elastic minimum", elastic[0]),
            _positive("elastic maximum", elastic[1]),
        )
        if not low <= nnodes <= high:
            raise InvalidParameterValue(
                f"nnodes={nnodes} must lie within the elastic range {low}:{high}"
            )
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise InvalidParameterValue(f"Invalid timeout {timeout!r}: use seconds > 0")
    job_name = kubernetes_name(name or Path(script).stem)

    container_env = [
        {"name": "SLIPWAY_TRAINING_BACKEND", "value": _backend(backend, gpus)},
    ]
    if tracking_uri and tracking_uri.startswith(_REMOTE_SCHEMES):
        container_env.append({"name": "SLIPWAY_TRACKING_URI", "value": tracking_uri})
    if experiment_name:
        container_env.append({"name": "SLIPWAY_EXPERIMENT_NAME", "value": experiment_name})
    for key, value in (env or {}).items():
        container_env.append({"name": str(key), "value": str(value)})

    restart_policy = "OnFailure" if max_restarts > 0 else "Never"
    args = [script, *(_escape(str(a)) for a in script_args)]
    replica_specs: dict[str, Any] = {}
    if elastic is None:
        command = [
            "torchrun",
            "--nnodes=$(PET_NNODES)",
            f"--nproc-per-node={nproc_per_node}",
            "--node-rank=$(PET_NODE_RANK)",
            "--master-addr=$(MASTER_ADDR)",
            "--master-port=$(MASTER_PORT)",
            *args,
        ]
        master = _container(image, command, container_env, cpu, memory, gpus, port=True)
        replica_specs["Master"] = _replicas(1, restart_policy, master)
        if nnodes > 1:
            worker = _container(image, command, container_env, cpu, memory, gpus, port=False)
            replica_specs["Worker"] = _replicas(nnodes - 1, restart_policy, worker)
    else:
        command = [
            "torchrun",
            f"--nproc-per-node={nproc_per_node}",
            f"--max-restarts={max_restarts}",
            *args,
        ]
        worker = _container(image, command, container_env, cpu, memory, gpus, port=True)
        replica_specs["Worker"] = _replicas(nnodes, restart_policy, worker)

    run_policy: dict[str, Any] = {"cleanPodPolicy": "Running", "backoffLimit": max_restarts}
    if timeout is not None:
        run_policy["activeDeadlineSeconds"] = max(1, int(timeout))
    spec: dict[str, Any] = {"runPolicy": run_policy, "nprocPerNode": str(nproc_per_node)}
    if elastic is not None:
        spec["elasticPolicy"] = {
            "rdzvBackend": "c10d",
            "minReplicas": elastic[0],
            "maxReplicas": elastic[1],
            "maxRestarts": max_restarts,
        }
    spec["pytorchReplicaSpecs"] = replica_specs
    metadata: dict[str, Any] = {
        "name": job_name,
        "labels": {"app.kubernetes.io/managed-by": "slipway"},
    }
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def _backend(backend: str, gpus: int) -> str:
    if backend == "auto":
        return "nccl" if gpus > 0 else "gloo"
    return backend


def _container(
    image: str,
    command: list[str],
    container_env: list[dict[str, str]],
    cpu: str | None,
    memory: str | None,
    gpus: int,
    port: bool,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": [dict(item) for item in container_env],
    }
    if port:
        container["ports"] = [{"name": PORT_NAME, "containerPort": DEFAULT_PORT}]
    limits: dict[str, Any] = {}
    requests: dict[str, Any] = {}
    if cpu:
        limits["cpu"] = requests["cpu"] = str(cpu)
    if memory:
        limits["memory"] = requests["memory"] = str(memory)
    if gpus:
        limits["nvidia.com/gpu"] = gpus
    if limits:
        container["resources"] = {"limits": limits, **({"requests": requests} if requests else {})}
    return container


def _replicas(count: int, restart_policy: str, container: dict[str, Any]) -> dict[str, Any]:
    return {
        "replicas": count,
        "restartPolicy": restart_policy,
        "template": {"spec": {"containers": [container]}},
    }


def pytorchjob_yaml(manifest: Mapping[str, Any], tracking_uri: str | None = None) -> str:
    """``manifest`` as YAML, under comment lines that say what the cluster needs for it."""
    notes = ["A Kubeflow PyTorchJob written by slipway train: kubectl apply -f <this file>."]
    containers = [
        replica["template"]["spec"]["containers"][0]
        for replica in manifest["spec"]["pytorchReplicaSpecs"].values()
    ]
    if containers and containers[0]["image"] == DEFAULT_IMAGE:
        notes.append(
            f"The image {DEFAULT_IMAGE} has Python only: use one with torch, slipway and the "
            "script installed (--image)."
        )
    if tracking_uri and not tracking_uri.startswith(_REMOTE_SCHEMES):
        notes.append(
            f"The tracking URI {tracking_uri!r} is local to this machine, so the pods do not "
            "get it: pass --tracking-uri http://<server> for runs logged from the cluster."
        )
    header = "".join(f"# {line}\n" for line in notes)
    return header + yaml.safe_dump(dict(manifest), sort_keys=False, default_flow_style=False)
