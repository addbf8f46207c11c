"""A fork server of this process's own, with chosen modules preloaded, for work that starts
many short processes (pipeline steps, tuning trials).

``multiprocessing``'s shared fork server preloads what its caller names once, for everyone;
each user here keeps its own (:class:`PreloadedForkServer`) so that its preloads are its own.
Where the platform has no fork server, or an environment variable asks for it, processes start
as fresh interpreters instead (:func:`choose_launcher`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
from collections.abc import Sequence
from typing import Any

from slipway.exceptions import InvalidParameterValue

FORKSERVER = "forkserver"
SUBPROCESS = "subprocess"


class PreloadedForkServer:
    """One fork server, started on first use, importing ``preload`` once."""

    def __init__(self, preload: Sequence[str]) -> None:
        self._preload = list(preload)
        self._lock = threading.Lock()
        self._server: Any = None

    def get(self) -> Any:
        """The ``multiprocessing.forkserver.ForkServer`` (created, not yet started, on first
        call; ``ensure_running()`` and ``connect_to_new_process()`` start it)."""
        with self._lock:
            if self._server is None:
                from multiprocessing import forkserver

                server = forkserver.ForkServer()
                server.set_forkserver_preload(self._preload)
                self._server = server
            return self._server

    def start(
        self, preparation: dict[str, Any], job: Any, fds: Sequence[int] = ()
    ) -> tuple[int, int]:
        """Fork a child that prepares itself (``sys_path``, ``dir``...) and runs ``job``,
        passing it ``fds``; returns ``(status_fd, pid)``. The status pipe's read end is the
        child's sentinel, and its exit status arrives on it later (:func:`read_exit_status`).

        Raises:
            OSError, EOFError: the fork server did not start the child.
        """
        from multiprocessing import forkserver

        data = pickle.dumps(preparation) + pickle.dumps(job)
        status_r, data_w = self.get().connect_to_new_process(list(fds))
        try:
            with open(data_w, "wb", closefd=True) as stream:
                stream.write(data)
            pid = int(forkserver.read_signed(status_r))
        except BaseException:
            close_fd(status_r)
            raise
        return status_r, pid


def read_exit_status(status_fd: int) -> int:
    """A fork-server child's exit status (``-signal`` when killed) from its status pipe, once
    the pipe is readable; 255 when the fork server itself went away."""
    from multiprocessing import forkserver

    try:
        return int(forkserver.read_signed(status_fd))
    except (OSError, EOFError):
        return 255


def choose_launcher(env_var: str) -> str:
    """``forkserver`` (the default where the platform has one) or ``subprocess``, as the
    environment variable ``env_var`` asks; INVALID_PARAMETER_VALUE for anything else."""
    chosen = os.environ.get(env_var, "").strip().lower()
    if chosen in ("", FORKSERVER):
        import multiprocessing

        return FORKSERVER if FORKSERVER in multiprocessing.get_all_start_methods() else SUBPROCESS
    if chosen == SUBPROCESS:
        return SUBPROCESS
    raise InvalidParameterValue(
        f"{env_var} must be '{FORKSERVER}' or '{SUBPROCESS}', got {chosen!r}"
    )


def close_fd(fd: int) -> None:
    """Close ``fd``, if it is still open."""
    with contextlib.suppress(OSError):
        os.close(fd)


__all__ = [
    "FORKSERVER",
    "SUBPROCESS",
    "PreloadedForkServer",
    "choose_launcher",
    "close_fd",
    "read_exit_status",
]
