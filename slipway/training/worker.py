"""What runs inside each worker process around the user's code.

A script runs as ``python -u .../slipway/training/worker.py SCRIPT [ARGS...]``, which behaves
like ``python -u SCRIPT [ARGS...]`` (same ``sys.argv``, ``sys.path[0]`` and ``__main__``), so
a script written for ``torchrun`` runs unchanged. A function runs through
:func:`call_function`, which the elastic agent calls in each spawned worker.

Around the user's code, a :class:`WorkerSession`:

* on ranks other than 0, detaches the fluent API from the job's run: metrics, params and tags
  logged there are dropped (only rank 0's reach the run), and ending the run from there leaves
  it running (the launcher records the job's final status). Rank 0 logs to the job's run
  because ``SLIPWAY_RUN_ID`` names it;
* samples the worker's own CPU and memory into ``system/rank_<r>/...`` from a thread;
* on an error, prints the traceback and writes torchelastic's error file, with the exact time
  it happened, so the launcher can tell the rank that failed first from those that failed
  because it did;
* when ``SLIPWAY_TRAINING_PARENT_PID`` names its parent (a rank's actor on Ray), kills itself
  and everything it started once that parent is gone: a worker must not outlive its actor or
  its node, training on alone and holding its port.

This file is run by path and imports only the standard library at first: a script that never
uses Slipway does not pay for importing it. The fluent API is detached when (and if) the
script imports it, by an import hook; the metrics thread imports what it needs when it first
samples.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import runpy
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from types import ModuleType, TracebackType
from typing import Any

__all__ = [
    "ERROR_FILE_ENV",
    "ERROR_TIME_KEY",
    "PARENT_PID_ENV",
    "WorkerSession",
    "call_function",
    "detach_fluent",
    "main",
]

# The same names as in slipway.training.env, which this file cannot import without importing
# Slipway (a test keeps them equal).
JOB_RUN_ID_ENV = "SLIPWAY_TRAINING_RUN_ID"
SYSTEM_METRICS_ENV = "SLIPWAY_TRAINING_SYSTEM_METRICS_INTERVAL"
ERROR_FILE_ENV = "TORCHELASTIC_ERROR_FILE"
PARENT_PID_ENV = "SLIPWAY_TRAINING_PARENT_PID"
"""The pid of the process whose death must end this worker (set by the Ray launcher)."""
PARENT_POLL_SECONDS = 0.5
ERROR_TIME_KEY = "slipwayTime"
"""The failure's time in seconds (float), beside the whole seconds torchelastic keeps."""
FLUENT_MODULE = "slipway.tracking.fluent"


class WorkerSession:
    """Set-up and tear-down of one worker of a job launched by Slipway (nothing outside one)."""

    def __init__(self) -> None:
        try:
            self.rank = int(os.environ.get("RANK", "0"))
        except ValueError:
            self.rank = 0
        self.run_id = os.environ.get(JOB_RUN_ID_ENV) or None
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def start(self) -> WorkerSession:
        _watch_parent()
        if self.run_id is None:
            return self
        if self.rank != 0:
            _detach_when_imported(self.run_id)
        try:
            interval = float(os.environ.get(SYSTEM_METRICS_ENV, "") or 0)
        except ValueError:
            interval = 0.0
        if interval > 0:
            self._sampler = threading.Thread(
                target=self._sample,
                args=(self.run_id, interval),
                name=f"slipway-rank-{self.rank}-metrics",
                daemon=True,
            )
            self._sampler.start()
        return self

    def _sample(self, run_id: str, interval: float) -> None:
        if self._stop.wait(interval):
            return  # a job shorter than one interval has no samples
        from slipway.training.rank_metrics import sample_until

        sample_until(self._stop, run_id, self.rank, interval)

    def close(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout=5)
            self._sampler = None


# -- a worker dies with its parent ----------------------------------------------------------


def _watch_parent() -> None:
    """Start a thread that ends this worker (and its process group, when it leads one) once
    the process named by ``SLIPWAY_TRAINING_PARENT_PID`` is no longer its parent. The variable
    is taken out of the environment, so that processes the worker starts do not watch it."""
    try:
        parent = int(os.environ.pop(PARENT_PID_ENV, "") or 0)
    except ValueError:
        return
    if parent <= 0:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        import signal

        if os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="slipway-parent-watch", daemon=True).start()


# -- the fluent API on ranks other than 0 ----------------------------------------------------


def detach_fluent(fluent: ModuleType, job_run_id: str) -> None:
    """Make the fluent module ``fluent`` drop metrics, params and tags, and leave the job's run
    running when a ``with start_run()`` block (or the exit hook) ends it here."""
    original_end_run = fluent.end_run

    def drop_write(
        run_id: str | None,
        metrics: Sequence[Any] = (),
        params: Sequence[Any] = (),
        tags: Sequence[Any] = (),
        synchronous: bool | None = None,
    ) -> None:
        return None

    def end_run(status: Any = "FINISHED", run_id: str | None = None) -> None:
        active = fluent.active_run()
        target = run_id if run_id is not None else (active.info.run_id if active else None)
        if target == job_run_id:
            status = "RUNNING"  # detach only: the launcher ends the job's run
        original_end_run(status, run_id)

    patched: Any = fluent
    patched._write = drop_write
    patched.end_run = end_run
    package: Any = sys.modules.get("slipway")
    if package is not None and hasattr(package, "end_run"):
        package.end_run = end_run


class _DetachOnImport(importlib.abc.MetaPathFinder):
    """Finds the fluent module like the other finders do, and detaches it right after it runs
    (before ``slipway/__init__`` binds ``slipway.end_run`` from it)."""

    def __init__(self, job_run_id: str) -> None:
        self.job_run_id = job_run_id

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != FLUENT_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run_module = loader.exec_module
        job_run_id = self.job_run_id

        def exec_module(module: ModuleType) -> None:
            run_module(module)
            detach_fluent(module, job_run_id)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _detach_when_imported(job_run_id: str) -> None:
    fluent = sys.modules.get(FLUENT_MODULE)
    if fluent is not None:
        detach_fluent(fluent, job_run_id)
    else:
        sys.meta_path.insert(0, _DetachOnImport(job_run_id))


# -- failures -------------------------------------------------------------------------------


def record_failure(exc: BaseException, show_traceback: bool = True) -> None:
    """Print ``exc`` like an uncaught exception, and describe it in torchelastic's error file
    (``TORCHELASTIC_ERROR_FILE``), which the agent reads when the worker exits."""
    now = time.time()
    stack = "".join(traceback.format_exception(type(exc), exc, _user_frames(exc.__traceback__)))
    if show_traceback:
        sys.stderr.write(stack)
        sys.stderr.flush()
    path = os.environ.get(ERROR_FILE_ENV)
    if not path:
        return
    body = {
        "message": {
            "message": f"{type(exc).__name__}: {exc}",
            "extraInfo": {"py_callstack": stack, "timestamp": str(int(now))},
        },
        ERROR_TIME_KEY: now,
    }
    try:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(body, handle)
    except OSError as err:  # the exit code still reports the failure
        print(f"slipway: cannot write the error file {path}: {err}", file=sys.stderr)


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback without this file's and runpy's frames on top, as ``python SCRIPT``
    would show it."""
    own = {os.path.abspath(__file__), runpy.__file__, "<frozen runpy>"}
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename in own:
        tb = tb.tb_next
    return tb


def guarded(body: Callable[[], object]) -> int:
    """Run ``body``; the exit code it deserves (0, a ``sys.exit`` code, 1 for an exception,
    130 for Ctrl-C), its failure recorded."""
    try:
        body()
    except SystemExit as exc:
        code = exc.code
        if code is None or code == 0:
            return 0
        if not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        record_failure(exc, show_traceback=False)
        return code
    except KeyboardInterrupt as exc:
        record_failure(exc)
        return 130
    except BaseException as exc:
        record_failure(exc)
        return 1
    return 0


# -- entry points ---------------------------------------------------------------------------


def run_script(script: str, args: list[str]) -> None:
    """Run ``script`` as ``__main__`` the way ``python SCRIPT ARGS`` would."""
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")


def main(argv: list[str] | None = None) -> None:
    """``python -u worker.py SCRIPT [ARGS...]``."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python worker.py SCRIPT [ARGS...]", file=sys.stderr)
        raise SystemExit(2)
    script, *script_args = args
    session = WorkerSession().start()
    try:
        code = guarded(lambda: run_script(script, script_args))
    finally:
        session.close()
    if code:
        raise SystemExit(code)


def call_function(payload: bytes) -> bytes:
    """Run the function pickled in ``payload`` (``(fn, args, kwargs)``, by cloudpickle) in
    this worker; its return value, pickled the same way."""
    import cloudpickle

    session = WorkerSession().start()
    results: list[Any] = []
    try:

        def body() -> None:
            fn, args, kwargs = cloudpickle.loads(payload)
            results.append(fn(*args, **kwargs))

        code = guarded(body)
    finally:
        session.close()
    if code:
        raise SystemExit(code)
    return bytes(cloudpickle.dumps(results[0]))


if __name__ == "__main__":
    main()
