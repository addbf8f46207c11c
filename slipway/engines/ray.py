"""Connecting to Ray, and what its nodes offer.

Every part of Slipway that runs on Ray (the pipeline executor, training, tuning, serving) goes
through :func:`connect`, so an address means the same everywhere:

- ``None``: ``SLIPWAY_RAY_ADDRESS`` or ``RAY_ADDRESS`` when set, else a local Ray instance is
  started for this process (the laptop case);
- ``"local"``: a local instance, whatever the environment says;
- ``"auto"``: join the cluster already running on this machine (``ray start`` was run here);
- ``"host:port"``: the cluster whose head (GCS) listens there;
- ``"ray://host:port"``: Ray Client, for a driver outside the cluster.

An address that nothing answers fails in seconds with :class:`TemporarilyUnavailable` instead of
Ray's own minute-long reconnect loop: the port is tried with a plain TCP connect first.

Token authentication: ``ray start`` turns it on when this machine has a Ray token
(``~/.ray/auth_token``, which a local ``ray.init()`` writes, ``RAY_AUTH_TOKEN_PATH`` or
``RAY_AUTH_TOKEN``) and ``RAY_AUTH_MODE`` is unset, but a driver that joins by address does not
send the token unless ``RAY_AUTH_MODE=token``. So when connecting to a running cluster with
``RAY_AUTH_MODE`` unset and a token at hand, :func:`connect` sets ``RAY_AUTH_MODE=token`` for
this process (a cluster without authentication accepts such a driver too).

Ray is an extra (``pip install 'slipway[ray]'``): this module imports it only inside functions.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from slipway.exceptions import InvalidParameterValue, TemporarilyUnavailable

ADDRESS_ENV = "SLIPWAY_RAY_ADDRESS"
AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"  # noqa: S105 (the variable's name, not a token)
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"  # noqa: S105
AUTH_HINT = (
    " If the cluster uses token authentication, this machine needs the cluster's token "
    "(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)."
)
"""Added to a failed join whose address answered."""
NAMESPACE = "slipway"
PROBE_TIMEOUT_SECONDS = 3.0
DEFAULT_CLIENT_PORT = 10001
DEFAULT_GCS_PORT = 6379

_lock = threading.Lock()
_connected_to: str | None = None


def require_ray() -> Any:
    """The ``ray`` module, or a clear error naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise InvalidParameterValue(
            "Running on Ray needs the ray package: pip install 'slipway[ray]'"
        ) from exc
    return ray


@dataclass(frozen=True)
class RayNode:
    """One node of the cluster and what it offers in all (not what is free now)."""

    node_id: str
    address: str
    alive: bool
    cpu: float
    gpu: float
    memory: int
    """Bytes of memory Ray schedules on this node (its ``memory`` resource)."""
    resources: dict[str, float] = field(default_factory=dict)
    """Every resource the node advertises, custom ones included."""


def resolve_address(address: str | None) -> str | None:
    """The address :func:`connect` will use: None means a new local instance."""
    if address is None:
        address = os.environ.get(ADDRESS_ENV) or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        return None
    address = address.strip()
    if address in ("", "local"):
        return None
    return address


def token_available() -> bool:
    """Whether a Ray authentication token is at hand for this process: ``RAY_AUTH_TOKEN``, the
    file ``RAY_AUTH_TOKEN_PATH`` names, or ``~/.ray/auth_token``."""
    if os.environ.get(TOKEN_ENV, "").strip():
        return True
    named = os.environ.get(TOKEN_PATH_ENV, "").strip()
    path = Path(named).expanduser() if named else Path.home() / ".ray" / "auth_token"
    try:
        return path.is_file() and bool(path.read_text().strip())
    except OSError:
        return False


def _send_token_if_available() -> None:
    """Before joining a running cluster: send the token there is, as ``ray start`` expects of
    its drivers (see the module's docs). An explicit ``RAY_AUTH_MODE`` is left as it is."""
    if AUTH_MODE_ENV not in os.environ and token_available():
        os.environ[AUTH_MODE_ENV] = "token"
        # Ray read its settings when imported: have it read them again (a Ray without token
        # authentication has nothing to read).
        with contextlib.suppress(ImportError, AttributeError):
            importlib.import_module("ray._raylet").Config.initialize("")


def _probe(address: str) -> None:
    """Fail fast when nothing listens at a ``host:port`` or ``ray://host:port`` address."""
    if address == "auto":
        return
    if address.startswith("ray://"):
        parts = urlsplit(address)
        host, port = parts.hostname, parts.port or DEFAULT_CLIENT_PORT
    else:
        if ":" in address:
            host, _, port_text = address.rpartition(":")
        else:
            host, port_text = address, str(DEFAULT_GCS_PORT)
        try:
            port = int(port_text)
        except ValueError:
            raise InvalidParameterValue(
                f"Ray address {address!r} is not host:port, ray://host:port, 'auto' or 'local'"
            ) from None
    if not host:
        raise InvalidParameterValue(f"Ray address {address!r} has no host")
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_SECONDS):
            pass
    except OSError as exc:
        raise TemporarilyUnavailable(
            f"Cannot reach a Ray cluster at {address} ({exc.strerror or exc}). Start one with "
            "`ray start --head`, or check the address and that its port is open."
        ) from None


def connect(address: str | None = None, *, runtime_env: dict[str, Any] | None = None) -> str:
    """Connect this process to Ray (once; later calls with the same address reuse it) and
    return a description of where it is connected ("local" or the address).

    Inside a Ray worker the worker's own connection is used whatever ``address`` says.

    Raises:
        TemporarilyUnavailable: nothing answers at ``address``, or ``"auto"`` finds no cluster.
        InvalidParameterValue: Ray is not installed, or the address is malformed.
    """
    global _connected_to
    ray = require_ray()
    target = resolve_address(address)
    label = target or "local"
    with _lock:
        if ray.is_initialized():
            if _connected_to is None or _connected_to == label or address is None:
                _connected_to = _connected_to or label
                return _connected_to
            if target is not None:
                _probe(target)  # keep the connection there is unless the new one answers
            ray.shutdown()
        elif target is not None:
            _probe(target)
        kwargs: dict[str, Any] = {
            "namespace": NAMESPACE,
            "log_to_driver": False,
            "logging_level": "WARNING",
            "configure_logging": True,
        }
        if runtime_env:
            kwargs["runtime_env"] = runtime_env
        if target is None:
            kwargs["include_dashboard"] = False
        else:
            _send_token_if_available()
        try:
            ray.init(address=target, **kwargs)
        except ConnectionError as exc:
            hint = AUTH_HINT if target is not None else ""
            raise TemporarilyUnavailable(
                f"Cannot connect to Ray at {label}: {exc}.{hint}"
            ) from None
        except Exception as exc:
            if type(exc).__name__ != "AuthenticationError":
                raise
            raise InvalidParameterValue(
                f"Cannot connect to Ray at {label}: {' '.join(str(exc).split())}"
            ) from None
        _connected_to = label
        return label


def shutdown() -> None:
    """Disconnect this process (and stop the local instance it started, if any)."""
    global _connected_to
    ray = require_ray()
    with _lock:
        if ray.is_initialized():
            ray.shutdown()
        _connected_to = None


def cluster_nodes(alive_only: bool = True) -> list[RayNode]:
    """The cluster's nodes (connect first)."""
    ray = require_ray()
    nodes = []
    for raw in ray.nodes():
        alive = bool(raw.get("Alive", raw.get("alive", False)))
        if alive_only and not alive:
            continue
        res = {str(k): float(v) for k, v in (raw.get("Resources") or {}).items()}
        nodes.append(
            RayNode(
                node_id=str(raw["NodeID"]),
                address=str(raw.get("NodeManagerAddress", "")),
                alive=alive,
                cpu=res.get("CPU", 0.0),
                gpu=res.get("GPU", 0.0),
                memory=int(res.get("memory", 0.0)),
                resources=res,
            )
        )
    return nodes


def check_fits(
    what: str,
    *,
    cpu: float = 0.0,
    gpu: float = 0.0,
    memory: int = 0,
    resources: dict[str, float] | None = None,
) -> None:
    """Refuse (INVALID_PARAMETER_VALUE) a request that no single alive node could ever hold,
    so it fails at once instead of waiting forever for a node that never comes."""
    nodes = cluster_nodes()
    custom = resources or {}
    for node in nodes:
        if (
            node.cpu >= cpu
            and node.gpu >= gpu
            and node.memory >= memory
            and all(node.resources.get(k, 0.0) >= v for k, v in custom.items())
        ):
            return
    asked = [f"{cpu:g} CPU"]
    if gpu:
        asked.append(f"{gpu:g} GPU")
    if memory:
        asked.append(f"{memory / 2**30:.1f} GiB memory")
    asked += [f"{v:g} {k}" for k, v in custom.items()]
    offers = (
        "; ".join(
            f"{n.node_id[:8]}: {n.cpu:g} CPU, {n.gpu:g} GPU, {n.memory / 2**30:.1f} GiB"
            for n in nodes
        )
        or "no alive node"
    )
    raise InvalidParameterValue(
        f"{what} asks for {', '.join(asked)}; no node of the Ray cluster has that ({offers})"
    )


def current_node_id() -> str:
    """The id of the Ray node this code runs on (a worker's, or the driver's)."""
    ray = require_ray()
    return str(ray.get_runtime_context().get_node_id())
