"""One rank of a training job on Ray: the actor that runs it on its node.

The actor does not train in its own process: it starts the worker (the script under
``worker.py``, or the pickled function through this module's ``main``) as a subprocess in a
session of its own, so that

* its stdout and stderr go to files on the node, which the launcher reads as they grow (the
  console copy) and which the actor uploads to the job's run when the worker ends, after the
  earlier attempts' part of the same log;
* a worker that hangs, or that must stop because another rank failed, can be killed with
  everything it started;
* a worker outlives neither its actor nor its node: the worker watches its parent and kills
  itself when the actor is gone (see :mod:`.worker`).

Its failure is described as under the local launcher: the exit code or signal, and the error
and its exact time from torchelastic's error file, which the worker writes.

This module is imported on every node; Ray is only imported by the launcher.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.training.logs import DEFAULT_CAP_BYTES, capped_log, log_artifact_name
from slipway.training.worker import ERROR_FILE_ENV, ERROR_TIME_KEY, PARENT_PID_ENV

__all__ = ["RankResult", "RankWorker", "WorkerCommand", "attempt_header", "main"]

STREAMS = ("stdout", "stderr")
HEADER_PREFIX = "===== attempt "


def attempt_header(attempt: int) -> str:
    """The line that starts an attempt's part of a log, as the local launcher writes it."""
    return f"{HEADER_PREFIX}{attempt} =====\n"


@dataclass(frozen=True)
class WorkerCommand:
    """What a rank runs: a script with its arguments, or a pickled ``(fn, args, kwargs)``."""

    script: str | None = None
    script_args: tuple[str, ...] = ()
    payload: bytes | None = None
    cwd: str | None = None
    """The launcher's working directory, used when it exists on the node too."""
    shipped: bool = False
    """The job's working directory is shipped to the nodes (:mod:`slipway.engines.shipping`):
    the worker runs in the node's copy of it, and ``script`` is relative to it."""
    package: Any = None
    """The shipped folder: a Ray object reference to its zip."""


@dataclass(frozen=True)
class RankResult:
    """How one rank's worker ended on its node."""

    exit_code: int
    signal: str | None
    message: str
    time: float | None
    has_error_file: bool
    pid: int
    value: bytes | None = None
    """The function's pickled return value, when it returned."""
    log_error: str | None = None
    """Why its logs could not be uploaded, if they could not."""

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


class RankWorker:
    """The actor of one rank (made a Ray actor by the launcher, with ``max_concurrency`` above
    one so that :meth:`stop` and :meth:`tail` run while :meth:`run` waits)."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="slipway-rank-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._read = dict.fromkeys(STREAMS, 0)
        self._reading = threading.Lock()

    # -- where it runs -------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Its node's id and IP address, and the GPUs Ray gave it."""
        import ray

        context = ray.get_runtime_context()
        gpus = context.get_accelerator_ids().get("GPU", [])
        return {
            "node_id": str(context.get_node_id()),
            "ip": str(ray.util.get_node_ip_address()),  # type: ignore[no-untyped-call]
            "gpus": [str(g) for g in gpus],
            "pid": os.getpid(),
        }

    def free_port(self) -> int:
        """A port free on this node now (rank 0's store, ``MASTER_PORT``, listens there)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("", 0))
            return int(sock.getsockname()[1])

    # -- running ---------------------------------------------------------------------------

    def run(
        self,
        command: WorkerCommand,
        env: Mapping[str, str],
        attempt: int,
        cap: int = DEFAULT_CAP_BYTES,
    ) -> RankResult:
        """Run the worker to its end (or until :meth:`stop`), upload its logs, describe how
        it ended."""
        rank = int(env.get("RANK", "0"))
        error_file = self._dir / "error.json"
        result_file = self._dir / "result.pkl"
        if command.shipped:
            try:
                cwd = self._unpacked(command)
            except Exception as exc:
                failed = RankResult(
                    2, None, f"could not unpack the shipped working_dir: {exc}", None, True, 0
                )
                self._write_logs(b"", failed.message.encode() + b"\n")
                return self._uploaded(failed, env, rank, attempt, cap)
        else:
            cwd = command.cwd if command.cwd and os.path.isdir(command.cwd) else str(self._dir)
        argv = self._argv(command, result_file, cwd)
        if isinstance(argv, RankResult):
            self._write_logs(b"", argv.message.encode() + b"\n")
            return self._uploaded(argv, env, rank, attempt, cap)
        child_env = {**os.environ, **env, ERROR_FILE_ENV: str(error_file)}
        child_env[PARENT_PID_ENV] = str(os.getpid())
        with self._lock:
            if self._stopped:
                return RankResult(-15, "SIGTERM", "stopped before it started", None, False, 0)
            with (
                open(self._log(STREAMS[0]), "wb") as out,
                open(self._log(STREAMS[1]), "wb") as err,
            ):
                self._proc = subprocess.Popen(
                    argv,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    env=child_env,
                    cwd=cwd,
                    start_new_session=True,
                )
        code = self._proc.wait()
        result = _describe_exit(code, self._proc.pid, error_file)
        if code == 0 and command.payload is not None:
            try:
                value = result_file.read_bytes()
            except OSError as exc:
                result = RankResult(1, None, f"its return value is missing: {exc}", None, True, 0)
            else:
                result = RankResult(0, None, "", None, False, self._proc.pid, value)
        return self._uploaded(result, env, rank, attempt, cap)

    def _unpacked(self, command: WorkerCommand) -> str:
        """This node's copy of the shipped folder (an actor runs one attempt's worker)."""
        import ray

        from slipway.engines.shipping import unpack

        return str(unpack(ray.get(command.package), self._dir / "working_dir"))

    def _argv(self, command: WorkerCommand, result_file: Path, cwd: str) -> list[str] | RankResult:
        if command.payload is not None:
            payload_file = self._dir / "payload.pkl"
            payload_file.write_bytes(command.payload)
            return [
                sys.executable,
                "-u",
                "-m",
                "slipway.training.ray_worker",
                str(payload_file),
                str(result_file),
            ]
        assert command.script is not None
        script = command.script
        if command.shipped:
            script = os.path.join(cwd, script)
        if not os.path.isfile(script):
            where = (
                "it is not in the shipped working directory"
                if command.shipped
                else "every node needs it at the same path, or ship its folder (working_dir)"
            )
            message = f"No training script at {script} on node {socket.gethostname()}: {where}"
            return RankResult(2, None, message, None, True, 0)
        from slipway.training import worker

        return [sys.executable, "-u", worker.__file__, script, *command.script_args]

    def stop(self, grace: float) -> None:
        """Stop the worker and whatever it started: SIGTERM, then SIGKILL after ``grace``
        seconds."""
        with self._lock:
            self._stopped = True
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()

    # -- logs --------------------------------------------------------------------------------

    def _log(self, stream: str) -> Path:
        return self._dir / f"{stream}.log"

    def _write_logs(self, out: bytes, err: bytes) -> None:
        self._log("stdout").write_bytes(out)
        self._log("stderr").write_bytes(err)

    def tail(self) -> dict[str, str]:
        """The complete lines written to each stream since the last call."""
        with self._reading:
            return self._tail()

    def _tail(self) -> dict[str, str]:
        lines = {}
        for stream in STREAMS:
            path = self._log(stream)
            try:
                with open(path, "rb") as handle:
                    handle.seek(self._read[stream])
                    data = handle.read()
            except OSError:
                continue
            end = data.rfind(b"\n") + 1
            if end:
                self._read[stream] += end
                lines[stream] = data[:end].decode("utf-8", errors="replace")
        return lines

    def close(self) -> dict[str, str]:
        """The lines not read yet, unfinished ones included; the node's files are removed."""
        import shutil

        with self._reading:
            rest = self._tail()
            for stream in STREAMS:
                with contextlib.suppress(OSError), open(self._log(stream), "rb") as handle:
                    handle.seek(self._read[stream])
                    tail = handle.read().decode("utf-8", errors="replace")
                    if tail:
                        rest[stream] = rest.get(stream, "") + tail + "\n"
            shutil.rmtree(self._dir, ignore_errors=True)
            return rest

    def _uploaded(
        self, result: RankResult, env: Mapping[str, str], rank: int, attempt: int, cap: int
    ) -> RankResult:
        from slipway.training.env import ARTIFACT_URI_ENV

        try:
            upload_logs(
                env[ARTIFACT_URI_ENV],
                env.get("SLIPWAY_TRACKING_URI"),
                rank,
                attempt,
                {stream: self._log(stream) for stream in STREAMS},
                self._dir,
                cap,
            )
        except Exception as exc:
            return RankResult(
                result.exit_code,
                result.signal,
                result.message,
                result.time,
                result.has_error_file,
                result.pid,
                result.value,
                f"{type(exc).__name__}: {exc}",
            )
        return result


def upload_logs(
    artifact_uri: str,
    tracking_uri: str | None,
    rank: int,
    attempt: int,
    files: Mapping[str, Path],
    scratch: Path,
    cap: int = DEFAULT_CAP_BYTES,
) -> None:
    """Upload one rank's logs of one attempt to ``logs/rank_<r>.<stream>.txt``, after what the
    earlier attempts uploaded there, each attempt under its header line as locally. What an
    attempt 0 wrote has no header (a job without restarts has none): it gets one when attempt
    1 comes."""
    from slipway.artifacts import get_artifact_repository
    from slipway.exceptions import ResourceDoesNotExist

    repo = get_artifact_repository(artifact_uri, tracking_uri=tracking_uri)
    for stream, path in files.items():
        name = log_artifact_name(rank, stream)
        parts: list[tuple[str, Path | None]] = []
        if attempt > 0:
            previous = scratch / f"previous.{stream}"
            try:
                with repo.open_artifact(name) as handle:
                    previous.write_bytes(handle.read())
            except ResourceDoesNotExist:
                pass  # that rank's node was lost with its logs
            else:
                with previous.open("rb") as handle:
                    first = handle.read(len(HEADER_PREFIX)).decode("utf-8", "replace")
                parts.append(("" if first == HEADER_PREFIX else attempt_header(0), previous))
            parts.append((attempt_header(attempt), path))
        else:
            parts.append(("", path))
        repo.log_bytes(capped_log(parts, cap), name)


def _describe_exit(code: int, pid: int, error_file: Path) -> RankResult:
    signal_name = None
    if code < 0:
        try:
            signal_name = signal.Signals(-code).name
        except ValueError:
            signal_name = f"signal {-code}"
    message, when, has_file = "", None, False
    try:
        body = json.loads(error_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        body = None
    if isinstance(body, dict):
        inner = body.get("message")
        text = inner.get("message") if isinstance(inner, dict) else inner
        if text:
            message, has_file = str(text), True
        precise = body.get(ERROR_TIME_KEY)
        when = float(precise) if isinstance(precise, int | float) else None
    if code != 0 and not has_file:
        message = f"killed by {signal_name}" if signal_name else "exited without an error message"
    return RankResult(code, signal_name, message, when, has_file, pid)


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def main(argv: list[str] | None = None) -> None:
    """``python -m slipway.training.ray_worker PAYLOAD RESULT``: call the pickled function
    like the local launcher's workers do, and write its pickled return value to RESULT."""
    from slipway.training.worker import call_function

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m slipway.training.ray_worker PAYLOAD RESULT", file=sys.stderr)
        raise SystemExit(2)
    payload, result = Path(args[0]), Path(args[1])
    value = call_function(payload.read_bytes())
    result.write_bytes(value)


if __name__ == "__main__":
    main()
